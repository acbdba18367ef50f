// Throughput: N no-op tasks, random priorities over 5 levels, concurrency 10, all submitted at
// once in a sync loop, then drained. Ours against p-queue (FIFO and with priorities) and
// against a bare loop over five arrays drained by 10 async workers.
//
//   node --expose-gc bench/throughput.mjs     prints the results as JSON (bench/run.mjs runs it so)
//   BENCH_TASKS=50000 node bench/throughput.mjs
// Without --expose-gc the second phase (a full GC before each run) is skipped.
import PQueue from 'p-queue';
import { createParallelOrchestrator, AgentRole } from 'parallel-orchestrator';
import { envInt, isMain, median, priorities, rotate, settleHeap, tick } from './common.mjs';

export const CONCURRENCY = 10;
export const AGENTS = 10;
const CAPABILITIES = Object.freeze(['work']);
const noop = async () => 1;

/**
 * Ours: a fresh orchestrator, 10 agents sharing one capability, every default feature on.
 * `options` are merged into the orchestrator's and `agent` into every agent's spec
 * (bench/resilience.mjs switches breakers and rate limits with them).
 */
export async function runOurs(pr, n, { options = {}, agent = {} } = {}) {
  const orchestrator = createParallelOrchestrator({ ...options, workerPool: { minWorkers: CONCURRENCY, maxWorkers: CONCURRENCY } });
  await orchestrator.start();
  for (let a = 0; a < AGENTS; a++) {
    orchestrator.registerAgent({ agentId: `agent-${a}`, role: AgentRole.EXECUTOR, capabilities: CAPABILITIES, maxConcurrent: CONCURRENCY, handler: noop, ...agent });
  }
  const t0 = performance.now();
  for (let i = 0; i < n; i++) orchestrator.submit({ type: 'noop', priority: pr[i], capabilities: CAPABILITIES });
  const t1 = performance.now();
  await orchestrator.onIdle();
  const t2 = performance.now();
  const completed = orchestrator.getStats().totalCompleted;
  await orchestrator.shutdown();
  if (completed !== n) throw new Error(`orchestrator completed ${completed} of ${n} tasks`);
  return { submitMs: t1 - t0, totalMs: t2 - t0 };
}

/** p-queue, concurrency 10, no priorities: plain FIFO, its fastest mode. */
async function runPQueueFifo(_pr, n) {
  const queue = new PQueue({ concurrency: CONCURRENCY });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) queue.add(noop);
  const t1 = performance.now();
  await queue.onIdle();
  const t2 = performance.now();
  if (queue.size !== 0 || queue.pending !== 0) throw new Error('p-queue FIFO not idle after onIdle()');
  return { submitMs: t1 - t0, totalMs: t2 - t0 };
}

/** p-queue, concurrency 10, with priorities (p-queue: higher number runs first). */
async function runPQueuePriority(pr, n) {
  const queue = new PQueue({ concurrency: CONCURRENCY });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) queue.add(noop, { priority: 4 - pr[i] });
  const t1 = performance.now();
  await queue.onIdle();
  const t2 = performance.now();
  if (queue.size !== 0 || queue.pending !== 0) throw new Error('p-queue with priorities not idle after onIdle()');
  return { submitMs: t1 - t0, totalMs: t2 - t0 };
}

/** The ceiling: five arrays by priority, 10 async workers each taking the next function from the most urgent non-empty array. */
async function runBare(pr, n) {
  const t0 = performance.now();
  const lanes = [[], [], [], [], []];
  const heads = [0, 0, 0, 0, 0];
  for (let i = 0; i < n; i++) lanes[pr[i]].push(noop);
  const t1 = performance.now();
  let done = 0;
  const next = () => {
    for (let level = 0; level < 5; level++) {
      const lane = lanes[level];
      if (heads[level] < lane.length) return lane[heads[level]++];
    }
    return null;
  };
  const worker = async () => {
    for (let fn = next(); fn !== null; fn = next()) {
      await fn();
      done++;
    }
  };
  const workers = [];
  for (let w = 0; w < CONCURRENCY; w++) workers.push(worker());
  await Promise.all(workers);
  const t2 = performance.now();
  if (done !== n) throw new Error(`bare loop completed ${done} of ${n} tasks`);
  return { submitMs: t1 - t0, totalMs: t2 - t0 };
}

/**
 * The same loop where each submission is a small task object, as any real queue must keep one
 * per task (p-queue keeps a closure and a promise; we keep one record). This is the figure
 * comparable to the measured "bare loop ~1.7M tasks/s".
 */
async function runBareTasks(pr, n) {
  const t0 = performance.now();
  const lanes = [[], [], [], [], []];
  const heads = [0, 0, 0, 0, 0];
  for (let i = 0; i < n; i++) lanes[pr[i]].push({ id: i, priority: pr[i], run: noop });
  const t1 = performance.now();
  let done = 0;
  const next = () => {
    for (let level = 0; level < 5; level++) {
      const lane = lanes[level];
      if (heads[level] < lane.length) return lane[heads[level]++];
    }
    return null;
  };
  const worker = async () => {
    for (let task = next(); task !== null; task = next()) {
      await task.run();
      done++;
    }
  };
  const workers = [];
  for (let w = 0; w < CONCURRENCY; w++) workers.push(worker());
  await Promise.all(workers);
  const t2 = performance.now();
  if (done !== n) throw new Error(`bare loop with task objects completed ${done} of ${n} tasks`);
  return { submitMs: t1 - t0, totalMs: t2 - t0 };
}

export const CONTENDERS = [
  { key: 'ours', label: 'parallel-orchestrator (priorities, routing, breakers, observables, stats)', run: runOurs },
  { key: 'pqueueFifo', label: 'p-queue, no priorities (FIFO)', run: runPQueueFifo },
  { key: 'pqueuePriority', label: 'p-queue, with priorities', run: runPQueuePriority },
  { key: 'bare', label: 'bare loop over five arrays (one shared function, nothing allocated per task)', run: runBare },
  { key: 'bareTasks', label: 'bare loop over five arrays, a task object per submission', run: runBareTasks },
];

/** `runs` rounds over `contenders` in rotated order; `beforeEach` runs (untimed) before every measurement. */
async function rounds(contenders, pr, tasks, runs, beforeEach, phase, log) {
  const results = Object.fromEntries(contenders.map((c) => [c.key, { label: c.label, tasksPerSec: [], submitMs: [], totalMs: [] }]));
  for (let r = 0; r < runs; r++) {
    for (const contender of rotate(contenders, r)) {
      await beforeEach();
      const { submitMs, totalMs } = await contender.run(pr, tasks);
      const entry = results[contender.key];
      entry.tasksPerSec.push(tasks / (totalMs / 1000));
      entry.submitMs.push(submitMs);
      entry.totalMs.push(totalMs);
      log(`throughput ${phase} ${r + 1}/${runs}: ${contender.key} ${Math.round(tasks / (totalMs / 1000))} tasks/s (submit ${submitMs.toFixed(0)} ms, total ${totalMs.toFixed(0)} ms)`);
    }
  }
  for (const entry of Object.values(results)) {
    entry.median = median(entry.tasksPerSec);
    entry.submitMsMedian = median(entry.submitMs);
    entry.totalMsMedian = median(entry.totalMs);
  }
  return results;
}

/**
 * Runs every contender `runs` times, in an order rotated from run to run, after a warm-up
 * round on `warmupTasks` tasks, with nothing but a turn of the event loop between runs (the
 * state of a long-lived process). Then, if the process has --expose-gc, `afterGcRuns` more
 * rounds of ours, p-queue FIFO and the bare loop with a full GC before each run, so each
 * starts from a heap shrunk to what is alive (as a burst after a quiet period would); ours
 * runs markedly slower in that state than in the steady one. Returns samples (tasks/s),
 * medians and ratios.
 */
export async function throughput({
  tasks = envInt('BENCH_TASKS', 200_000),
  runs = envInt('BENCH_RUNS', 3),
  afterGcRuns = envInt('BENCH_RUNS', 3),
  warmupTasks = envInt('BENCH_WARMUP_TASKS', 50_000),
  log = () => {},
} = {}) {
  const pr = priorities(tasks);
  for (const contender of CONTENDERS) {
    await tick();
    await contender.run(pr, Math.min(warmupTasks, tasks));
  }
  log(`throughput: warm-up done (${warmupTasks} tasks each)`);

  const results = await rounds(CONTENDERS, pr, tasks, runs, tick, 'run', log);
  const ours = results.ours.median;
  const output = {
    tasks,
    runs,
    warmupTasks,
    concurrency: CONCURRENCY,
    agents: AGENTS,
    results,
    ratios: {
      oursOverPQueueFifo: ours / results.pqueueFifo.median,
      oursOverPQueuePriority: ours / results.pqueuePriority.median,
      oursOverBare: ours / results.bare.median,
      oursOverBareTasks: ours / results.bareTasks.median,
    },
    goals: { oursOverPQueueFifo: 2, oursOverBare: 0.25 },
    afterGc: null,
  };

  if (typeof globalThis.gc === 'function' && afterGcRuns > 0) {
    const contenders = CONTENDERS.filter((c) => c.key !== 'pqueuePriority');
    const afterGc = await rounds(contenders, pr, tasks, afterGcRuns, settleHeap, 'after full GC', log);
    output.afterGc = {
      runs: afterGcRuns,
      results: afterGc,
      ratios: {
        oursOverPQueueFifo: afterGc.ours.median / afterGc.pqueueFifo.median,
        oursOverBare: afterGc.ours.median / afterGc.bare.median,
        oursOverBareTasks: afterGc.ours.median / afterGc.bareTasks.median,
      },
    };
  }
  return output;
}

if (isMain(import.meta.url)) {
  const result = await throughput({ log: (line) => console.error(line) });
  console.log(JSON.stringify(result));
}
