// One role of one contender in its own process, driven by bench/pg/run.mjs over IPC.
//
// The runner forks this file and sends one message { contender, variant, ctx, role, params }.
// Roles:
//   produce  params { count, mode: 'bulk' }            addMany() of `count` payloads { i }, then close
//            params { count, mode: 'trickle', gapMs }  addOne() of payloads { i, t } one by one, `gapMs`
//                                                      apart on a fixed schedule (t = submit time)
//   work     params { count, concurrency, mode }       the contender's worker until `count` handlers
//            mode 'run'     no-op handler, records handler times (and latency when payloads carry t)
//            mode 'victim'  handlers never finish (jobs stay in progress); reports each start; runs
//                           until the runner kills it
//            mode 'rescuer' no-op handler; reports each start; also stops on a { type: 'stop' } message
//            mode 'share'   no-op handler, one of several workers sharing the jobs (scale-out): reports
//                           { type: 'count', handled } at most every 20 ms, runs until a { type: 'stop' }
//                           message; returns every handler end time and the counts up to its last end
// Messages to the runner: { type: 'ready' } once the worker is started (latency and recovery wait
// for it), { type: 'started', i, t } per handler start in victim/rescuer modes, then exactly one
// { type: 'result', result } or { type: 'error', message }; progress goes to stderr.
import { countPgStatements, countRedisCommands, now, sleep } from './lib.mjs';

const log = (line) => process.stderr.write(`${line}\n`);

function waitForJob() {
  return new Promise((resolve) => process.once('message', resolve));
}

async function produce(contender, ctx, params, counts) {
  const producer = await contender.createProducer(ctx);
  const c0 = { ...counts };
  const startedAt = now();
  let submitMs = [];
  if (params.mode === 'bulk') {
    const payloads = Array.from({ length: params.count }, (_, i) => ({ i }));
    await producer.addMany(payloads);
  } else {
    for (let i = 0; i < params.count; i++) {
      const due = startedAt + i * params.gapMs;
      const wait = due - now();
      if (wait > 0) await sleep(wait);
      const t = now();
      await producer.addOne({ i, t });
      submitMs.push(now() - t);
    }
  }
  const endedAt = now();
  const c1 = { ...counts };
  await producer.close();
  return {
    count: params.count,
    ms: endedAt - startedAt,
    jobsPerSec: (params.count * 1000) / (endedAt - startedAt),
    submitMs: submitMs.length ? submitMs : undefined,
    client: diffCounts(c1, c0),
  };
}

function diffCounts(a, b) {
  return { statements: a.statements - b.statements, commits: a.commits - b.commits, rollbacks: a.rollbacks - b.rollbacks };
}

async function work(contender, ctx, params, counts) {
  const { count, concurrency, mode } = params;
  let started = 0;
  let finished = 0;
  let firstStart = NaN;
  let lastEnd = NaN;
  let c0 = null;
  let cEnd = null;
  let cpu0 = null;
  let cpuEnd = null;
  const latencies = [];
  // share mode: when each handler ended (the runner merges the workers' times)
  const ends = mode === 'share' ? [] : null;
  let reportTimer = null;
  let reported = 0;
  let resolveUntil;
  const until = new Promise((resolve) => (resolveUntil = resolve));
  let stopRequested = false;
  process.on('message', (message) => {
    if (message?.type === 'stop') {
      stopRequested = true;
      resolveUntil();
    }
  });
  const never = new Promise(() => {});
  const handler = (payload) => {
    const t = now();
    if (started++ === 0) {
      firstStart = t;
      c0 = { ...counts };
      cpu0 = process.cpuUsage();
    }
    if (payload && typeof payload.t === 'number') latencies.push(t - payload.t);
    if (mode === 'victim' || mode === 'rescuer') process.send({ type: 'started', i: payload?.i, t });
    if (mode === 'victim') return never;
    if (ends !== null) {
      finished++;
      lastEnd = now();
      ends.push(lastEnd);
      cEnd = { ...counts };
      cpuEnd = process.cpuUsage(cpu0);
      return Promise.resolve();
    }
    if (++finished === count) {
      lastEnd = now();
      cEnd = { ...counts };
      cpuEnd = process.cpuUsage(cpu0);
      resolveUntil();
    }
    return Promise.resolve();
  };
  const t0 = now();
  let readyAt = NaN;
  const onReady = () => {
    readyAt = now();
    process.send({ type: 'ready', t: readyAt });
    if (ends !== null) {
      reportTimer = setInterval(() => {
        if (finished === reported) return;
        reported = finished;
        process.send({ type: 'count', handled: finished });
      }, 20);
    }
  };
  const info = await contender.work(ctx, { concurrency, handler, onReady, until });
  const closedAt = now();
  if (reportTimer !== null) clearInterval(reportTimer);
  if (Number.isNaN(readyAt) && !stopRequested) throw new Error('the contender never called onReady()');
  const cClosed = { ...counts };
  return {
    count,
    handled: finished,
    stopRequested,
    startupMs: readyAt - t0,
    firstStartAfterReadyMs: firstStart - readyAt,
    ms: lastEnd - firstStart,
    jobsPerSec: (finished * 1000) / (lastEnd - firstStart),
    closeMs: closedAt - lastEnd,
    jobsPerSecWithClose: (finished * 1000) / (closedAt - firstStart),
    latenciesMs: latencies.length ? latencies : undefined,
    firstStart,
    lastEnd,
    ends: ends === null ? undefined : Float64Array.from(ends),
    // client-side counts between the first handler start and the last handler end
    client: c0 && cEnd ? diffCounts(cEnd, c0) : undefined,
    // and over the whole life of the worker (start-up and close included)
    clientTotal: diffCounts(cClosed, { statements: 0, commits: 0, rollbacks: 0 }),
    // CPU time of this worker process (user + system, all threads) in the same window, ms
    cpuMs: cpuEnd ? (cpuEnd.user + cpuEnd.system) / 1000 : undefined,
    info: info ?? undefined,
  };
}

const job = await waitForJob();
try {
  const counts = job.ctx.kind === 'redis' ? await countRedisCommands() : countPgStatements();
  const module = await import(job.contender);
  const variant = module.variants ? module.variants[job.variant ?? 0] : undefined;
  const ctx = { ...job.ctx, options: { ...(variant?.options ?? {}), ...(job.ctx.recovery ?? {}) } };
  const result = job.role === 'produce' ? await produce(module, ctx, job.params, counts) : await work(module, ctx, job.params, counts);
  process.send({ type: 'result', result }, () => process.exit(0));
} catch (error) {
  log(error?.stack ?? String(error));
  process.send({ type: 'error', message: error?.message ?? String(error), stack: error?.stack }, () => process.exit(1));
}
