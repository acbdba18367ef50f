// The ceiling: no library, hand-written SQL on node-postgres. A minimal queue table with a lease
// (locked_by, locked_until), one audit row per claim and per completion, a NOTIFY per claimed
// batch, batches of B claimed in one statement and completions grouped into one statement.
//
// Claim (one statement, one round trip, one commit):
//   update jobs set status = 'running', locked_by = $me, locked_until = now() + lease, …
//    where id = any(array(select id from jobs where status = 'ready' and run_at <= now()
//                         order by priority, id limit $B for update skip locked))
//   returning id, payload   (+ audit insert and pg_notify in CTEs of the same statement)
// Completion (one statement for every completion that arrived since the last one was sent):
//   update jobs set status = 'done', … from unnest($ids::bigint[]) as d(id) where jobs.id = d.id
//   (+ audit insert in a CTE)
// Handlers: `concurrency` of them take jobs from the claimed batch; a new claim is sent when fewer
// than `concurrency` jobs are left locally (for B = 1, up to `concurrency` claims in flight).
// Leases: renewed every lease/3 for jobs held; a sweep every lease/2 puts jobs whose lease expired
// back to 'ready' (that is how a killed worker's jobs run elsewhere). Statements are prepared
// (named node-postgres queries): PostgreSQL plans the first 5 executions with the actual values
// ("custom" plans), then may switch to one generic plan.
//
// Variants measured here (PostgreSQL 15, table of 20,000 jobs; plans from EXPLAIN ANALYZE of the
// statement alone, plan_cache_mode forced to custom and to generic; times ms, noisy, plans exact):
// - Claim as a CTE of locked ids joined back to the table (BENCH_PLAIN_CLAIM=cte): a hash join
//   over a seq scan of the whole table, in both plan modes: 8.7 ms (B = 100) and 11.6–24 ms
//   (B = 500), growing with the table (done rows included), against 0.8–1.0 and 2.7–13 ms for
//   `= any(array(select … for update skip locked))`, which locks the ids in an InitPlan and
//   updates them through the primary key (index scans only).
// - Completion with the lease owner checked inside the join (`… from unnest($1) d(id) where
//   j.id = d.id and j.locked_by = $2`, BENCH_PLAIN_COMPLETE=unnest-owner): with a custom plan the
//   planner picks a nested loop of a seq scan (filtered on locked_by) × the unnest function
//   scan, B² comparisons: 249,500 rows removed by the join filter and 90–97 ms at B = 500
//   (3.9 ms at B = 100); with the generic plan an index nested loop, 3.3 ms. So it bites in the
//   first 5 executions of a prepared statement, and always for unprepared queries.
// - Completion `… from unnest($1) d(id) where j.id = d.id` (kept): generic plan an index nested
//   loop (0.6 ms at B = 100, 3.1 ms at B = 500); custom plan at B = 500 a hash join over a seq
//   scan of the table (12.7 ms), so unprepared it grows with the table too.
// - Completion `where j.id = any($1::bigint[]) and j.locked_by = $2` (BENCH_PLAIN_COMPLETE=
//   any-owner): a primary-key index scan in both plan modes (0.5 ms at B = 100, 2.4–6.4 ms at
//   B = 500) and it checks the lease owner: the robust form for ours.
// - End to end (20,000 jobs, jobs/s at B = 100 / B = 500, three alternating rounds under load
//   4.8–5.5 from other users of the machine): unnest 13,226/27,299, 16,585/30,157, 9,944/22,349;
//   any-owner 27,174/25,016, 25,893/48,598, 14,683/22,067; unnest-owner 15,599/30,899,
//   33,101/36,018, 13,805/18,869; CTE claim 15,107/33,287, 17,096/19,972, 13,628/34,692. With
//   prepared statements the plans above cost a few ms per batch, within this noise; unprepared
//   (BENCH_PLAIN_PREPARED=0, custom plans every time) unnest ran 4,389/14,141.
// - NOTIFY per claimed batch (BENCH_PLAIN_CLAIM_NOTIFY=0 to drop it), 5,000 jobs, two rounds:
//   B = 1 1,206 and 458 jobs/s with it, 2,599 and 4,262 without; B = 10 2,653/8,286 with,
//   4,619/8,357 without. A notifying transaction takes a heavyweight lock on "database 0"
//   (PreCommit_Notify in async.c: cluster-wide, every database) and holds it until after its
//   commit record is flushed, so notifying commits are serialized and do not share WAL flushes
//   (no group commit); every listening backend also runs one transaction per batch of
//   notifications it reads (visible in the server commit count: ~1 more commit per claim at B=1).
import { clearInterval, setInterval } from 'node:timers';
import pg from 'pg';

const DEFAULTS = { batch: 100, leaseMs: 30_000, pollMs: 1000, claim: 'array', complete: 'unnest', prepared: true, claimNotify: true };

const q = (schema) => `"${schema}"`;

function variant(batch) {
  return { label: `plain-sql B=${batch}`, options: { batch } };
}
const BATCHES = (process.env.BENCH_PLAIN_BATCHES ?? '1,10,100,500').split(',').map(Number);
export const variants = BATCHES.map(variant);
// --quick (a smoke run): one claim per job with many in flight, and batches
export const quickVariants = ['plain-sql B=1', 'plain-sql B=100'];

export const kind = 'postgres';

export function describe(options = {}) {
  const o = { ...DEFAULTS, ...options, ...envOverrides() };
  return {
    library: 'none (pg@8 Client/Pool, hand-written SQL)',
    claim: o.claim === 'array'
      ? `update … where id = any(array(select id … order by priority, id limit ${o.batch} for update skip locked)) returning …; audit insert and one pg_notify per claimed batch in CTEs of the same statement`
      : `CTE variant '${o.claim}' (see top of plain-sql.mjs)`,
    complete: o.complete === 'unnest'
      ? 'update … from unnest($1::bigint[]) d(id) where jobs.id = d.id, audit insert in a CTE; one statement for all completions since the previous one (one in flight at a time)'
      : `variant '${o.complete}' (see top of plain-sql.mjs)`,
    batch: o.batch,
    concurrency: 'handlers taking from the claimed batch; claim again when fewer than `concurrency` jobs are left locally',
    leaseMs: o.leaseMs,
    sweepMs: Math.round(o.leaseMs / 2),
    renewMs: Math.round(o.leaseMs / 3),
    pollMs: o.pollMs,
    wakeUp: 'LISTEN on a dedicated connection; producer NOTIFYs once per insert statement',
    preparedStatements: o.prepared,
    poolMax: 'concurrency + 3',
    producer: 'insert … select from unnest($1::jsonb[]) in chunks of 5,000, NOTIFY in the same statement',
  };
}

/** Variants for the measurements quoted at the top: BENCH_PLAIN_CLAIM=cte, BENCH_PLAIN_COMPLETE=unnest-owner|any-owner. */
function envOverrides() {
  const out = {};
  if (process.env.BENCH_PLAIN_CLAIM) out.claim = process.env.BENCH_PLAIN_CLAIM;
  if (process.env.BENCH_PLAIN_COMPLETE) out.complete = process.env.BENCH_PLAIN_COMPLETE;
  if (process.env.BENCH_PLAIN_PREPARED) out.prepared = process.env.BENCH_PLAIN_PREPARED !== '0';
  if (process.env.BENCH_PLAIN_CLAIM_NOTIFY) out.claimNotify = process.env.BENCH_PLAIN_CLAIM_NOTIFY !== '0';
  return out;
}

export async function setup({ connectionString, schema }) {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const s = q(schema);
    await client.query(`
      create schema ${s};
      create table ${s}.jobs (
        id bigserial primary key,
        priority int not null default 0,
        run_at timestamptz not null default now(),
        status text not null default 'ready',
        locked_by text,
        locked_until timestamptz,
        attempts int not null default 0,
        payload jsonb not null
      );
      create index jobs_ready on ${s}.jobs (priority, id) where status = 'ready';
      create index jobs_leased on ${s}.jobs (locked_until) where status = 'running';
      create table ${s}.audit (
        id bigserial primary key,
        job_id bigint not null,
        event text not null,
        worker text,
        at timestamptz not null default now()
      );`);
  } finally {
    await client.end();
  }
}

export async function teardown({ connectionString, schema }) {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query(`drop schema if exists ${q(schema)} cascade`);
  } finally {
    await client.end();
  }
}

/** Jobs not done yet (the runner checks that a throughput run left none). */
export async function pending({ connectionString, schema }) {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const { rows } = await client.query(`select count(*)::int as n from ${q(schema)}.jobs where status <> 'done'`);
    return rows[0].n;
  } finally {
    await client.end();
  }
}

const channel = (schema) => `${schema}_jobs`;

export async function createProducer({ connectionString, schema }) {
  const client = new pg.Client({ connectionString, application_name: 'pgbench-plain-producer' });
  await client.connect();
  const text = `with ins as (insert into ${q(schema)}.jobs (payload) select p from unnest($1::jsonb[]) as p returning 1)
    select pg_notify('${channel(schema)}', count(*)::text) from ins`;
  const insert = (payloads) => client.query({ name: 'insert_jobs', text, values: [payloads.map((p) => JSON.stringify(p))] });
  return {
    async addMany(payloads) {
      for (let i = 0; i < payloads.length; i += 5000) await insert(payloads.slice(i, i + 5000));
    },
    async addOne(payload) {
      await insert([payload]);
    },
    close: () => client.end(),
  };
}

function statements(schema, o) {
  const s = q(schema);
  const lease = `now() + $3::int * interval '1 millisecond'`;
  const auditAndNotify = `,
    audited as (insert into ${s}.audit (job_id, event, worker) select id, 'claim', $2 from claimed),
    notified as (select pg_notify('${schema}_events', $2 || ' claimed ' || count(*)) from claimed having count(*) > 0)
    select c.id, c.payload from claimed c${o.claimNotify ? ' left join notified on true' : ''}`;
  const claims = {
    // the form kept: the ids are locked by an InitPlan, the update finds them by primary key
    array: `with claimed as (
        update ${s}.jobs set status = 'running', locked_by = $2, locked_until = ${lease}, attempts = attempts + 1
         where id = any(array(select id from ${s}.jobs where status = 'ready' and run_at <= now()
                              order by priority, id limit $1 for update skip locked))
        returning id, payload)${auditAndNotify}`,
    // the trap: a CTE of locked ids joined back to the table
    cte: `with picked as (
        select id from ${s}.jobs where status = 'ready' and run_at <= now()
         order by priority, id limit $1 for update skip locked),
      claimed as (
        update ${s}.jobs as j set status = 'running', locked_by = $2, locked_until = ${lease}, attempts = j.attempts + 1
          from picked where j.id = picked.id
        returning j.id, j.payload)${auditAndNotify}`,
  };
  const auditDone = `,
    audited as (insert into ${s}.audit (job_id, event, worker) select id, 'complete', $2 from done)
    select count(*)::int as n from done`;
  const completes = {
    // the form kept: join to unnest on the primary key only
    unnest: `with done as (
        update ${s}.jobs as j set status = 'done', locked_by = null, locked_until = null
          from unnest($1::bigint[]) as d(id) where j.id = d.id
        returning j.id)${auditDone}`,
    // the lease owner checked inside the join
    'unnest-owner': `with done as (
        update ${s}.jobs as j set status = 'done', locked_by = null, locked_until = null
          from unnest($1::bigint[]) as d(id) where j.id = d.id and j.locked_by = $2
        returning j.id)${auditDone}`,
    // no join: = any(array) on the primary key, owner checked as a plain filter
    'any-owner': `with done as (
        update ${s}.jobs as j set status = 'done', locked_by = null, locked_until = null
         where j.id = any($1::bigint[]) and j.locked_by = $2
        returning j.id)${auditDone}`,
  };
  if (!claims[o.claim]) throw new Error(`unknown claim variant ${o.claim}`);
  if (!completes[o.complete]) throw new Error(`unknown completion variant ${o.complete}`);
  return {
    claim: claims[o.claim],
    complete: completes[o.complete],
    renew: `update ${s}.jobs set locked_until = now() + $3::int * interval '1 millisecond'
             where id = any($1::bigint[]) and locked_by = $2 and status = 'running'`,
    sweep: `with reclaimed as (
        update ${s}.jobs set status = 'ready', locked_by = null, locked_until = null
         where id = any(array(select id from ${s}.jobs where status = 'running' and locked_until < now()
                              for update skip locked))
        returning id),
      audited as (insert into ${s}.audit (job_id, event, worker) select id, 'reclaim', $1 from reclaimed),
      notified as (select pg_notify('${channel(schema)}', count(*)::text) from reclaimed having count(*) > 0)
      select count(*)::int as n from reclaimed left join notified on true`,
    release: `update ${s}.jobs set status = 'ready', locked_by = null, locked_until = null
               where id = any($1::bigint[]) and locked_by = $2`,
  };
}

export async function work(ctx, { concurrency, handler, onReady, until }) {
  const o = { ...DEFAULTS, ...ctx.options, ...envOverrides() };
  const { connectionString, schema } = ctx;
  const B = o.batch;
  const me = `w${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const sql = statements(schema, o);
  const named = (name, text, values) => (o.prepared ? { name, text, values } : { text, values });
  const pool = new pg.Pool({ connectionString, max: concurrency + 3, application_name: 'pgbench-plain-worker' });
  const listener = new pg.Client({ connectionString, application_name: 'pgbench-plain-listener' });
  await listener.connect();

  const buffer = []; // claimed, not started: { id, payload }
  const running = new Set(); // ids whose handler runs
  let toComplete = [];
  let claimsInFlight = 0;
  let flushing = null;
  let drained = false; // the last claim came back short: wait for a notification or the poll timer
  let stopping = false;
  let failure = null;
  const fail = (error) => {
    failure ??= error;
    stopping = true;
  };

  const claim = async () => {
    claimsInFlight++;
    try {
      const { rows } = await pool.query(named(`claim_${o.claim}`, sql.claim, [B, me, o.leaseMs]));
      if (rows.length < B) drained = true;
      for (const row of rows) buffer.push(row);
    } catch (error) {
      fail(error);
    } finally {
      claimsInFlight--;
    }
    dispatch();
    pump();
  };

  const pump = () => {
    while (!stopping && !drained && buffer.length + claimsInFlight * B < concurrency) claim();
  };

  const dispatch = () => {
    while (running.size < concurrency && buffer.length > 0) {
      const job = buffer.shift();
      running.add(job.id);
      Promise.resolve(handler(job.payload)).then(
        () => {
          running.delete(job.id);
          toComplete.push(job.id);
          flush();
          dispatch();
          pump();
        },
        fail,
      );
    }
  };

  const flush = () => {
    if (flushing || toComplete.length === 0) return flushing;
    const ids = toComplete;
    toComplete = [];
    flushing = pool
      .query(named(`complete_${o.complete}`, sql.complete, [ids, me]))
      .then(({ rows }) => {
        if (rows[0].n !== ids.length) fail(new Error(`completed ${rows[0].n} of ${ids.length} (lease lost?)`));
      }, fail)
      .finally(() => {
        flushing = null;
        flush();
      });
    return flushing;
  };

  const wake = () => {
    drained = false;
    pump();
  };
  listener.on('notification', wake);
  listener.on('error', fail);
  await listener.query(`listen "${channel(schema)}"`);
  const poll = setInterval(wake, o.pollMs);
  const renew = setInterval(() => {
    const ids = [...running, ...buffer.map((j) => j.id)];
    if (ids.length) pool.query(named('renew', sql.renew, [ids, me, o.leaseMs])).catch(fail);
  }, Math.round(o.leaseMs / 3));
  const sweep = setInterval(() => {
    pool.query(named('sweep', sql.sweep, [me])).catch(fail);
  }, Math.round(o.leaseMs / 2));

  onReady();
  pump();
  await Promise.race([until, new Promise((resolve) => {
    const check = setInterval(() => failure && (clearInterval(check), resolve()), 50);
    until.then(() => clearInterval(check));
  })]);
  stopping = true;
  clearInterval(poll);
  clearInterval(renew);
  clearInterval(sweep);
  while (claimsInFlight > 0 || running.size > 0 || flushing || toComplete.length) {
    await flush();
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  if (buffer.length) await pool.query(sql.release, [buffer.splice(0).map((j) => j.id), me]);
  await listener.end();
  await pool.end();
  if (failure) throw failure;
  return { workerId: me, batch: B, claim: o.claim, complete: o.complete };
}

export const recovery = {
  supported: true,
  // the recovery run uses a short lease so that the measurement stays short
  options: { leaseMs: 2000 },
  note: 'lease column: a killed worker stops renewing locked_until; any live worker\'s sweep (every lease/2) puts expired jobs back to ready and NOTIFYs',
};

// the ceiling in the scale-out phase (1, 2 and 3 worker processes)
export const scaleOut = ['plain-sql B=500'];
