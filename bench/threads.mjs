// Worker threads: ours (an agent with a `module`, 2 threads) against Piscina (2 threads).
//
//   tiny  N tasks x => x + 1, all submitted at once, then drained: what a hand-over costs.
//   fib   N naive fib(25) tasks on 2 threads, against the same loop on the main thread, and
//         against 2 bare worker threads splitting the loop (what the host allows at that time).
//
//   node bench/threads.mjs     prints the results as JSON (bench/run.mjs runs it so)
//   BENCH_THREAD_TASKS=10000 BENCH_FIB_TASKS=500 node bench/threads.mjs
//
// Every run builds a fresh pool and primes it (both threads started, the module loaded in each)
// before the clock starts, so thread start-up is not timed for either library.
//
// Piscina runs twice on tiny tasks: with its defaults, and tuned for throughput. Its docs give
// two knobs: `concurrentTasksPerWorker` (tasks a thread holds at once; "generally only makes
// sense" for tasks with an asynchronous part, yet its own benchmark raises it for a tiny
// synchronous `add`) and `atomics` ('sync' by default; 'async' lets the thread's event loop run
// between tasks, "with performance penalties"). Measured here on 2 threads, 50,000 tiny tasks,
// medians of 5 runs: defaults 22k tasks/s; concurrentTasksPerWorker 16 / 64 / 128 with atomics
// 'async' 30k / 32k / 29k; 64 with 'sync' 31k, with 'disabled' 30k. The best, 64 with 'async'
// (about 1.45x its defaults), is `piscinaBest`. CPU-bound fib runs Piscina at its defaults (one
// task per thread at a time), which suits such tasks.
import { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { createParallelOrchestrator, AgentRole } from 'parallel-orchestrator';
import { envInt, isMain, median, rotate, tick } from './common.mjs';
import { fib } from './modules/fib.mjs';

const THREADS = 2;
/** 2 threads × the default `workerPool.threadBatchSize` (64): each thread can hold a full batch (as many as Piscina's 2 × 64). */
const MAX_CONCURRENT = 128;
/** Piscina tuned for throughput of tiny tasks (see above). */
const PISCINA_BEST = { concurrentTasksPerWorker: 64, atomics: 'async' };
const FIB_N = 25;
const TINY = { module: new URL('./modules/tiny.mjs', import.meta.url), name: 'inc', payload: (i) => i, check: (sum, n) => sum === (n * (n + 1)) / 2 };
const FIB = { module: new URL('./modules/fib.mjs', import.meta.url), name: 'fib', payload: () => FIB_N, check: (sum, n) => sum === n * fib(FIB_N) };

/** Ours: one agent with a `module`, a pool of exactly 2 workers (both become threads). */
async function oursPool(work, { awaitResults }) {
  const orchestrator = createParallelOrchestrator({ workerPool: { minWorkers: THREADS, maxWorkers: THREADS } });
  await orchestrator.start();
  const capabilities = [work.name];
  orchestrator.registerAgent({ agentId: 'threads', role: AgentRole.EXECUTOR, capabilities, maxConcurrent: MAX_CONCURRENT, module: work.module });
  const prime = Array.from({ length: MAX_CONCURRENT }, (_, i) => orchestrator.submit({ type: work.name, capabilities, payload: work.payload(i) }).result());
  await Promise.all(prime);
  const { threads } = orchestrator.getStats().workerPool;
  if (threads !== THREADS) throw new Error(`ours primed ${threads} threads, not ${THREADS}`);
  return {
    async run(n) {
      const before = orchestrator.getStats().totalCompleted;
      let sum = null;
      const t0 = performance.now();
      if (awaitResults) {
        const results = new Array(n);
        for (let i = 0; i < n; i++) results[i] = orchestrator.submit({ type: work.name, capabilities, payload: work.payload(i) }).result();
        sum = 0;
        for (const { result } of await Promise.all(results)) sum += result;
      } else {
        for (let i = 0; i < n; i++) orchestrator.submit({ type: work.name, capabilities, payload: work.payload(i) });
        await orchestrator.onIdle();
      }
      const ms = performance.now() - t0;
      const completed = orchestrator.getStats().totalCompleted - before;
      if (completed !== n) throw new Error(`ours completed ${completed} of ${n} tasks`);
      if (sum !== null && !work.check(sum, n)) throw new Error(`ours: wrong sum of results ${sum}`);
      return ms;
    },
    close: () => orchestrator.shutdown(),
  };
}

/** Piscina 5, exactly 2 threads: its defaults (Atomics on, one task per thread at a time) unless `options` says otherwise. */
async function piscinaPool(work, options = {}) {
  const pool = new Piscina({ filename: work.module.href, name: work.name, minThreads: THREADS, maxThreads: THREADS, ...options });
  await Promise.all(Array.from({ length: MAX_CONCURRENT }, (_, i) => pool.run(work.payload(i))));
  if (pool.threads.length !== THREADS) throw new Error(`piscina primed ${pool.threads.length} threads, not ${THREADS}`);
  return {
    async run(n) {
      const t0 = performance.now();
      const results = new Array(n);
      for (let i = 0; i < n; i++) results[i] = pool.run(work.payload(i));
      let sum = 0;
      for (const result of await Promise.all(results)) sum += result;
      const ms = performance.now() - t0;
      if (!work.check(sum, n)) throw new Error(`piscina: wrong sum of results ${sum}`);
      return ms;
    },
    close: () => pool.destroy(),
  };
}

/** No pool: 2 bare worker threads, each told once to call the same function n / 2 times: what the host allows right now. */
async function bareThreads() {
  const code = `const { parentPort } = require('node:worker_threads');
    const fib = (n) => (n < 2 ? n : fib(n - 1) + fib(n - 2));
    parentPort.on('message', (count) => { let sum = 0; for (let i = 0; i < count; i++) sum += fib(${FIB_N}); parentPort.postMessage(sum); });`;
  const workers = Array.from({ length: THREADS }, () => new Worker(code, { eval: true }));
  const each = (count) => Promise.all(workers.map((worker) => new Promise((resolve) => worker.once('message', resolve).postMessage(count))));
  await each(1);
  return {
    async run(n) {
      const t0 = performance.now();
      const sums = await each(n / THREADS);
      const ms = performance.now() - t0;
      if (!FIB.check(sums.reduce((a, b) => a + b, 0), n)) throw new Error(`bare threads: wrong sum ${sums}`);
      return ms;
    },
    close: () => Promise.all(workers.map((worker) => worker.terminate())),
  };
}

/** No pool: the same function called n times in a synchronous loop on the main thread. */
async function mainThread() {
  return {
    async run(n) {
      const t0 = performance.now();
      let sum = 0;
      for (let i = 0; i < n; i++) sum += fib(FIB_N);
      const ms = performance.now() - t0;
      if (!FIB.check(sum, n)) throw new Error(`main thread: wrong sum ${sum}`);
      return ms;
    },
    close: async () => {},
  };
}

const TINY_CONTENDERS = [
  { key: 'ours', label: 'parallel-orchestrator, submit all then `onIdle()`', pool: () => oursPool(TINY, { awaitResults: false }) },
  { key: 'oursResults', label: 'parallel-orchestrator, submit all then `Promise.all` of every `result()`', pool: () => oursPool(TINY, { awaitResults: true }) },
  { key: 'piscina', label: 'Piscina 5.3.2, defaults, `run(x)` for all then `Promise.all`', pool: () => piscinaPool(TINY) },
  {
    key: 'piscinaBest',
    label: "Piscina 5.3.2, `concurrentTasksPerWorker: 64, atomics: 'async'`, `run(x)` for all then `Promise.all`",
    pool: () => piscinaPool(TINY, PISCINA_BEST),
  },
];

const FIB_CONTENDERS = [
  { key: 'main', label: `main thread, synchronous loop of fib(${FIB_N})`, pool: mainThread },
  { key: 'ours', label: 'parallel-orchestrator, 2 threads, submit all then `onIdle()`', pool: () => oursPool(FIB, { awaitResults: false }) },
  { key: 'piscina', label: 'Piscina 5.3.2, 2 threads, `run(25)` for all then `Promise.all`', pool: () => piscinaPool(FIB) },
  { key: 'bare', label: '2 bare worker threads, one message each (the host\'s ceiling)', pool: bareThreads },
];

/** One untimed-setup, timed-run measurement on a fresh pool. */
async function measure(contender, n) {
  await tick();
  const pool = await contender.pool();
  try {
    return await pool.run(n);
  } finally {
    await pool.close();
  }
}

/** A warm-up run of each contender, then `runs` rounds in an order rotated from round to round. */
async function rounds(contenders, n, runs, phase, log) {
  for (const contender of contenders) await measure(contender, n);
  log(`threads ${phase}: warm-up done`);
  const results = Object.fromEntries(contenders.map((c) => [c.key, { label: c.label, ms: [], tasksPerSec: [] }]));
  for (let r = 0; r < runs; r++) {
    for (const contender of rotate(contenders, r)) {
      const ms = await measure(contender, n);
      results[contender.key].ms.push(ms);
      results[contender.key].tasksPerSec.push(n / (ms / 1000));
      log(`threads ${phase} ${r + 1}/${runs}: ${contender.key} ${Math.round(n / (ms / 1000))} tasks/s (${ms.toFixed(0)} ms)`);
    }
  }
  for (const entry of Object.values(results)) {
    entry.msMedian = median(entry.ms);
    entry.median = median(entry.tasksPerSec);
  }
  return results;
}

/**
 * The median over rounds of `a`'s tasks/s over `b`'s in the same round: on a shared machine
 * the load moves between rounds more than between two contenders of one round.
 */
function perRound(results, a, b) {
  return median(results[a].tasksPerSec.map((rate, r) => rate / results[b].tasksPerSec[r]));
}

export async function threads({
  tinyTasks = envInt('BENCH_THREAD_TASKS', 50_000),
  fibTasks = envInt('BENCH_FIB_TASKS', 2_000),
  runs = envInt('BENCH_RUNS', 3),
  log = () => {},
} = {}) {
  const tiny = await rounds(TINY_CONTENDERS, tinyTasks, runs, 'tiny', log);
  const fibResults = await rounds(FIB_CONTENDERS, fibTasks, runs, 'fib', log);
  return {
    threads: THREADS,
    maxConcurrent: MAX_CONCURRENT,
    runs,
    tiny: {
      tasks: tinyTasks,
      results: tiny,
      ratios: {
        oursOverPiscina: tiny.ours.median / tiny.piscina.median,
        oursResultsOverPiscina: tiny.oursResults.median / tiny.piscina.median,
        oursOverPiscinaBest: tiny.ours.median / tiny.piscinaBest.median,
        oursResultsOverPiscinaBest: tiny.oursResults.median / tiny.piscinaBest.median,
        piscinaBestOverDefaults: tiny.piscinaBest.median / tiny.piscina.median,
      },
      ratiosPerRound: {
        oursResultsOverPiscinaBest: perRound(tiny, 'oursResults', 'piscinaBest'),
        oursOverPiscinaBest: perRound(tiny, 'ours', 'piscinaBest'),
        piscinaBestOverDefaults: perRound(tiny, 'piscinaBest', 'piscina'),
      },
    },
    fib: {
      tasks: fibTasks,
      n: FIB_N,
      results: fibResults,
      speedUp: {
        ours: fibResults.main.msMedian / fibResults.ours.msMedian,
        piscina: fibResults.main.msMedian / fibResults.piscina.msMedian,
        bare: fibResults.main.msMedian / fibResults.bare.msMedian,
      },
      speedUpPerRound: {
        ours: perRound(fibResults, 'ours', 'main'),
        piscina: perRound(fibResults, 'piscina', 'main'),
        bare: perRound(fibResults, 'bare', 'main'),
      },
      /** Ours as a fraction of what bare threads got in the same round. */
      oursOverBarePerRound: perRound(fibResults, 'ours', 'bare'),
    },
    goals: { tinyOursOverPiscina: 1.5, tinyOursResultsOverPiscinaBest: 2, fibSpeedUp: 1.7 },
  };
}

if (isMain(import.meta.url)) {
  const result = await threads({ log: (line) => console.error(line) });
  console.log(JSON.stringify(result));
}
