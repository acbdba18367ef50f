// PostgreSQL job-queue benchmark: our PostgreSQL backend side by side with its peers, in one run.
//
//   node bench/pg/run.mjs                     every contender in bench/pg/contenders/, all phases
//   node bench/pg/run.mjs --quick             smaller counts: a smoke run in well under a minute
//   node bench/pg/run.mjs --only=graphile-tuned,plain-sql   some contenders (file names)
//   node bench/pg/run.mjs --phases=throughput,latency       some of throughput, latency, scaleout, recovery
//   node bench/pg/run.mjs --rounds=5          throughput and scale-out rounds (default 3, --quick 1; median shown)
//   node bench/pg/run.mjs --nodes=1,2,3       worker process counts of the scale-out phase (default 1,2,3)
//   node bench/pg/run.mjs --same-database     see "Database" below
//   DATABASE_URL=postgres://… REDIS_URL=redis://… node bench/pg/run.mjs
//   BENCH_PG_JOBS=20000 BENCH_PG_LATENCY_JOBS=200 BENCH_PG_GAP_MS=20 BENCH_PG_CONCURRENCY=10
//
// Results are printed as JSON on stdout (so bench/run.mjs can spawn this like its other modules);
// progress, and the same figures as markdown tables, go to stderr. Each measurement runs in a fresh
// schema (or Redis key prefix) with a random name, created before and dropped after it.
//
// Database
//   By default the runner creates a database of its own (pgbench_<random>) on the server of
//   DATABASE_URL and drops it at the end (also on SIGINT/SIGTERM), so that the server-side commit
//   counts (pg_stat_database.xact_commit) are ours alone. If it cannot (no CREATEDB right), or with
//   --same-database, it works in DATABASE_URL's database and says that other sessions count too.
//
// Phases
//   throughput  Rounds (default 3) over all contenders, the order rotated from round to round; the
//               median round of each is shown with every round's jobs/s. In each round:
//               N no-op jobs (default 20,000) committed in bulk by a producer process, then a worker
//               process (concurrency 10) processes them all. jobs/s = N / (last handler end − first
//               handler start) in the worker process; "with close" also counts the clean shutdown
//               that commits the last completions. Per job, in the worker's window: statements and
//               commits counted client-side (every pg.Client query / ioredis command of the worker
//               process), and server-side the database's xact_commit delta over the whole worker
//               process (other sessions on the database add to it) and the row writes
//               (n_tup_ins + n_tup_upd + n_tup_del) on the tables of the fresh schema.
//   latency     The worker process is started and idle; then a producer process submits 200 jobs one
//               by one, 20 ms apart. Latency = handler start − submit time, both read as
//               performance.timeOrigin + performance.now() (same machine clock); p50, p99, max.
//   scaleout    Rounds over the contenders that declare `scaleOut`: for each process count (--nodes),
//               N jobs committed by a producer, then that many worker processes started at once
//               (concurrency 10 each) share them, stopped by the runner once their reported counts
//               add up to N. jobs/s over all workers, speed-up over one process in the same round,
//               the rate while all were busy, statements, commits and CPU per job (see scaleOut()).
//   recovery    See bench/pg/recovery.mjs: SIGKILL a worker holding jobs, time until they run in
//               another worker process. Only for contenders that declare `recovery`.
// Server CPU: with a database of its own, the runner samples the CPU time of that database's
// backends from /proc while workers run (serverCpuUs per job; the server must be on this machine).
//
// Contender interface (one file per system in bench/pg/contenders/; ours is added as ours.mjs and
// picked up without touching this runner). Every function gets a context
//   ctx = { kind, connectionString, schema, redisUrl, prefix, options }
// where options are the variant's (see `variants`), merged with `recovery.options` in that phase.
//   export const kind = 'postgres' | 'redis'
//   export const variants = [{ label, options }, …]   optional: several rows from one file
//   export const quickVariants = [label, …]            optional: the variants --quick runs
//   export function describe(options) → object         the exact settings used (printed in the output)
//   export const sizes = { throughput, latency, note } optional: smaller counts for a slow contender
//   export async function setup(ctx)                   install tables/migrations (runner process)
//   export async function teardown(ctx)                remove them (the runner also drops the schema)
//   export async function pending(ctx) → number        optional: jobs not done (checked after throughput)
//   export async function createProducer(ctx) → { addMany(payloads), addOne(payload), close() }
//       addMany enqueues and commits all payloads (in bulk, as the library advises); addOne one job
//       (committed when it resolves). Payloads are small objects ({ i } or { i, t }).
//   export async function work(ctx, { concurrency, handler, onReady, until }) → info
//       start a worker running at most `concurrency` handlers at a time; for each job call
//       handler(payload) and await it; call onReady() once the worker waits for jobs (LISTEN
//       established etc.); when the promise `until` resolves, stop cleanly (commit pending
//       completions, close connections) and return (optionally an object of facts to print).
//   export const recovery = { supported, options, note, probeMs, expectedMs }   optional, see recovery.mjs
//   export const scaleOut = true | [label, …]         optional: run the scale-out phase (all variants, or these)
// Producer and worker always run in separate child processes (bench/pg/child.mjs).
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { envInt, median, percentile, rotate } from '../common.mjs';
import { DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, dropSchema, randomName, runChild, sampleServerCpu, serverStats, sleep, statsDelta, withClient } from './lib.mjs';
import { measureRecovery } from './recovery.mjs';
import { renderMarkdown } from './render.mjs';

const CONTENDERS_DIR = new URL('./contenders/', import.meta.url);
const ORDER = ['ours', 'plain-sql', 'graphile-tuned', 'graphile-default', 'pgboss-tuned', 'pgboss-default', 'bullmq'];
const PHASES = ['throughput', 'latency', 'scaleout', 'recovery'];

const args = process.argv.slice(2);
const arg = (name) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const quick = args.includes('--quick');
const baseConnectionString = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
let dropOwnDatabase = async () => {};
const ownDatabase = args.includes('--same-database') ? null : await createOwnDatabase();
const connectionString = ownDatabase ? withDatabase(baseConnectionString, ownDatabase) : baseConnectionString;
const redisUrl = process.env.REDIS_URL || DEFAULT_REDIS_URL;
const config = {
  quick,
  jobs: envInt('BENCH_PG_JOBS', quick ? 300 : 20_000),
  latencyJobs: envInt('BENCH_PG_LATENCY_JOBS', quick ? 15 : 200),
  gapMs: envInt('BENCH_PG_GAP_MS', 20),
  concurrency: envInt('BENCH_PG_CONCURRENCY', 10),
  rounds: Number(arg('rounds') ?? (quick ? 1 : 3)),
  nodes: (arg('nodes') ?? '1,2,3').split(',').map(Number),
  recoveryJobs: 10,
  recoveryTimeoutMs: quick ? 8000 : 15_000,
  recoveryProbeMs: quick ? 1500 : 5000,
  settleMs: quick ? 150 : 300,
  connectionString: connectionString.replace(/:[^:@/]*@/, ':***@'),
  ownDatabase,
  serverCommits: ownDatabase ? 'this run only (own database)' : 'whole database: other sessions count too',
  redisUrl,
};
const phases = (arg('phases') ?? PHASES.join(',')).split(',').filter(Boolean);
for (const p of phases) if (!PHASES.includes(p)) throw new Error(`unknown phase '${p}' (one of ${PHASES.join(', ')})`);

const t00 = performance.now();
const log = (line) => console.error(`  · [${((performance.now() - t00) / 1000).toFixed(1)} s] ${line}`);

function withDatabase(url, database) {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.href;
}

async function createOwnDatabase() {
  const name = randomName('pgbench');
  try {
    await withClient(baseConnectionString, (client) => client.query(`create database ${name}`));
  } catch (error) {
    console.error(`  · could not create a database of its own (${error.message}): working in DATABASE_URL's database`);
    return null;
  }
  const drop = () => withClient(baseConnectionString, (client) => client.query(`drop database if exists ${name} with (force)`));
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      console.error(`  · ${signal}: dropping database ${name}`);
      drop().finally(() => process.exit(130));
    });
  }
  dropOwnDatabase = drop;
  return name;
}

async function loadContenders() {
  const files = (await readdir(CONTENDERS_DIR)).filter((f) => f.endsWith('.mjs') && !f.startsWith('_')).map((f) => f.slice(0, -4));
  const rank = (name) => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length);
  files.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const only = arg('only')?.split(',').filter(Boolean);
  if (only) for (const name of only) if (!files.includes(name)) throw new Error(`no contender '${name}' (have ${files.join(', ')})`);
  const out = [];
  for (const name of only ? files.filter((f) => only.includes(f)) : files) {
    const url = new URL(`${name}.mjs`, CONTENDERS_DIR).href;
    const module = await import(url);
    const variants = module.variants ?? [{ label: name, options: {} }];
    variants.forEach((v, index) => {
      if (quick && module.quickVariants && !module.quickVariants.includes(v.label)) return;
      out.push({ name, url, module, variant: index, label: v.label, options: v.options ?? {} });
    });
  }
  return out;
}

function freshCtx(c) {
  const schema = randomName('pgbench');
  return { kind: c.module.kind ?? 'postgres', connectionString, schema, redisUrl, prefix: `pgbench:${schema}`, options: c.options };
}

async function withFreshStore(c, fn) {
  const ctx = freshCtx(c);
  await c.module.setup(ctx);
  try {
    return await fn(ctx);
  } finally {
    await c.module.teardown(ctx).catch((error) => log(`${c.label}: teardown failed: ${error.message}`));
    if (ctx.kind === 'postgres') await dropSchema(connectionString, ctx.schema).catch(() => {});
  }
}

const job = (c, ctx, role, params) => ({ contender: c.url, variant: c.variant, ctx: { ...ctx, options: undefined }, role, params });
const pgStats = (ctx) => (ctx.kind === 'postgres' ? serverStats(connectionString, ctx.schema) : null);
/** CPU of the server backends of our own database (needs one: other sessions would count), else null. */
const serverCpu = async (ctx) => {
  if (ctx.kind !== 'postgres' || !ownDatabase) return { stop: async () => null };
  return (await sampleServerCpu(baseConnectionString, ownDatabase).catch(() => null)) ?? { stop: async () => null };
};
const per = (n, jobs) => (n === undefined || n === null ? null : n / jobs);

async function throughput(c, count) {
  return withFreshStore(c, async (ctx) => {
    const s0 = await pgStats(ctx);
    const produced = await runChild(job(c, ctx, 'produce', { count, mode: 'bulk' }), { label: `${c.label} producer`, timeoutMs: 180_000 }).done;
    await sleep(config.settleMs); // let the exited backends flush their statistics
    const s1 = await pgStats(ctx);
    const cpu = await serverCpu(ctx);
    const worked = await runChild(job(c, ctx, 'work', { count, concurrency: config.concurrency, mode: 'run' }), { label: `${c.label} worker`, timeoutMs: 600_000 }).done;
    const serverCpuMs = await cpu.stop();
    await sleep(config.settleMs);
    const s2 = await pgStats(ctx);
    const pending = c.module.pending ? await c.module.pending(ctx) : null;
    if (pending) log(`${c.label}: ${pending} jobs not done after the worker stopped`);
    const server = s2 ? statsDelta(s2, s1) : null;
    return {
      jobs: count,
      jobsPerSec: worked.jobsPerSec,
      jobsPerSecWithClose: worked.jobsPerSecWithClose,
      ms: worked.ms,
      closeMs: worked.closeMs,
      startupMs: worked.startupMs,
      firstJobAfterReadyMs: worked.firstStartAfterReadyMs,
      produceJobsPerSec: produced.jobsPerSec,
      produceMs: produced.ms,
      pendingAfter: pending,
      perJob: {
        // client side, between the first handler start and the last handler end (Redis: commands,
        // a Lua script call counting one)
        statements: per(worked.client?.statements, count),
        commits: ctx.kind === 'redis' ? null : per(worked.client?.commits, count),
        // client side, whole worker process (start-up and close included)
        statementsTotal: per(worked.clientTotal?.statements, count),
        // server side, whole worker process
        serverCommits: server ? per(server.commits, count) : null,
        rowWrites: server ? per(server.ins + server.upd + server.del, count) : null,
        rowInserts: server ? per(server.ins, count) : null,
        rowUpdates: server ? per(server.upd, count) : null,
        rowDeletes: server ? per(server.del, count) : null,
        // CPU of the worker process (not of the server) in the same window, microseconds per job
        workerCpuUs: worked.cpuMs === undefined ? null : (worked.cpuMs * 1000) / count,
        // CPU of the server backends of the run's database, whole worker process, microseconds per job
        serverCpuUs: serverCpuMs === null ? null : (serverCpuMs * 1000) / count,
      },
      loadAverage: os.loadavg()[0],
      producer: { statements: produced.client.statements, commits: produced.client.commits, serverCommits: s1 && s0 ? s1.commits - s0.commits : null },
      info: worked.info,
    };
  });
}

async function latency(c, count) {
  return withFreshStore(c, async (ctx) => {
    let readyResolve;
    const ready = new Promise((resolve) => (readyResolve = resolve));
    const worker = runChild(job(c, ctx, 'work', { count, concurrency: config.concurrency, mode: 'run' }), {
      label: `${c.label} worker`,
      timeoutMs: 300_000,
      onMessage: (m) => m.type === 'ready' && readyResolve(),
    });
    worker.done.catch(() => readyResolve());
    await ready;
    await sleep(config.quick ? 200 : 500); // idle and waiting before the first submit
    const produced = await runChild(job(c, ctx, 'produce', { count, mode: 'trickle', gapMs: config.gapMs }), { label: `${c.label} producer`, timeoutMs: 300_000 }).done;
    const worked = await worker.done;
    const l = worked.latenciesMs;
    if (!l || l.length !== count) throw new Error(`latency: ${l?.length ?? 0} of ${count} samples`);
    return {
      jobs: count,
      gapMs: config.gapMs,
      p50: percentile(l, 0.5),
      p90: percentile(l, 0.9),
      p99: percentile(l, 0.99),
      max: Math.max(...l),
      min: Math.min(...l),
      submitP50: percentile(produced.submitMs, 0.5),
      submitP99: percentile(produced.submitMs, 0.99),
    };
  });
}

/**
 * The same `count` jobs, committed first, processed by `nodes` worker processes started at once
 * (concurrency 10 each). Each worker reports how many jobs it has handled; once they add up to
 * `count` the runner stops them all. Rates: overall = count / (last handler end − first handler
 * start, over all workers); "all busy" = handler ends between the last worker's first start and
 * the first worker's last end, over that window (so a worker that started late or ran out early
 * does not count as a node).
 */
async function scaleOut(c, count, nodes) {
  return withFreshStore(c, async (ctx) => {
    await runChild(job(c, ctx, 'produce', { count, mode: 'bulk' }), { label: `${c.label} producer`, timeoutMs: 180_000 }).done;
    await sleep(config.settleMs);
    const s1 = await pgStats(ctx);
    const cpu = await serverCpu(ctx);
    const handled = new Array(nodes).fill(0);
    const workers = [];
    let stopped = false;
    const stopAll = () => {
      stopped = true;
      for (const w of workers) if (w.child.connected) w.child.send({ type: 'stop' });
    };
    for (let k = 0; k < nodes; k++) {
      workers.push(
        runChild(job(c, ctx, 'work', { count, concurrency: config.concurrency, mode: 'share' }), {
          label: `${c.label} worker ${k + 1}/${nodes}`,
          timeoutMs: 180_000,
          onMessage: (m) => {
            if (m.type !== 'count') return;
            handled[k] = m.handled;
            if (!stopped && handled.reduce((a, b) => a + b, 0) >= count) stopAll();
          },
        }),
      );
    }
    let results;
    try {
      results = await Promise.all(workers.map((w) => w.done));
    } catch (error) {
      for (const w of workers) w.child.kill('SIGKILL');
      await Promise.allSettled(workers.map((w) => w.done));
      throw error;
    } finally {
      await cpu.stop().then((ms) => (ctx.serverCpuMs = ms));
    }
    await sleep(config.settleMs);
    const s2 = await pgStats(ctx);
    const total = results.reduce((a, r) => a + r.handled, 0);
    if (total !== count) throw new Error(`scale-out: ${total} of ${count} jobs handled`);
    const active = results.filter((r) => r.handled > 0);
    const first = Math.min(...active.map((r) => r.firstStart));
    const last = Math.max(...active.map((r) => r.lastEnd));
    const allStarted = Math.max(...results.map((r) => (r.handled > 0 ? r.firstStart : Infinity)));
    const firstDone = Math.min(...active.map((r) => r.lastEnd));
    let inWindow = 0;
    if (allStarted < firstDone) for (const r of results) for (const t of r.ends) if (t > allStarted && t <= firstDone) inWindow++;
    const sum = (key) => results.reduce((a, r) => (r.client ? a + r.client[key] : a), 0);
    const server = s2 ? statsDelta(s2, s1) : null;
    return {
      jobs: count,
      nodes,
      jobsPerSec: (count * 1000) / (last - first),
      allBusy: inWindow > 0 ? { jobsPerSec: (inWindow * 1000) / (firstDone - allStarted), share: inWindow / count } : null,
      workers: results.map((r) => ({ handled: r.handled, startMs: r.handled > 0 ? r.firstStart - first : null, jobsPerSec: r.handled > 0 ? (r.handled * 1000) / (r.lastEnd - r.firstStart) : 0 })),
      perJob: {
        statements: sum('statements') / count,
        commits: sum('commits') / count,
        serverCommits: server ? server.commits / count : null,
        rowWrites: server ? (server.ins + server.upd + server.del) / count : null,
        workerCpuUs: (results.reduce((a, r) => a + (r.cpuMs ?? 0), 0) * 1000) / count,
        serverCpuUs: ctx.serverCpuMs == null ? null : (ctx.serverCpuMs * 1000) / count,
      },
      loadAverage: os.loadavg()[0],
    };
  });
}

function machine() {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cores: cpus.length,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    loadAverage: os.loadavg(),
  };
}

async function versions() {
  const out = {};
  for (const name of ['pg', 'graphile-worker', 'pg-boss', 'bullmq', 'ioredis']) {
    try {
      const { createRequire } = await import('node:module');
      const require = createRequire(import.meta.url);
      out[name] = require(`${name}/package.json`).version;
    } catch {
      // not resolvable through its exports map: read it from disk
      try {
        const { readFile } = await import('node:fs/promises');
        const path = fileURLToPath(new URL(`../../node_modules/${name}/package.json`, import.meta.url));
        out[name] = JSON.parse(await readFile(path, 'utf8')).version;
      } catch {
        out[name] = null;
      }
    }
  }
  try {
    out.postgres = await withClient(connectionString, async (client) => (await client.query('show server_version')).rows[0].server_version);
  } catch (error) {
    out.postgres = `unreachable: ${error.message}`;
  }
  return out;
}

function ratios(results) {
  const tp = Object.fromEntries(Object.entries(results).filter(([, r]) => r.throughput?.jobsPerSec).map(([k, r]) => [k, r.throughput.jobsPerSec]));
  const plain = Object.entries(tp).filter(([k]) => k.startsWith('plain-sql'));
  const ceilingLabel = plain.length ? plain.reduce((a, b) => (b[1] > a[1] ? b : a))[0] : null;
  const out = { ceiling: ceilingLabel, overCeiling: {}, oursOver: {} };
  for (const [k, v] of Object.entries(tp)) if (ceilingLabel) out.overCeiling[k] = v / tp[ceilingLabel];
  const ours = Object.keys(tp).find((k) => k === 'ours' || k.startsWith('ours'));
  if (ours) for (const [k, v] of Object.entries(tp)) if (k !== ours) out.oursOver[k] = tp[ours] / v;
  return out;
}

/** Smaller counts for a contender that declares `sizes` (a slow one), scaled down further by --quick. */
function sizeFor(c, key, full) {
  const sizes = c.module.sizes ?? {};
  return sizes[key] ? Math.min(full, quick ? Math.max(1, Math.ceil(sizes[key] / 5)) : sizes[key]) : full;
}

async function throughputPhase(contenders, output) {
  const runs = new Map(contenders.map((c) => [c, []]));
  const errors = new Map();
  for (let round = 0; round < config.rounds; round++) {
    // rotate the order from round to round, so that drift on a shared machine hits everyone alike
    for (const c of rotate(contenders, round)) {
      if (errors.has(c) || (round > 0 && c.module.sizes?.throughput)) continue; // slow ones: one round
      const n = sizeFor(c, 'throughput', config.jobs);
      console.error(`${c.label}: throughput, ${n} jobs (round ${round + 1} of ${config.rounds})…`);
      try {
        const r = await throughput(c, n);
        runs.get(c).push(r);
        log(`${c.label}: ${Math.round(r.jobsPerSec)} jobs/s`);
      } catch (error) {
        errors.set(c, error);
        log(`${c.label}: throughput failed: ${error.message}`);
      }
    }
  }
  for (const c of contenders) {
    const list = runs.get(c);
    if (errors.has(c) && list.length === 0) {
      output.contenders[c.label].throughput = { error: errors.get(c).message };
      continue;
    }
    // the median run (by jobs/s) stands for the contender; every run's jobs/s is kept beside it
    const sorted = [...list].sort((a, b) => a.jobsPerSec - b.jobsPerSec);
    const median = sorted[Math.floor((sorted.length - 1) / 2)];
    output.contenders[c.label].throughput = { ...median, rounds: list.length, jobsPerSecRuns: list.map((r) => r.jobsPerSec), error: errors.get(c)?.message };
  }
}

async function latencyPhase(contenders, output) {
  for (const c of contenders) {
    const entry = output.contenders[c.label];
    const n = sizeFor(c, 'latency', config.latencyJobs);
    console.error(`${c.label}: latency, ${n} jobs ${config.gapMs} ms apart…`);
    try {
      entry.latency = await latency(c, n);
      log(`${c.label}: p50 ${entry.latency.p50.toFixed(1)} ms, p99 ${entry.latency.p99.toFixed(1)} ms`);
    } catch (error) {
      entry.latency = { error: error.message };
      log(`${c.label}: latency failed: ${error.message}`);
    }
  }
}

/** Contenders that declare `scaleOut` (true, or the labels of the variants to run). */
function scalesOut(c) {
  const spec = c.module.scaleOut;
  return spec === true || (Array.isArray(spec) && spec.includes(c.label));
}

async function scaleOutPhase(contenders, output) {
  const list = contenders.filter(scalesOut);
  const runs = new Map(list.map((c) => [c, new Map(config.nodes.map((n) => [n, []]))]));
  const errors = new Map();
  for (let round = 0; round < config.rounds; round++) {
    // node counts in turn, every contender at one count before the next: the same load for all
    for (const nodes of config.nodes) {
      for (const c of rotate(list, round)) {
        const key = `${c.label}/${nodes}`;
        if (errors.has(key)) continue;
        console.error(`${c.label}: scale-out, ${config.jobs} jobs on ${nodes} worker process(es) (round ${round + 1} of ${config.rounds})…`);
        try {
          const r = await scaleOut(c, config.jobs, nodes);
          r.round = round;
          runs.get(c).get(nodes).push(r);
          log(`${c.label} × ${nodes}: ${Math.round(r.jobsPerSec)} jobs/s${r.allBusy ? ` (all busy ${Math.round(r.allBusy.jobsPerSec)})` : ''}, split ${r.workers.map((w) => w.handled).join('/')}`);
        } catch (error) {
          errors.set(key, error);
          log(`${c.label} × ${nodes}: scale-out failed: ${error.message}`);
        }
      }
    }
  }
  for (const c of list) {
    const byNodes = {};
    for (const nodes of config.nodes) {
      const rs = runs.get(c).get(nodes);
      const error = errors.get(`${c.label}/${nodes}`)?.message;
      if (rs.length === 0) {
        byNodes[nodes] = { error: error ?? 'not run' };
        continue;
      }
      const sorted = [...rs].sort((a, b) => a.jobsPerSec - b.jobsPerSec);
      const median = sorted[Math.floor((sorted.length - 1) / 2)];
      byNodes[nodes] = { ...median, rounds: rs.length, jobsPerSecRuns: rs.map((r) => r.jobsPerSec), error };
    }
    // speed-up over one node within each round (the same load for both), and its median
    const one = runs.get(c).get(config.nodes[0]) ?? [];
    for (const nodes of config.nodes) {
      const entry = byNodes[nodes];
      if (entry.error && !entry.jobsPerSec) continue;
      const perRound = runs.get(c).get(nodes).map((r) => {
        const base = one.find((b) => b.round === r.round);
        return base ? r.jobsPerSec / base.jobsPerSec : NaN;
      }).filter(Number.isFinite);
      entry.speedUpRuns = perRound;
      entry.speedUp = perRound.length ? median(perRound) : null;
    }
    output.contenders[c.label].scaleOut = byNodes;
  }
}

async function recoveryPhase(contenders, output) {
  for (const c of contenders) {
    const spec = c.module.recovery;
    if (!spec || !(c.variant === 0 || spec.allVariants)) continue;
    const entry = output.contenders[c.label];
    if (spec.supported && spec.expectedMs > config.recoveryTimeoutMs) {
      entry.recovery = { supported: true, skipped: `needs ~${spec.expectedMs} ms, more than this run's ${config.recoveryTimeoutMs} ms limit (--quick)`, note: spec.note };
      log(`${c.label}: recovery skipped (${entry.recovery.skipped})`);
      continue;
    }
    console.error(`${c.label}: recovery…`);
    try {
      // setup (e.g. queue options) and both workers get the recovery options
      const rc = { ...c, options: { ...c.options, ...(spec.options ?? {}) } };
      entry.recovery = await withFreshStore(rc, (ctx) =>
        measureRecovery({ file: c.url, module: c.module, variant: c.variant, ctx: { ...ctx, options: undefined }, jobs: config.recoveryJobs, concurrency: config.concurrency, timeoutMs: config.recoveryTimeoutMs, probeMs: config.recoveryProbeMs, log }),
      );
      const r = entry.recovery;
      log(`${c.label}: recovered ${r.recovered}/${r.jobs ?? '?'}${r.lastMs != null ? `, last after ${Math.round(r.lastMs)} ms` : ''}`);
    } catch (error) {
      entry.recovery = { error: error.message };
      log(`${c.label}: recovery failed: ${error.message}`);
    }
  }
}

async function runContenders(contenders, output) {
  for (const c of contenders) {
    const entry = (output.contenders[c.label] = { file: `bench/pg/contenders/${c.name}.mjs`, kind: c.module.kind ?? 'postgres', settings: c.module.describe?.(c.options) ?? null });
    if (c.module.sizes?.note) entry.sizesNote = c.module.sizes.note;
  }
  if (phases.includes('throughput')) await throughputPhase(contenders, output);
  if (phases.includes('latency')) await latencyPhase(contenders, output);
  if (phases.includes('scaleout')) await scaleOutPhase(contenders, output);
  if (phases.includes('recovery')) await recoveryPhase(contenders, output);
}

const startedAt = performance.now();
const output = { machine: machine(), versions: await versions(), config, phases, contenders: {}, ratios: null, seconds: null };
try {
  const contenders = await loadContenders();
  console.error(`pg bench: ${contenders.map((c) => c.label).join(', ')}; phases ${phases.join(', ')}${quick ? ' (quick)' : ''}`);
  await runContenders(contenders, output);
} finally {
  await dropOwnDatabase().catch((error) => console.error(`  · could not drop database ${ownDatabase}: ${error.message}`));
}
output.ratios = ratios(output.contenders);
output.seconds = (performance.now() - startedAt) / 1000;
console.error(`\n${renderMarkdown(output)}\n`);
console.log(JSON.stringify(output, null, 2));
