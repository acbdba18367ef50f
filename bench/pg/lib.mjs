// Helpers of the PostgreSQL queue benchmark (bench/pg/): child processes, server statistics,
// random names, clocks and client-side statement counting. See bench/pg/run.mjs for the method.
import { execFileSync, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
const CHILD = fileURLToPath(new URL('./child.mjs', import.meta.url));

/** Wall-clock milliseconds, comparable between processes on this machine (sub-millisecond resolution). */
export const now = () => performance.timeOrigin + performance.now();

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Like sleep, but does not keep the process alive (for time limits raced against other promises). */
export const deadline = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());

/** A fresh lower-case name such as `pgbench_3f9a1c2e`, safe unquoted as a PostgreSQL identifier. */
export function randomName(prefix = 'pgbench') {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

export function quoteIdent(name) {
  return `"${String(name).replace(/"/g, '""')}"`;
}

/**
 * Runs one role of a contender in `node bench/pg/child.mjs`, talking over IPC. Resolves with the
 * child's `result` message. `onMessage` sees every other message (`ready`, `started`, …); the
 * returned `child` handle can be killed. Rejects if the child exits without a result, or after
 * `timeoutMs` (the child is then killed).
 */
export function runChild(job, { onMessage = () => {}, timeoutMs = 300_000, label = job.role } = {}) {
  const child = fork(CHILD, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced' });
  let stderrTail = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => {
    stderrTail = (stderrTail + chunk).slice(-4000);
    process.stderr.write(chunk.replace(/^(?=.)/gm, `    [${label}] `));
  });
  const done = new Promise((resolve, reject) => {
    let result;
    let failure;
    const timer = setTimeout(() => {
      failure = new Error(`${label}: no result after ${timeoutMs} ms (killed)`);
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('message', (message) => {
      if (message?.type === 'result') result = message.result;
      else if (message?.type === 'error') failure = Object.assign(new Error(`${label}: ${message.message}`), { childStack: message.stack });
      else onMessage(message, child);
    });
    child.on('error', (error) => (failure ??= error));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (failure) return reject(failure);
      if (result !== undefined) return resolve(result);
      reject(new Error(`${label}: exited (code ${code}, signal ${signal}) without a result${stderrTail ? `; stderr: ${stderrTail.slice(-600)}` : ''}`));
    });
  });
  child.send(job);
  return { child, done };
}

/** One short-lived client for the runner's own queries (schemas, statistics). */
export async function withClient(connectionString, fn) {
  const client = new pg.Client({ connectionString, application_name: 'pgbench-runner' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Server-side counters: the database's committed transactions (every session on it, so other
 * users of the database add noise) and the row writes on the tables of `schema` (only ours).
 */
export async function serverStats(connectionString, schema) {
  return withClient(connectionString, async (client) => {
    await client.query('select pg_stat_clear_snapshot()');
    const db = await client.query('select xact_commit::float8 as commits, xact_rollback::float8 as rollbacks from pg_stat_database where datname = current_database()');
    const tables = schema
      ? await client.query(
        `select coalesce(sum(n_tup_ins), 0)::float8 as ins, coalesce(sum(n_tup_upd), 0)::float8 as upd,
                coalesce(sum(n_tup_hot_upd), 0)::float8 as hot, coalesce(sum(n_tup_del), 0)::float8 as del
           from pg_stat_user_tables where schemaname = $1`,
        [schema],
      )
      : { rows: [{ ins: 0, upd: 0, hot: 0, del: 0 }] };
    return { ...db.rows[0], ...tables.rows[0] };
  });
}

export function statsDelta(after, before) {
  const out = {};
  for (const key of Object.keys(after)) out[key] = after[key] - before[key];
  return out;
}

/** Drops a schema and everything in it (the runner's own clean-up, whatever the contender left). */
export async function dropSchema(connectionString, schema) {
  await withClient(connectionString, (client) => client.query(`drop schema if exists ${quoteIdent(schema)} cascade`));
}

/**
 * Counts, in this process, the statements node-postgres sends and the transactions they commit
 * (BEGIN … COMMIT counts one; a statement outside a transaction block counts one). Wraps
 * `pg.Client.prototype.query`, which pg.Pool and every library here go through.
 */
export function countPgStatements(pgModule = pg) {
  const counts = { statements: 0, commits: 0, rollbacks: 0 };
  const proto = pgModule.Client.prototype;
  if (proto.__pgbenchCounted) return proto.__pgbenchCounted;
  const original = proto.query;
  const inTx = new WeakSet();
  proto.query = function countedQuery(config, ...rest) {
    const text = typeof config === 'string' ? config : config?.text;
    if (typeof text === 'string') {
      counts.statements++;
      const head = text.trimStart().slice(0, 20).toLowerCase();
      if (head.startsWith('begin') || head.startsWith('start transaction')) inTx.add(this);
      else if (head.startsWith('commit') || head.startsWith('end')) {
        counts.commits++;
        inTx.delete(this);
      } else if (head.startsWith('rollback')) {
        if (!head.startsWith('rollback to')) {
          counts.rollbacks++;
          inTx.delete(this);
        }
      } else if (!inTx.has(this)) counts.commits++;
    }
    return original.call(this, config, ...rest);
  };
  proto.__pgbenchCounted = counts;
  return counts;
}

/** Counts, in this process, the commands ioredis sends (a Lua script call counts one). */
export async function countRedisCommands() {
  const { Redis } = await import('ioredis');
  const counts = { statements: 0, commits: 0, rollbacks: 0 };
  const proto = Redis.prototype;
  if (proto.__pgbenchCounted) return proto.__pgbenchCounted;
  const original = proto.sendCommand;
  proto.sendCommand = function countedSendCommand(command, ...rest) {
    counts.statements++;
    return original.call(this, command, ...rest);
  };
  proto.__pgbenchCounted = counts;
  return counts;
}

let clockTicks = null;
function ticksPerSecond() {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU time (user + system, ms) of a process from /proc, or null when it is gone or not visible. */
function processCpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond();
  } catch {
    return null;
  }
}

/**
 * Samples, every `everyMs`, the CPU time of the server backends connected to `database` (from
 * /proc: the server must run on this machine), and returns `stop()` → total ms they used since
 * the start (a backend that exits between two samples loses at most `everyMs` of its time; the
 * server's shared processes, such as the WAL writer, are not counted). Resolves to null when
 * /proc does not show the server's processes.
 */
export async function sampleServerCpu(connectionString, database, everyMs = 50) {
  const client = new pg.Client({ connectionString, application_name: 'pgbench-cpu-sampler' });
  await client.connect();
  const base = new Map();
  const latest = new Map();
  const sample = async (first) => {
    const { rows } = await client.query('select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [database]);
    for (const { pid } of rows) {
      const ms = processCpuMs(pid);
      if (ms === null) continue;
      if (!base.has(pid)) base.set(pid, first ? ms : 0);
      latest.set(pid, ms);
    }
  };
  await sample(true);
  let running = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(() => sample(false)).catch(() => {});
  }, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
      await sample(false).catch(() => {});
      await client.end();
      if (latest.size === 0) return null;
      let total = 0;
      for (const [pid, ms] of latest) total += ms - base.get(pid);
      return total;
    },
  };
}
