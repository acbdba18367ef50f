// pg-boss 12, shared by pgboss-tuned.mjs and pgboss-default.mjs (files starting with _ are not
// contenders). One queue 'noop'; the handler receives a batch and runs the benchmark's handler on
// each job of it in turn, so `localConcurrency` workers make at most that many handlers at once.
import { PgBoss } from 'pg-boss';

const QUEUE = 'noop';

export function pgboss({ constructorOptions = {}, queueOptions = {}, workOptions = {}, describeExtra = {} }) {
  // ctx.options (from a variant or from `recovery.options`) may add constructorOptions,
  // queueOptions and workOptions on top of the contender's own
  const open = async (connectionString, schema, extra = {}, options = {}) => {
    const boss = new PgBoss({ connectionString, schema, ...constructorOptions, ...options.constructorOptions, ...extra });
    boss.on('error', (error) => process.stderr.write(`pg-boss error: ${error.message}\n`));
    boss.on('warning', (warning) => process.stderr.write(`pg-boss warning: ${warning.message ?? JSON.stringify(warning)}\n`));
    await boss.start();
    return boss;
  };

  const describe = () => ({
    library: 'pg-boss 12.38.0',
    constructor: { ...constructorOptions },
    createQueue: { ...queueOptions },
    work: { ...workOptions },
    handler: 'async (jobs) => { for (const job of jobs) await handler(job.data) }',
    producer: "insert('noop', jobs) once for all jobs; send('noop', data) for the latency run",
    ...describeExtra,
  });

  async function setup({ connectionString, schema, options }) {
    const boss = await open(connectionString, schema, {}, options);
    await boss.createQueue(QUEUE, { ...queueOptions, ...options?.queueOptions });
    await boss.stop({ graceful: false });
  }

  async function teardown() {
    // the runner drops the schema
  }

  async function pending({ connectionString, schema }) {
    const boss = await open(connectionString, schema, { supervise: false, schedule: false });
    try {
      const { rows } = await boss.getDb().executeSql(`select count(*)::int as n from "${schema}".job where name = $1 and state <> 'completed'`, [QUEUE]);
      return rows[0].n;
    } finally {
      await boss.stop({ graceful: false });
    }
  }

  async function createProducer({ connectionString, schema }) {
    const boss = await open(connectionString, schema);
    return {
      addMany: (payloads) => boss.insert(QUEUE, payloads.map((data) => ({ data }))),
      addOne: (data) => boss.send(QUEUE, data),
      close: () => boss.stop({ graceful: false }),
    };
  }

  async function work({ connectionString, schema, options }, { concurrency, handler, onReady, until }) {
    const boss = await open(connectionString, schema, {}, options);
    await boss.work(QUEUE, { ...workOptions, localConcurrency: workOptions.localConcurrency ?? concurrency, ...options?.workOptions }, async (jobs) => {
      for (const job of jobs) await handler(job.data);
    });
    onReady();
    await until;
    await boss.stop({ graceful: true, timeout: 30_000 });
    return undefined;
  }

  return { kind: 'postgres', describe, setup, teardown, pending, createProducer, work };
}
