// graphile-worker 0.18 with its defaults (no local queue, one fetch and one completion statement
// per job, pool of 10, pollInterval 2000 ms) except concurrency 10, which every contender gets.
import { graphile } from './_graphile.mjs';

const runnerOptions = { noHandleSignals: true };
const g = graphile({ runnerOptions, describeExtra: { concurrency: 10, note: 'defaults: localQueue off, completeJobBatchDelay -1 and failJobBatchDelay -1 (off), maxPoolSize 10, pollInterval 2000 ms' } });
export const { kind, describe, setup, teardown, pending, createProducer, work } = g;
