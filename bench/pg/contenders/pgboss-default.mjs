// pg-boss 12 with its defaults (polling every 2 s, batchSize 1, no LISTEN/NOTIFY) except
// localConcurrency = the runner's concurrency (10). Each worker takes one job per poll and
// then waits out the polling interval, so it runs at a few jobs/s: fewer jobs (see sizes).
import { pgboss } from './_pgboss.mjs';

const g = pgboss({ describeExtra: { localConcurrency: 10, note: 'defaults: pollingIntervalSeconds 2, batchSize 1, useListenNotify false' } });
export const { kind, describe, setup, teardown, pending, createProducer, work } = g;
export const sizes = { throughput: 100, latency: 20, note: 'defaults poll every 2 s and take one job per poll per worker (10 workers): 100 jobs for throughput, 20 for latency, where the figures are mostly the polling interval' };
