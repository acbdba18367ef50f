// graphile-worker, shared by graphile-tuned.mjs and graphile-default.mjs (files starting with _
// are not contenders). Jobs: task 'noop' whose executor calls the benchmark's handler.
import { EventEmitter } from 'node:events';
import { Logger, makeWorkerUtils, run, runMigrations } from 'graphile-worker';

// warnings and errors to stderr, nothing else (the default logger prints every job start)
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') process.stderr.write(`graphile-worker ${level}: ${message}\n`);
});

export function graphile({ runnerOptions, describeExtra }) {
  const describe = () => ({
    library: 'graphile-worker 0.18.0',
    runner: `run(${JSON.stringify({ ...runnerOptions, taskList: '{ noop }' })})`,
    producer: 'makeWorkerUtils(); addJobs(specs) once for all jobs (one add_jobs statement); addJob(…) for the latency run',
    ...describeExtra,
  });

  async function setup({ connectionString, schema }) {
    await runMigrations({ connectionString, schema, logger });
  }

  async function teardown() {
    // the runner drops the schema
  }

  async function pending({ connectionString, schema }) {
    const utils = await makeWorkerUtils({ connectionString, schema, logger });
    try {
      return await utils.withPgClient(async (client) => (await client.query(`select count(*)::int as n from "${schema}"._private_jobs`)).rows[0].n);
    } finally {
      await utils.release();
    }
  }

  async function createProducer({ connectionString, schema }) {
    const utils = await makeWorkerUtils({ connectionString, schema, logger });
    return {
      addMany: (payloads) => utils.addJobs(payloads.map((payload) => ({ identifier: 'noop', payload }))),
      addOne: (payload) => utils.addJob('noop', payload),
      close: () => utils.release(),
    };
  }

  async function work({ connectionString, schema }, { concurrency, handler, onReady, until }) {
    const events = new EventEmitter();
    let listening = false;
    let started = false;
    const maybeReady = () => listening && started && onReady();
    events.once('pool:listen:success', () => {
      listening = true;
      maybeReady();
    });
    const runner = await run({
      connectionString,
      schema,
      logger,
      events,
      ...runnerOptions,
      concurrency,
      taskList: { noop: (payload) => handler(payload) },
    });
    started = true;
    maybeReady();
    await until;
    await runner.stop();
    return undefined;
  }

  return { kind: 'postgres', describe, setup, teardown, pending, createProducer, work };
}

export const graphileRecovery = {
  supported: false,
  probeMs: 5000,
  note: 'jobs of a killed worker stay locked: locked_at is only cleared after 4 h (resetLockedAt, run every 8–10 min) unless someone calls forceUnlockWorkers([workerId]); probed for a few seconds to show it',
};
