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

// Recovery: a job whose worker stops sending heartbeats is failed by the monitor and retried
// (retryLimit 2 by default). heartbeatSeconds is at its minimum (10); supervise/monitor every
// second (defaults 60 s) and polling at its minimum, so that the figure is the heartbeat bound.
export const recovery = {
  supported: true,
  expectedMs: 12_000,
  options: {
    queueOptions: { heartbeatSeconds: 10 },
    constructorOptions: { superviseIntervalSeconds: 1, monitorIntervalSeconds: 1 },
    workOptions: { notifyPollingIntervalSeconds: 0.5 },
  },
  note: 'queue heartbeatSeconds 10 (its minimum), supervise and monitor every 1 s, notifyPollingIntervalSeconds 0.5: the monitor fails the jobs whose heartbeat stopped and they are retried. Without heartbeatSeconds a job stays active until expireInSeconds (15 min by default)',
};
