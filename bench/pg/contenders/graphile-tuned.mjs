// graphile-worker 0.18 configured for throughput as its performance page advises: a local queue
// (jobs fetched and locked in batches), batched completions and failures, pool of
// max(10, concurrency + 2) connections; concurrency 10 set by the runner.
import { graphile, graphileRecovery } from './_graphile.mjs';

const runnerOptions = {
  noHandleSignals: true,
  pollInterval: 1000,
  maxPoolSize: 12,
  preset: { worker: { localQueue: { size: 100 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
};
const g = graphile({ runnerOptions, describeExtra: { concurrency: 10, note: 'localQueue.size 100, completeJobBatchDelay 0, failJobBatchDelay 0, maxPoolSize 12 (docs: 10 or concurrentJobs + 2), pollInterval 1000 ms (only for future jobs and retries: new jobs wake workers through LISTEN/NOTIFY)' } });
export const { kind, describe, setup, teardown, pending, createProducer, work } = g;
export const recovery = graphileRecovery;
export const scaleOut = true;
