// Memory: one million tasks queued while no agent can take them. Heap bytes per queued task
// (the per-task handle the caller keeps included) and the time to enqueue them, against
// p-queue and fastq, both paused.
//
// Needs --expose-gc:   node --expose-gc bench/memory.mjs     (prints the results as JSON)
//
// How each queue is measured: a fresh instance; an array for the N handles is allocated first
// (so it is in the baseline, not in the per-task figure); full GC; heapUsed; the timed enqueue
// loop, storing each handle (our observable, p-queue's promise, fastq.promise's promise);
// full GC; heapUsed again. Bytes per task = difference / N.
//
// Cold: the same enqueue as a user's first run does it, in a fresh process with no warm-up
// (`node bench/memory.mjs --cold=<contender key>` measures one fill and prints its milliseconds).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import PQueue from 'p-queue';
import { createParallelOrchestrator, AgentRole } from 'parallel-orchestrator';
import { envInt, isMain, median, priorities, rotate, settleHeap } from './common.mjs';

const CAPABILITIES = Object.freeze(['work']);
const noop = async () => 1;

let fastq = null;
try {
  fastq = (await import('fastq')).default;
} catch {
  fastq = null;
}

/** Ours, not started: an agent is registered but nothing dispatches, so every task stays queued. */
function oursNotStarted() {
  const orchestrator = createParallelOrchestrator();
  orchestrator.registerAgent({ agentId: 'agent', role: AgentRole.EXECUTOR, capabilities: CAPABILITIES, maxConcurrent: 10, handler: noop });
  return {
    fill(pr, n, handles) {
      for (let i = 0; i < n; i++) handles[i] = orchestrator.submit({ type: 'noop', priority: pr[i], capabilities: CAPABILITIES });
    },
    queued: () => orchestrator.getStats().taskQueue.size,
  };
}

/** Ours, started with no agent at all: tasks submitted with `waitForAgent: true` stay queued. */
async function oursWaitForAgent() {
  const orchestrator = createParallelOrchestrator();
  await orchestrator.start();
  return {
    fill(pr, n, handles) {
      for (let i = 0; i < n; i++) handles[i] = orchestrator.submit({ type: 'noop', priority: pr[i], capabilities: CAPABILITIES, waitForAgent: true });
    },
    queued: () => orchestrator.getStats().taskQueue.size,
    // Started: let it go without cancelling a million tasks one by one (no timer is left behind).
  };
}

/** p-queue paused (`autoStart: false`), FIFO `add`, its cheapest mode; the handle is add()'s promise. */
function pqueuePaused() {
  const queue = new PQueue({ autoStart: false });
  return {
    fill(_pr, n, handles) {
      for (let i = 0; i < n; i++) handles[i] = queue.add(noop);
    },
    queued: () => queue.size,
  };
}

/** fastq.promise paused; the handle is push()'s promise. */
function fastqPromisePaused() {
  const queue = fastq.promise(noop, 10);
  queue.pause();
  return {
    fill(_pr, n, handles) {
      for (let i = 0; i < n; i++) handles[i] = queue.push(i);
    },
    queued: () => queue.length(),
  };
}

/** fastq callback API paused, one shared callback: no per-task handle at all (floor of a linked-list queue). */
function fastqCallbackPaused() {
  const queue = fastq((_value, callback) => callback(null, 1), 10);
  queue.pause();
  const done = () => {};
  return {
    fill(_pr, n, handles) {
      for (let i = 0; i < n; i++) handles[i] = queue.push(i, done);
    },
    queued: () => queue.length(),
  };
}

export const CONTENDERS = [
  { key: 'ours', label: 'parallel-orchestrator (not started, agent registered)', create: oursNotStarted },
  { key: 'oursWaitForAgent', label: 'parallel-orchestrator (started, no agent, waitForAgent: true)', create: oursWaitForAgent },
  { key: 'pqueue', label: 'p-queue, paused, add() promise kept', create: pqueuePaused },
  ...(fastq === null
    ? []
    : [
        { key: 'fastqPromise', label: 'fastq.promise, paused, push() promise kept', create: fastqPromisePaused },
        { key: 'fastqCallback', label: 'fastq callback API, paused, no per-task handle', create: fastqCallbackPaused },
      ]),
];

/** Fills a fresh queue; the queue and the handles become garbage when this returns. */
async function fill(contender, pr, n) {
  const handles = new Array(n).fill(null);
  const queue = await contender.create();
  await settleHeap();
  const before = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  queue.fill(pr, n, handles);
  const t1 = performance.now();
  await settleHeap();
  const after = process.memoryUsage().heapUsed;
  const queued = queue.queued();
  if (queued !== n) throw new Error(`${contender.key}: ${queued} of ${n} tasks queued`);
  return { before, bytesPerTask: (after - before) / n, enqueueMs: t1 - t0 };
}

async function measureOnce(contender, pr, n) {
  const { before, bytesPerTask, enqueueMs } = await fill(contender, pr, n);
  await settleHeap();
  // What is left once queue and handles are dropped (about 0 unless something leaks).
  const leftAfterReleaseBytes = process.memoryUsage().heapUsed - before;
  return { bytesPerTask, enqueueMs, leftAfterReleaseBytes };
}

const COLD_CONTENDERS = ['ours', 'pqueue'];

/** Milliseconds to enqueue `tasks` in a fresh process, per contender, `runs` times each. */
function cold(tasks, runs, log) {
  const results = Object.fromEntries(COLD_CONTENDERS.map((key) => [key, []]));
  for (let r = 0; r < runs; r++) {
    for (const key of rotate(COLD_CONTENDERS, r)) {
      const out = execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), `--cold=${key}`], { env: { ...process.env, BENCH_MEMORY_TASKS: String(tasks) }, encoding: 'utf8' });
      const ms = JSON.parse(out).enqueueMs;
      results[key].push(ms);
      log(`memory cold run ${r + 1}/${runs}: ${key} enqueue ${ms.toFixed(0)} ms`);
    }
  }
  return Object.fromEntries(Object.entries(results).map(([key, ms]) => [key, { enqueueMs: ms, enqueueMsMedian: median(ms) }]));
}

/** Each contender: a warm-up on `warmupTasks`, then `runs` measurements in rotated order; medians. */
export async function memory({
  tasks = envInt('BENCH_MEMORY_TASKS', 1_000_000),
  runs = envInt('BENCH_RUNS', 3),
  warmupTasks = envInt('BENCH_MEMORY_WARMUP_TASKS', 100_000),
  log = () => {},
} = {}) {
  if (typeof globalThis.gc !== 'function') throw new Error('bench/memory.mjs needs node --expose-gc');
  const pr = priorities(tasks);
  const results = Object.fromEntries(CONTENDERS.map((c) => [c.key, { label: c.label, bytesPerTask: [], enqueueMs: [], leftAfterReleaseBytes: [] }]));
  for (const contender of CONTENDERS) await measureOnce(contender, pr, Math.min(warmupTasks, tasks));
  log(`memory: warm-up done (${warmupTasks} tasks each)`);
  for (let r = 0; r < runs; r++) {
    for (const contender of rotate(CONTENDERS, r)) {
      const sample = await measureOnce(contender, pr, tasks);
      const entry = results[contender.key];
      entry.bytesPerTask.push(sample.bytesPerTask);
      entry.enqueueMs.push(sample.enqueueMs);
      entry.leftAfterReleaseBytes.push(sample.leftAfterReleaseBytes);
      log(`memory run ${r + 1}/${runs}: ${contender.key} ${sample.bytesPerTask.toFixed(1)} B/task, enqueue ${sample.enqueueMs.toFixed(0)} ms`);
    }
  }
  for (const entry of Object.values(results)) {
    entry.bytesPerTaskMedian = median(entry.bytesPerTask);
    entry.enqueueMsMedian = median(entry.enqueueMs);
  }
  const coldResults = cold(tasks, runs, log);
  const ours = results.ours;
  const ratios = {
    bytesOursOverPQueue: ours.bytesPerTaskMedian / results.pqueue.bytesPerTaskMedian,
    timeOursOverPQueue: ours.enqueueMsMedian / results.pqueue.enqueueMsMedian,
  };
  if (results.fastqPromise !== undefined) {
    ratios.bytesOursOverFastq = ours.bytesPerTaskMedian / results.fastqPromise.bytesPerTaskMedian;
    ratios.timeOursOverFastq = ours.enqueueMsMedian / results.fastqPromise.enqueueMsMedian;
  }
  ratios.coldTimeOursOverPQueue = coldResults.ours.enqueueMsMedian / coldResults.pqueue.enqueueMsMedian;
  return { tasks, runs, warmupTasks, fastqInstalled: fastq !== null, results, cold: coldResults, ratios, goals: { bytesPerTask: 400, enqueueMs: 1000 } };
}

const coldKey = process.argv.find((arg) => arg.startsWith('--cold='))?.slice('--cold='.length);
if (isMain(import.meta.url) && coldKey !== undefined) {
  const contender = CONTENDERS.find((c) => c.key === coldKey);
  if (contender === undefined) throw new Error(`--cold: no contender ${coldKey}`);
  const tasks = envInt('BENCH_MEMORY_TASKS', 1_000_000);
  const { enqueueMs } = await fill(contender, priorities(tasks), tasks);
  console.log(JSON.stringify({ enqueueMs }));
  // The queued tasks hold the process (as live tasks should): this measurement is done.
  process.exit(0);
} else if (isMain(import.meta.url)) {
  const result = await memory({ log: (line) => console.error(line) });
  console.log(JSON.stringify(result));
  // The orchestrators measured still hold their queued tasks, which keep a process alive (as live tasks should).
  process.exit(0);
}
