// pg-boss 12 configured for throughput and latency as its docs advise: LISTEN/NOTIFY on (instance
// useListenNotify + queue notify), batch fetch with burstWhenBatchFull (re-fetch at once while
// batches come back full), the minimum polling interval, localConcurrency = the runner's
// concurrency (10) workers, each running its batch's handlers one after the other.
import { pgboss } from './_pgboss.mjs';

const g = pgboss({
  constructorOptions: { useListenNotify: true },
  queueOptions: { notify: true },
  workOptions: { batchSize: Number(process.env.BENCH_PGBOSS_BATCH ?? 100), burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 },
  describeExtra: { localConcurrency: 10 },
});
export const { kind, describe, setup, teardown, pending, createProducer, work } = g;
