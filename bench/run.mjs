// Runs every benchmark and prints their figures and ratios as markdown tables.
//
//   npm run bench                      build, then run everything (about 8 minutes on 2 cores, plus 10-12 for pg)
//   npm run bench -- --write           ... and rewrite the figures section of BENCHMARKS.md
//   BENCH_WRITE=1 npm run bench        same as --write
//   node bench/run.mjs --only=routing  run some of throughput, routing, memory, threads, resilience, streaming, persistence,
//                                      workflow, preemption, adaptive, telemetry, pg
//                                      (comma-separated)
//   BENCH_PG_ARGS='--only=ours,graphile-tuned --phases=throughput' node bench/run.mjs --only=pg
//                                      arguments for bench/pg/run.mjs (the PostgreSQL queue benchmark)
//
// Memory needs --expose-gc and runs in a child process started with it. Throughput runs in such a
// child too: its second phase forces a full GC before each run, and a child keeps both phases
// off this process's heap; threads, resilience and adaptive run in children for the same reason. Routing
// (a tight loop on a few objects) runs in this process.
// pg (bench/pg/run.mjs) needs PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test)
// and spawns its own processes; when the server is unreachable the section is skipped with a
// message, and --write refuses to start (it would record a run without it).
// Sizes can be lowered for a quick look (BENCH_TASKS, BENCH_MEMORY_TASKS, BENCH_RUNS, ...: see
// each module); --write refuses to record figures from non-default sizes.
import { spawn, execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { fmt, fmtInt, fmtRatio, table } from './common.mjs';
import { renderMarkdown as renderPgMarkdown } from './pg/render.mjs';
import { routing } from './routing.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCHMARKS_MD = new URL('../BENCHMARKS.md', import.meta.url);
const START = '<!-- bench:figures:start -->';
const END = '<!-- bench:figures:end -->';
const ALL = ['throughput', 'routing', 'memory', 'threads', 'resilience', 'streaming', 'persistence', 'workflow', 'preemption', 'adaptive', 'telemetry', 'pg'];
const SIZE_VARIABLES = ['BENCH_TASKS', 'BENCH_RUNS', 'BENCH_WARMUP_TASKS', 'BENCH_MEMORY_TASKS', 'BENCH_MEMORY_WARMUP_TASKS', 'BENCH_ROUTING_BATCHES', 'BENCH_ROUTING_SINGLES', 'BENCH_THREAD_TASKS', 'BENCH_FIB_TASKS', 'BENCH_RESILIENCE_RUNS', 'BENCH_STREAM_UPDATES', 'BENCH_STREAM_TASKS', 'BENCH_STREAM_TASK_UPDATES', 'BENCH_CHECKPOINT_TASKS', 'BENCH_CHECKPOINT_STEPS', 'BENCH_CHECKPOINT_INTERVAL', 'BENCH_WORKFLOW_STEPS', 'BENCH_WORKFLOW_RUNS', 'BENCH_PREEMPT_CRITICAL', 'BENCH_ADAPTIVE_TASKS', 'BENCH_ADAPTIVE_RUNS', 'BENCH_TELEMETRY_RUNS', 'BENCH_PG_JOBS', 'BENCH_PG_LATENCY_JOBS', 'BENCH_PG_GAP_MS', 'BENCH_PG_CONCURRENCY', 'BENCH_PG_ARGS'];

const args = process.argv.slice(2);
const write = args.includes('--write') || process.env.BENCH_WRITE === '1';
const onlyArg = args.find((arg) => arg.startsWith('--only='));
const only = onlyArg === undefined ? ALL : onlyArg.slice('--only='.length).split(',').filter(Boolean);
for (const name of only) if (!ALL.includes(name)) throw new Error(`unknown benchmark '${name}' (one of ${ALL.join(', ')})`);
const overridden = SIZE_VARIABLES.filter((name) => process.env[name] !== undefined);
if (write && (only.length !== ALL.length || overridden.length > 0)) {
  console.error(`--write records only a full run with default sizes (got --only=${only.join(',')}${overridden.length ? `, ${overridden.join(', ')} set` : ''})`);
  process.exit(2);
}

const log = (line) => console.error(`  · ${line}`);
const mark = (ok) => (ok ? 'yes' : '**no**');
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

function machine() {
  const cpus = os.cpus();
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    if (dirty) commit += ' + uncommitted changes in src/';
  } catch {
    // not a git checkout
  }
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cores: cpus.length,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    memoryGb: os.totalmem() / 1024 ** 3,
    loadAverage: os.loadavg(),
    commit,
  };
}

/** Runs bench/<name>.mjs in `node --expose-gc`; it prints its results as JSON on stdout, progress on stderr. */
function runChild(name, extraArgs = []) {
  const script = fileURLToPath(new URL(`./${name}.mjs`, import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', script, ...extraArgs], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => process.stderr.write(chunk.replace(/^(?=.)/gm, '  · ')));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`bench/${name}.mjs exited with code ${code}`));
      try {
        resolve(JSON.parse(stdout));
      } catch (error) {
        reject(new Error(`bench/${name}.mjs printed no JSON: ${error.message}`));
      }
    });
  });
}

function renderMachine(m, seconds) {
  return [
    `Recorded ${m.date} at commit ${m.commit}. Node ${m.node} on ${m.platform}, ${m.cores} cores (${m.cpu}), ${fmt(m.memoryGb, 1)} GB RAM;`,
    `load average at start ${m.loadAverage.map((l) => fmt(l, 2)).join(' / ')} (other jobs share the machine: compare ratios, not absolute numbers).`,
    `Each figure is the median of the runs shown, after a warm-up; the whole run took ${Math.round(seconds)} s.`,
  ].join('\n');
}

function throughputRows(results) {
  return Object.values(results).map((e) => [
    e.label,
    `**${fmtInt(e.median)}**`,
    e.tasksPerSec.map(fmtInt).join(' / '),
    fmt(e.submitMsMedian, 0),
    fmt(e.totalMsMedian, 0),
  ]);
}

function renderThroughput(t) {
  const header = ['contender', 'tasks/s (median)', 'tasks/s per run', 'submit ms', 'total ms'];
  const goalRows = (ratios) => [
    ['ours / p-queue FIFO', fmtRatio(ratios.oursOverPQueueFifo), `≥ ${t.goals.oursOverPQueueFifo}x`, mark(ratios.oursOverPQueueFifo >= t.goals.oursOverPQueueFifo)],
    ['ours / bare loop (shared function, no per-task allocation)', fmtRatio(ratios.oursOverBare), `≥ ${t.goals.oursOverBare}x`, mark(ratios.oursOverBare >= t.goals.oursOverBare)],
    ['ours / bare loop with a task object per submission', fmtRatio(ratios.oursOverBareTasks), `≥ ${t.goals.oursOverBare}x`, mark(ratios.oursOverBareTasks >= t.goals.oursOverBare)],
  ];
  const lines = [
    `### 1. Throughput: ${fmtInt(t.tasks)} no-op tasks, concurrency ${t.concurrency}, random priorities over 5 levels, all submitted at once`,
    '',
    `${t.agents} agents share one capability; a fresh orchestrator per run; contenders alternate order from run to run (${plural(t.runs, 'run')} after a ${fmtInt(t.warmupTasks)}-task warm-up). "submit" is the synchronous submit loop, "total" is submit + drain until idle.`,
    '',
    `**Steady state** (nothing but a turn of the event loop between runs, as in a long-lived process):`,
    '',
    table(header, throughputRows(t.results)),
    '',
    table(['ratio', 'value', 'goal', 'met'], [
      ...goalRows(t.ratios),
      ['ours / p-queue with priorities', fmtRatio(t.ratios.oursOverPQueuePriority), '(for information)', ''],
    ]),
  ];
  if (t.afterGc !== null) {
    lines.push(
      '',
      `**After a forced full GC before each run** (${plural(t.afterGc.runs, 'more run')}, same order rule; p-queue with priorities left out for time). Each run starts from a heap just shrunk to what is alive, as a burst after a quiet period would; ours is more sensitive to this state than p-queue:`,
      '',
      table(header, throughputRows(t.afterGc.results)),
      '',
      table(['ratio', 'value', 'goal', 'met'], goalRows(t.afterGc.ratios)),
    );
  }
  return lines.join('\n');
}

function renderRouting(g) {
  const rows = Object.values(g.results).map((e) => [
    e.label,
    fmt(e.batchP50Us, 3),
    `**${fmt(e.batchP99Us, 3)}**`,
    fmt(e.singleP50Us, 3),
    fmt(e.singleP99Us, 3),
    fmt(e.clockP50Us, 3),
    `${fmt(100 * e.foundRate, 0)}%`,
    e.candidatesMin === e.candidatesMax ? String(e.candidatesMin) : `${e.candidatesMin}–${e.candidatesMax} (median ${e.candidatesMedian})`,
  ]);
  const main = g.results.leastBusy;
  const adaptive = g.results.adaptiveEveryAgent;
  const worst = Math.max(...Object.values(g.results).map((e) => e.batchP99Us));
  const goals = [
    ['p99 of one decision, least-busy (default), batch timing', `${fmt(main.batchP99Us, 3)} µs`, `< ${g.goals.p99Us} µs`, mark(main.batchP99Us < g.goals.p99Us)],
    ['worst p99 over all rows, batch timing', `${fmt(worst, 3)} µs`, `< ${g.goals.p99Us} µs`, mark(worst < g.goals.p99Us)],
    ['p99 of one decision, least-busy, single-call timing (clock included)', `${fmt(main.singleP99Us, 3)} µs`, `< ${g.goals.p99Us} µs`, mark(main.singleP99Us < g.goals.p99Us)],
    ['p99 of one decision, adaptive among all 100 agents, batch timing', `${fmt(adaptive.batchP99Us, 3)} µs`, `< ${g.goals.p99Us} µs`, mark(adaptive.batchP99Us < g.goals.p99Us)],
  ];
  return [
    `### 2. Routing: one decision with ${g.agents} agents and ${g.signatures} capability signatures`,
    '',
    `\`AgentRouter.select()\` from dist/routing (internal). Agents hold ~${g.capabilitiesPerAgent} random capabilities of ${g.capabilityPool}, maxConcurrent ${g.maxConcurrent}, random current loads redrawn between batches; signatures have 1–3 capabilities, each served by at least one agent (${main.candidatesMin}–${main.candidatesMax} candidate agents, median ${main.candidatesMedian}); the "all 100 agents share" rows route one capability every agent has. Both kinds of worker are free, so "found" is the share of calls that found an agent with room. Adaptive: every agent first learns ${g.learnedPerAgent} outcomes per signature it serves (random run times and verdicts, half-life ${g.halfLife}), so the figures differ and have aged differently. Batch timing: ${fmtInt(g.batches)} batches of ${fmtInt(g.batchSize)} calls, per-call time = batch time / ${fmtInt(g.batchSize)}, percentiles over batches. Single-call timing: ${fmtInt(g.singles)} calls each between two \`process.hrtime.bigint()\` reads, so it includes the clock's own cost (last column). Medians of ${plural(g.runs, 'run')}, each on a freshly drawn set of agents.`,
    '',
    table(['scenario', 'batch p50 µs', 'batch p99 µs', 'single p50 µs', 'single p99 µs', 'clock alone p50 µs', 'found', 'candidates'], rows),
    '',
    table(['goal', 'value', 'goal', 'met'], goals),
  ].join('\n');
}

function renderMemory(m) {
  const rows = Object.values(m.results).map((e) => [
    e.label,
    `**${fmt(e.bytesPerTaskMedian, 0)}**`,
    e.bytesPerTask.map((b) => fmt(b, 0)).join(' / '),
    `**${fmtInt(e.enqueueMsMedian)}**`,
    e.enqueueMs.map(fmtInt).join(' / '),
  ]);
  const ours = m.results.ours;
  const ratios = [
    ['ours bytes/task / p-queue', fmtRatio(m.ratios.bytesOursOverPQueue)],
    ['ours enqueue time / p-queue', fmtRatio(m.ratios.timeOursOverPQueue)],
  ];
  if (m.ratios.bytesOursOverFastq !== undefined) {
    ratios.push(['ours bytes/task / fastq.promise', fmtRatio(m.ratios.bytesOursOverFastq)]);
    ratios.push(['ours enqueue time / fastq.promise', fmtRatio(m.ratios.timeOursOverFastq)]);
  }
  const goals = [
    ['heap bytes per queued task (observable included)', `${fmt(ours.bytesPerTaskMedian, 0)} B`, `< ${m.goals.bytesPerTask} B`, mark(ours.bytesPerTaskMedian < m.goals.bytesPerTask)],
    [`time to enqueue ${fmtInt(m.tasks)} tasks`, `${fmtInt(ours.enqueueMsMedian)} ms`, `< ${fmtInt(m.goals.enqueueMs)} ms`, mark(ours.enqueueMsMedian < m.goals.enqueueMs)],
    [`time to enqueue ${fmtInt(m.tasks)} tasks, cold (fresh process, no warm-up)`, `${fmtInt(m.cold.ours.enqueueMsMedian)} ms`, `< ${fmtInt(m.goals.enqueueMs)} ms`, mark(m.cold.ours.enqueueMsMedian < m.goals.enqueueMs)],
  ];
  ratios.push(['ours cold enqueue time / p-queue cold', fmtRatio(m.ratios.coldTimeOursOverPQueue)]);
  const coldRows = Object.entries(m.cold).map(([key, e]) => [m.results[key].label, `**${fmtInt(e.enqueueMsMedian)}**`, e.enqueueMs.map(fmtInt).join(' / ')]);
  return [
    `### 3. Memory: ${fmtInt(m.tasks)} queued tasks that no agent can take`,
    '',
    `Run in a child process with \`--expose-gc\`. Fresh queue per run; the array holding the ${fmtInt(m.tasks)} handles is allocated before the baseline, so it is not counted; full GC before and after the timed enqueue loop; bytes/task = heapUsed difference / ${fmtInt(m.tasks)}. ${plural(m.runs, 'run')} after a ${fmtInt(m.warmupTasks)}-task warm-up, contenders in alternating order.${m.fastqInstalled ? '' : ' fastq is not installed: its rows are missing.'}`,
    '',
    table(['queue', 'bytes/task (median)', 'bytes/task per run', 'enqueue ms (median)', 'enqueue ms per run'], rows),
    '',
    `Cold: the same ${fmtInt(m.tasks)}-task enqueue in a fresh process per run, with no warm-up (a user's first run).`,
    '',
    table(['queue', 'cold enqueue ms (median)', 'per run'], coldRows),
    '',
    table(['ratio (lower is better)', 'value'], ratios),
    '',
    table(['goal', 'value', 'goal', 'met'], goals),
  ].join('\n');
}

function renderThreads(t) {
  const tiny = t.tiny;
  const fib = t.fib;
  const tinyRows = Object.values(tiny.results).map((e) => [e.label, `**${fmtInt(e.median)}**`, e.tasksPerSec.map(fmtInt).join(' / '), fmtInt(e.msMedian)]);
  const fibRows = Object.entries(fib.results).map(([key, e]) => [
    e.label,
    `**${fmtInt(e.msMedian)}**`,
    e.ms.map(fmtInt).join(' / '),
    fmtInt(e.median),
    key === 'main' ? '1.00x' : fmtRatio(fib.results.main.msMedian / e.msMedian),
  ]);
  const goal = t.goals.tinyOursOverPiscina;
  const bestGoal = t.goals.tinyOursResultsOverPiscinaBest;
  return [
    `### 4. Worker threads, tiny tasks: ${fmtInt(tiny.tasks)} tasks \`x => x + 1\` on ${t.threads} threads, all submitted at once`,
    '',
    `Ours: one agent with a \`module\`, \`workerPool.minWorkers = maxWorkers = ${t.threads}\` (both become threads), \`maxConcurrent\` ${t.maxConcurrent} (${t.threads} threads × the default \`threadBatchSize\` 64). Piscina: \`minThreads = maxThreads = ${t.threads}\`, running the same function (\`bench/modules/tiny.mjs\`), once with its other options at their defaults and once tuned for throughput (\`concurrentTasksPerWorker: 64, atomics: 'async'\`, the best of the settings measured; see \`bench/threads.mjs\`). A fresh pool per run, primed (threads started, module loaded) before the clock starts; the time counts from the first submit until every task is done; contenders alternate order from run to run (${plural(t.runs, 'run')} after a warm-up run of each). "Per round": the median over runs of the two contenders' ratio within a run.`,
    '',
    table(['contender', 'tasks/s (median)', 'tasks/s per run', 'ms (median)'], tinyRows),
    '',
    table(['ratio', 'value', 'goal', 'met'], [
      ['ours (`onIdle()`) / Piscina defaults', fmtRatio(tiny.ratios.oursOverPiscina), `≥ ${goal}x`, mark(tiny.ratios.oursOverPiscina >= goal)],
      ['ours (awaiting every `result()`) / Piscina defaults', fmtRatio(tiny.ratios.oursResultsOverPiscina), `≥ ${goal}x`, mark(tiny.ratios.oursResultsOverPiscina >= goal)],
      ['ours (awaiting every `result()`) / Piscina tuned', fmtRatio(tiny.ratios.oursResultsOverPiscinaBest), `≥ ${bestGoal}x`, mark(tiny.ratios.oursResultsOverPiscinaBest >= bestGoal)],
      ['the same, per round', fmtRatio(tiny.ratiosPerRound.oursResultsOverPiscinaBest), `≥ ${bestGoal}x`, mark(tiny.ratiosPerRound.oursResultsOverPiscinaBest >= bestGoal)],
      ['Piscina tuned / Piscina defaults', fmtRatio(tiny.ratios.piscinaBestOverDefaults), '(for information)', ''],
    ]),
    '',
    `### 5. Worker threads, CPU-bound: ${fmtInt(fib.tasks)} × naive fib(${fib.n}) on ${t.threads} threads against the main thread`,
    '',
    `The same pools and function (\`bench/modules/fib.mjs\`); the main-thread contender calls \`fib(${fib.n})\` ${fmtInt(fib.tasks)} times in a synchronous loop. Speed-up = main-thread time / pool time (medians). ${plural(t.runs, 'run')} after a warm-up run of each, order rotated.`,
    '',
    table(['contender', 'ms (median)', 'ms per run', 'tasks/s', 'speed-up'], fibRows),
    '',
    table(['ratio', 'value', 'goal', 'met'], [
      ['ours: speed-up over the main thread', fmtRatio(fib.speedUp.ours), `≥ ${t.goals.fibSpeedUp}x`, mark(fib.speedUp.ours >= t.goals.fibSpeedUp)],
      ['Piscina: speed-up over the main thread', fmtRatio(fib.speedUp.piscina), '(for information)', ''],
      ['bare threads: speed-up over the main thread (what the host allowed)', fmtRatio(fib.speedUp.bare), '(for information)', ''],
      ['ours / bare threads, per round', fmtRatio(fib.oursOverBarePerRound), '(for information)', ''],
    ]),
  ].join('\n');
}

function renderResilience(r) {
  const rows = Object.values(r.results).map((e) => [
    e.label,
    `**${fmtInt(e.median)}**`,
    `${fmtInt(Math.min(...e.tasksPerSec))} – ${fmtInt(Math.max(...e.tasksPerSec))}`,
    fmt(e.totalMsMedian, 0),
  ]);
  const pct = (x) => `${fmt(100 * x, 1)}%`;
  return [
    `### 6. Resilience overhead: ${fmtInt(r.tasks)} no-op tasks, breakers and rate limits on against off`,
    '',
    `Ours as in benchmark 1 (${r.agents} agents, concurrency ${r.concurrency}, random priorities, all submitted at once, steady state). "On": the default per-agent circuit breakers, and every agent given \`rateLimit: { max: ${r.rateLimit.max.toExponential(0).replace('+', '')}, perMs: ${r.rateLimit.perMs} }\`, which never throttles, so only the bookkeeping costs. "Off": \`circuitBreaker: { enabled: false }\`, no rate limit. ${plural(r.runs, 'round')} of one run each after a ${fmtInt(r.warmupTasks)}-task warm-up, the order flipping every round (on, off, off, on, …).`,
    '',
    table(['mode', 'tasks/s (median)', 'tasks/s range', 'total ms (median)'], rows),
    '',
    table(['ratio', 'value', 'goal', 'met'], [
      ['overhead = 1 − on / off (medians)', pct(r.overhead), `< ${pct(r.goals.overhead)}`, mark(r.overhead < r.goals.overhead)],
      ['median over rounds of 1 − on / off within the round', pct(r.pairedOverheadMedian), '(for information)', ''],
    ]),
  ].join('\n');
}

function renderStreaming(g) {
  const rows = Object.values(g.results).map((e) => [e.label, `**${fmtInt(e.median)}**`, e.updatesPerSec.map(fmtInt).join(' / ')]);
  const latencyRows = [
    ["on('delta') listener", fmt(g.latency.on.p50, 1), `**${fmt(g.latency.on.p99, 1)}**`, fmt(g.latency.on.max, 0)],
    ['subscribe() listener (buffered)', fmt(g.latency.subscribe.p50, 1), `**${fmt(g.latency.subscribe.p99, 1)}**`, fmt(g.latency.subscribe.max, 0)],
  ];
  const ours = g.results.ours.median;
  const worstP99 = Math.max(g.latency.on.p99, g.latency.subscribe.p99);
  return [
    `### 7. Streaming: ${fmtInt(g.updates)} progress updates of a ${g.keys}-key object, one key changing, ${g.subscribers} subscribers`,
    '',
    `One task whose handler mutates one key of its state and calls \`ctx.progress(state)\` in a loop; ${g.subscribers} \`on('delta')\` listeners count. Ours computes an RFC 6902 patch against a private copy of the previous state (fast-json-patch \`compare\`), keeps the latest snapshot and the deltas after it for late subscribers, and takes a snapshot every 10 updates. The floor: a Node \`EventEmitter\` handing the same object to ${g.subscribers} listeners, no copy, no diff. ${plural(g.runs, 'run')} after a warm-up, order rotated. Bytes: \`JSON.stringify\` of each delta against each full state (~${fmtInt(g.bytes.stateBytes / Math.min(g.updates, 20000))} B) over 20,000 updates. Latency: ${fmtInt(g.latency.tasks)} tasks streaming ${g.latency.updatesPerTask} updates each at once (yielding between updates), time from \`ctx.progress\` to the subscriber's callback.`,
    '',
    table(['contender', 'updates/s (median)', 'updates/s per run'], rows),
    '',
    table(['latency (µs)', 'p50', 'p99', 'max'], latencyRows),
    '',
    table(['goal', 'value', 'goal', 'met'], [
      ['progress throughput, 3 subscribers', `${fmtInt(ours)} updates/s`, `> ${fmtInt(g.goals.updatesPerSec)}`, mark(ours > g.goals.updatesPerSec)],
      ['delta bytes / full-state bytes', `${fmt(100 * g.bytes.deltaOverState, 1)}%`, `< ${fmt(100 * g.goals.deltaOverState, 0)}%`, mark(g.bytes.deltaOverState < g.goals.deltaOverState)],
      ['delivery latency p99 (worst of the two)', `${fmt(worstP99, 1)} µs`, `< ${fmtInt(g.goals.p99Micros)} µs`, mark(worstP99 < g.goals.p99Micros)],
      ['ours / bare EventEmitter', fmtRatio(g.ratios.oursOverBareEmitter), '(for information)', ''],
    ]),
  ].join('\n');
}

function renderPersistence(p) {
  const rows = Object.values(p.throughput).map((e) => [e.label, `**${fmtInt(e.median)}**`, e.tasksPerSec.map(fmtInt).join(' / ')]);
  const c = p.checkpointing;
  const pct = (x) => `${fmt(100 * x, 1)}%`;
  return [
    `### 8. Persistence: ${fmtInt(p.tasks)} no-op tasks on the SQLite store against the memory store; automatic checkpointing at ${fmtInt(c.tasks)} running tasks`,
    '',
    `Throughput as in benchmark 1 (10 agents, concurrency 10, all submitted at once), timed from the first submit until every write is committed (\`shutdown()\` included, which commits the last batch), audit trail on (its default) for both. SQLite: a fresh file per run, WAL, \`synchronous = NORMAL\`, batched commits (multi-row inserts, a task row written once per batch however many transitions it had). ${plural(p.runs, 'run')} after a warm-up, order rotated.`,
    '',
    table(['store', 'tasks/s (median)', 'tasks/s per run'], rows),
    '',
    `Checkpointing: ${fmtInt(c.tasks)} tasks running at once on the SQLite store, each hashing and calling \`ctx.progress\` ${c.steps} times with a turn of the event loop between steps; \`checkpointing: { enabled: true, interval: ${c.interval} }\` (a pass every ${c.interval} ms, 5x as often as the default 5 s, checkpoints each task whose progress changed) against disabled. Total time until all are done, ${plural(p.runs, 'run')} each, order rotated.`,
    '',
    table(['checkpointing', 'ms (median)', 'ms per run', 'checkpoints written'], [
      ['off', `**${fmtInt(c.off.medianMs)}**`, c.off.ms.map(fmtInt).join(' / '), c.off.checkpoints.map(fmtInt).join(' / ')],
      ['on', `**${fmtInt(c.on.medianMs)}**`, c.on.ms.map(fmtInt).join(' / '), c.on.checkpoints.map(fmtInt).join(' / ')],
    ]),
    '',
    table(['goal', 'value', 'goal', 'met'], [
      ['SQLite / memory throughput', fmtRatio(p.ratios.sqliteOverMemory), `≥ ${p.goals.sqliteOverMemory}x`, mark(p.ratios.sqliteOverMemory >= p.goals.sqliteOverMemory)],
      ['automatic checkpointing overhead', pct(c.overhead), `< ${pct(p.goals.checkpointingOverhead)}`, mark(c.overhead < p.goals.checkpointingOverhead)],
      ['cost of one checkpoint (time on − off, per checkpoint written)', `${fmt(c.microsPerCheckpoint, 1)} µs`, '(for information)', ''],
    ]),
  ].join('\n');
}

function renderWorkflow(w) {
  const rows = Object.values(w.results).map((e) => [e.label, `**${fmtInt(e.msMedian)}**`, e.ms.map(fmtInt).join(' / '), fmtInt(e.cpuMsMedian), fmtInt(e.median)]);
  return [
    `### 9. Workflows: a random DAG of ${fmtInt(w.steps)} no-op steps against ${fmtInt(w.steps)} bare tasks`,
    '',
    `Each step depends on 0–${w.maxFanIn} of the 1,000 steps before it (fixed seed: ${fmtInt(w.edges)} edges, ${w.waves} waves). Task steps: one no-op task per step, submitted by the run's coordinator once the step's dependencies completed, on ${w.agents} agents with concurrency ${w.concurrency} (plus the worker slot the coordinator holds). Bare: the same number of no-op tasks submitted at once to the same setup. Hand-written DAG loop: submit() on each completion, nothing else (the floor for any DAG layer on the public API). Function steps: the same DAG with \`run\` steps, inside the coordinator. Memory store, steady state (a turn of the event loop between runs). ${plural(w.runs, 'run')} after three warm-up runs of each, order rotated; \`defineWorkflow\` of the DAG took ${fmtInt(w.defineMsMedian)} ms.`,
    '',
    table(['contender', 'ms (median)', 'ms per run', 'CPU ms (median)', 'steps/s'], rows),
    '',
    table(['goal', 'value', 'goal', 'met'], [
      ['scheduling overhead per step (workflow − bare, medians)', `${fmt(w.overheadMicrosPerStep, 1)} µs`, `< ${w.goals.overheadMicrosPerStep} µs`, mark(w.overheadMicrosPerStep < w.goals.overheadMicrosPerStep)],
      ['same, median of per-run differences', `${fmt(w.pairedOverheadMicrosPerStep, 1)} µs`, '(for information)', ''],
      ['same in CPU time (process.cpuUsage: steadier on a shared machine)', `${fmt(w.cpuOverheadMicrosPerStep, 1)} µs`, `< ${w.goals.overheadMicrosPerStep} µs`, mark(w.cpuOverheadMicrosPerStep < w.goals.overheadMicrosPerStep)],
      ['CPU time, workflow − hand-written DAG loop, per step', `${fmt(w.cpuOverheadOverHandDagMicrosPerStep, 1)} µs`, '(for information)', ''],
      ['workflow − hand-written DAG loop, per step', `${fmt(w.overheadOverHandDagMicrosPerStep, 1)} µs`, '(for information)', ''],
      ['a function step, all in', `${fmt(w.functionMicrosPerStep, 1)} µs`, '(for information)', ''],
    ]),
  ].join('\n');
}

function renderPreemption(p) {
  const row = (label, r) => [label, `**${fmt(r.p50, 1)}**`, `**${fmt(r.p99, 1)}**`, fmt(r.max, 1), fmtInt(r.preemptions)];
  const { withPreemption, without } = p.results;
  return [
    `### 10. Preemption: how long a CRITICAL task waits when every slot runs long BACKGROUND work`,
    '',
    `2 agents with one slot each, a backlog of ${fmtInt(p.backgroundMs)} ms BACKGROUND tasks that checkpoint every ${p.checkpointEveryMs} ms and give way when their signal aborts; ${fmtInt(p.critical)} CRITICAL tasks (1 ms of work) arrive ${p.gapMs} ms apart. Submit-to-start of the CRITICAL tasks (their \`start\` event), with the backlog submitted \`preemptible: true\`, then \`false\`. With preemption the wait is the handler's time to its next step (≤ ${p.checkpointEveryMs} ms) plus the hand-over.`,
    '',
    table(['BACKGROUND tasks', 'p50 ms', 'p99 ms', 'max ms', 'preemptions'], [row('preemptible', withPreemption), row('not preemptible', without)]),
    '',
    table(['goal', 'value', 'goal', 'met'], [
      ['p99 wait of a CRITICAL task, with preemption', `${fmt(withPreemption.p99, 1)} ms`, `< ${p.goals.p99WithPreemptionMs} ms`, mark(withPreemption.p99 < p.goals.p99WithPreemptionMs)],
    ]),
  ].join('\n');
}

function renderTelemetry(t) {
  const pct = (x) => `${fmt(100 * x, 1)}%`;
  const rows = Object.values(t.results).map((e) => [
    e.label,
    `**${fmtInt(e.median)}**`,
    `${fmtInt(Math.min(...e.tasksPerSec))} – ${fmtInt(Math.max(...e.tasksPerSec))}`,
    e === t.results.off ? '' : pct(e.overhead),
    e === t.results.off ? '' : pct(e.cpuOverhead),
    e === t.results.off ? '' : fmt(e.cpuMicrosPerTask, 2),
    e.spansExportedMedian ? fmtInt(e.spansExportedMedian) : '',
  ]);
  const sdk = t.results.sdk;
  return [
    `### 12. Telemetry overhead: ${fmtInt(t.tasks)} no-op tasks, OpenTelemetry off, on without an SDK, and on with the SDK`,
    '',
    `Ours as in benchmark 1 (${t.agents} agents, concurrency ${t.concurrency}, random priorities, all submitted at once, steady state), no span active around the submits (so task spans are roots). The SDK modes get fresh providers per run, shut down untimed after it: a \`BasicTracerProvider\` with a \`BatchSpanProcessor\` (default sizes) before an exporter that drops the spans it counts, and a \`MeterProvider\` with a periodic reader. No context manager is registered. ${plural(t.runs, 'round')} of one run per mode after a ${fmtInt(t.warmupTasks)}-task warm-up, the order rotating every round. Overheads are against off; CPU is \`process.cpuUsage\` of the run (GC threads included), steadier than wall time on a shared machine.`,
    '',
    table(['mode', 'tasks/s (median)', 'tasks/s range', 'overhead (tasks/s)', 'overhead (CPU)', 'CPU µs added per task', 'spans exported'], rows),
    '',
    table(['goal', 'value', 'goal', 'met'], [
      ['on without an SDK (the default), 1 − tasks/s / off', pct(t.results.noSdk.overhead), '≈ 0', ''],
      ['on with the SDK, every span recorded, 1 − tasks/s / off', pct(sdk.overhead), `< ${pct(t.goals.sdkOverhead)}`, mark(sdk.overhead < t.goals.sdkOverhead)],
      ['same, median over rounds of the ratio within the round', pct(sdk.pairedOverheadMedian), '(for information)', ''],
    ]),
  ].join('\n');
}

function renderAdaptive(a) {
  const scenarios = Object.values(a.results);
  const rows = scenarios.flatMap((s) =>
    Object.values(s.contenders).map((e) => [
      s.label,
      e.label,
      `**${fmt(e.meanMsMedian, 2)}**`,
      e.meanMs.map((x) => fmt(x, 2)).join(' / '),
      fmt(e.p50MsMedian, 1),
      fmt(e.p99MsMedian, 1),
      Object.entries(e.runsByAgent[e.runsByAgent.length - 1]).map(([agentId, runs]) => `${agentId} ${fmtInt(runs)}`).join(', '),
    ]),
  );
  const goalRows = scenarios.flatMap((s) => [
    [`${s.label}: round-robin mean / adaptive mean`, fmtRatio(s.ratios.roundRobinOverAdaptive), `≥ ${a.goals.roundRobinOverAdaptive}x`, mark(s.ratios.roundRobinOverAdaptive >= a.goals.roundRobinOverAdaptive)],
    [`${s.label}: least-busy mean / adaptive mean`, fmtRatio(s.ratios.leastBusyOverAdaptive), `> ${a.goals.leastBusyOverAdaptive}x`, mark(s.ratios.leastBusyOverAdaptive > a.goals.leastBusyOverAdaptive)],
    [`${s.label}: adaptive mean / oracle mean`, fmtRatio(s.ratios.adaptiveOverOracle), `≤ ${a.goals.adaptiveOverOracle}x`, mark(s.ratios.adaptiveOverOracle <= a.goals.adaptiveOverOracle)],
  ]);
  return [
    `### 11. Adaptive agent selection: submit-to-complete time at half capacity, agents of one capability at 2, 10 and 40 ms`,
    '',
    `Open loop: ${fmtInt(a.tasks)} tasks per run, task i submitted at start + i × interval, interval = 1 / (${fmt(100 * a.load, 0)}% of the agents' combined capacity in successes per ms), the capacity computed from the run times a warm-up round measured (a timer fires late: ${Object.entries(scenarios[0].measuredRunMs).map(([agentId, ms]) => `${agentId} ${fmt(ms, 2)} ms`).join(', ')} in the first scenario), which gives ${scenarios.map((s) => `${fmt(s.intervalMs, 2)} ms (nominal ${fmt(s.nominalIntervalMs, 2)}) for ${s.label}`).join('; ')}. Handlers sleep their run time (\`setTimeout\`); the flaky agent fails a seeded 30% of its runs, retried after ${a.retry.initialDelay} ms; breakers off (so a run of failures does not take it out). The oracle knows each agent's run time and failure rate and takes the free agent with the lowest time per success (a custom \`select()\` patched onto the router for its own orchestrator). The four contenders run **at once** in one process, each on its own orchestrator and agents, fed the same schedule, so a busy machine slows all alike; every run starts from nothing learned. ${plural(a.runs, 'round')} after a short warm-up round, submission order rotated; medians of the per-round figures, ratios are medians of the per-round ratios. "runs" counts the runs each agent made in the last round (failed ones included).`,
    '',
    table(['scenario', 'strategy', 'mean ms (median)', 'mean ms per round', 'p50 ms', 'p99 ms', 'runs per agent (last round)'], rows),
    '',
    table(['goal', 'value', 'goal', 'met'], goalRows),
  ].join('\n');
}

/** Why PostgreSQL cannot be used for the pg section, or null when a connection works. */
async function postgresUnreachable() {
  const url = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
  const where = url.replace(/:[^:@/]*@/, ':***@');
  let pg;
  try {
    pg = (await import('pg')).default;
  } catch (error) {
    return `the pg package cannot be loaded (${error.message})`;
  }
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query('select 1');
    return null;
  } catch (error) {
    return `PostgreSQL at ${where} is unreachable (${error.message})`;
  } finally {
    await client.end().catch(() => {});
  }
}

function renderPg(p) {
  if (p.skipped) return `### 13. PostgreSQL queue\n\n**Not measured**: ${p.skipped}.`;
  return [
    `### 13. PostgreSQL queue: ${fmtInt(p.config.jobs)} no-op jobs, ours against graphile-worker, pg-boss, BullMQ and plain SQL (\`bench/pg/\`)`,
    '',
    'Method and contenders: see "PostgreSQL queue benchmark" below. Producer and workers are separate processes on this machine, with the server.',
    '',
    renderPgMarkdown(p),
  ].join('\n');
}

const pgSkipped = only.includes('pg') ? await postgresUnreachable() : null;
if (pgSkipped !== null) {
  const banner = '!'.repeat(100);
  console.error(`${banner}\n!! pg benchmark SKIPPED: ${pgSkipped}\n!! Start PostgreSQL (or set DATABASE_URL) to measure it.\n${banner}`);
  if (write) {
    console.error('--write records only a full run: not writing BENCHMARKS.md without the pg section');
    process.exit(2);
  }
}

const startedAt = performance.now();
const info = machine();
console.error(`parallel-orchestrator benchmarks: ${only.join(', ')}${write ? ' (will write BENCHMARKS.md)' : ''}`);
const results = {};
if (only.includes('throughput')) {
  console.error('throughput (child process, --expose-gc)…');
  results.throughput = await runChild('throughput');
}
if (only.includes('routing')) {
  console.error('routing…');
  results.routing = await routing({ log });
}
if (only.includes('memory')) {
  console.error('memory (child process, --expose-gc)…');
  results.memory = await runChild('memory');
}
if (only.includes('threads')) {
  console.error('threads (child process)…');
  results.threads = await runChild('threads');
}
if (only.includes('resilience')) {
  console.error('resilience (child process)…');
  results.resilience = await runChild('resilience');
}
if (only.includes('streaming')) {
  console.error('streaming (child process)…');
  results.streaming = await runChild('streaming');
}
if (only.includes('persistence')) {
  console.error('persistence (child process)…');
  results.persistence = await runChild('persistence');
}
if (only.includes('workflow')) {
  console.error('workflow (child process, --expose-gc)…');
  results.workflow = await runChild('workflow');
}
if (only.includes('preemption')) {
  console.error('preemption (child process)…');
  results.preemption = await runChild('preemption');
}
if (only.includes('adaptive')) {
  console.error('adaptive (child process)…');
  results.adaptive = await runChild('adaptive');
}
if (only.includes('telemetry')) {
  console.error('telemetry (child process)…');
  results.telemetry = await runChild('telemetry');
}
if (only.includes('pg')) {
  if (pgSkipped !== null) {
    results.pg = { skipped: pgSkipped };
  } else {
    console.error('pg (child process: bench/pg/run.mjs, which spawns producer and worker processes)…');
    const pgArgs = (process.env.BENCH_PG_ARGS ?? '').split(/\s+/).filter(Boolean);
    results.pg = await runChild('pg/run', pgArgs);
  }
}
const seconds = (performance.now() - startedAt) / 1000;

const sections = [renderMachine(info, seconds)];
if (results.throughput) sections.push(renderThroughput(results.throughput));
if (results.routing) sections.push(renderRouting(results.routing));
if (results.memory) sections.push(renderMemory(results.memory));
if (results.threads) sections.push(renderThreads(results.threads));
if (results.resilience) sections.push(renderResilience(results.resilience));
if (results.streaming) sections.push(renderStreaming(results.streaming));
if (results.persistence) sections.push(renderPersistence(results.persistence));
if (results.workflow) sections.push(renderWorkflow(results.workflow));
if (results.preemption) sections.push(renderPreemption(results.preemption));
if (results.adaptive) sections.push(renderAdaptive(results.adaptive));
if (results.telemetry) sections.push(renderTelemetry(results.telemetry));
if (results.pg) sections.push(renderPg(results.pg));
const figures = sections.join('\n\n');
console.log(`\n${figures}\n`);

if (write) {
  const current = await readFile(BENCHMARKS_MD, 'utf8');
  const start = current.indexOf(START);
  const end = current.indexOf(END);
  if (start < 0 || end < start) throw new Error(`BENCHMARKS.md lacks the ${START} … ${END} markers`);
  const updated = `${current.slice(0, start + START.length)}\n\n${figures}\n\n${current.slice(end)}`;
  await writeFile(BENCHMARKS_MD, updated);
  console.error('BENCHMARKS.md figures section rewritten.');
}
