// npm run soak: a bounded mixed run (SOAK_MINUTES, default 10) on the in-memory engine. In-process
// agents that succeed, fail, retry, time out, hang until aborted and report progress; a thread
// agent; cancels; subscribers. After a warm-up that fills the bounded buffers, one line a minute (heap after gc, throughput, live tasks), then a
// verdict: heap growth since the first minute within SOAK_MAX_GROWTH (default 10%), and no stuck
// task (the queue drains and every submitted task ended once). Exit code 1 when it fails.
import { AgentRole, createParallelOrchestrator, NonRetryableError } from '../dist/index.js';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const MAX_GROWTH = Number(process.env.SOAK_MAX_GROWTH ?? 0.1);
const IN_FLIGHT = 200;
const DRAIN_MS = 30_000;

if (typeof globalThis.gc !== 'function') {
  console.error('run with node --expose-gc (npm run soak does)');
  process.exit(2);
}
const heapMb = () => {
  globalThis.gc();
  return process.memoryUsage().heapUsed / 1e6;
};
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const o = createParallelOrchestrator({
  workerPool: { minWorkers: 2, maxWorkers: 16, stuckGrace: 200 },
  taskQueue: { maxSize: 1_000, retry: { maxAttempts: 3, initialDelay: 5, maxDelay: 50 } },
  circuitBreaker: { failureThreshold: 20, resetTimeout: 100 },
});
await o.start();
o.registerAgent({
  agentId: 'mixed',
  role: AgentRole.EXECUTOR,
  capabilities: ['mixed'],
  maxConcurrent: 12,
  handler: async (task, ctx) => {
    const n = task.payload;
    ctx.progress({ n, step: 1 });
    switch (n % 50) {
      case 0:
        throw new Error('transient');
      case 1:
        throw new NonRetryableError('permanent');
      case 2: // hangs until its timeout or a cancel aborts it
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        throw ctx.signal.reason;
      case 3:
        if (ctx.attempt === 1) throw new Error('flaky');
        break;
      default:
        if (n % 7 === 0) await delay(n % 5);
    }
    ctx.progress({ n, step: 2 });
    return { n };
  },
});
o.registerAgent({ agentId: 'thread', role: AgentRole.ANALYZER, capabilities: ['thread'], maxConcurrent: 2, module: new URL('../test/reliability/model-thread.mjs', import.meta.url) });

const counts = { submitted: 0, ended: 0 };
const onEnd = () => counts.ended++;
o.on('task:completed', onEnd);
o.on('task:failed', onEnd);
o.on('task:cancelled', onEnd);
const stream = (async () => {
  for await (const item of o.events()) void item;
})();

let stop = false;
async function produce() {
  let n = 0;
  while (!stop) {
    n++;
    const thread = n % 100 === 0;
    const observable = await o.submitAsync(
      thread
        ? { type: 'thread', capabilities: ['thread'], payload: { mode: n % 300 === 0 ? 'exitOnce' : 'ok', ms: 1 }, retry: { maxAttempts: 2 } }
        : { type: 'mixed', capabilities: ['mixed'], payload: n, priority: n % 5, timeout: n % 50 === 2 ? 20 : 0 },
    );
    counts.submitted++;
    if (n % 500 === 0) observable.subscribe(() => {});
    if (n % 333 === 0) setTimeout(() => void o.cancel(observable.taskId, 'soak cancel'), n % 10);
    if (o.getStats().running + o.getStats().taskQueue.size >= IN_FLIGHT) await new Promise((resolve) => setImmediate(resolve));
  }
}

// Warm-up, not measured: fills the bounded buffers (10,000 dead letters and retained finished
// tasks, the audit ring, the event history), so later growth is a leak and not a filling buffer.
await Promise.allSettled(
  Array.from({ length: 20_000 }, (_, i) => o.submitAsync({ type: 'warm-up', capabilities: ['mixed'], payload: i % 5 < 3 ? 1 : 5 }).then((task) => task.result())),
);
console.log(`warm-up: ${o.getStats().taskQueue.deadLetters} dead letters held, heap ${heapMb().toFixed(1)} MB`);

const started = performance.now();
const producing = produce();
const heaps = [];
let lastEnded = 0;
for (let minute = 1; minute <= MINUTES; minute++) {
  await delay(60_000);
  const heap = heapMb();
  heaps.push(heap);
  const stats = o.getStats();
  console.log(
    `minute ${minute}: heap ${heap.toFixed(1)} MB, ${Math.round((counts.ended - lastEnded) / 60)} tasks/s, ${counts.ended} ended, running ${stats.running}, queued ${stats.taskQueue.size}, retrying ${stats.taskQueue.retrying}`,
  );
  lastEnded = counts.ended;
}
stop = true;
await producing;
const drained = await Promise.race([o.onIdle().then(() => true), delay(DRAIN_MS).then(() => false)]);
const stats = o.getStats();
const finished = stats.totalCompleted + stats.totalFailed + stats.totalCancelled;
await o.shutdown({ timeout: 1_000 });
await stream;

const growth = heaps.length > 1 ? (heaps.at(-1) - heaps[0]) / heaps[0] : 0;
const problems = [];
if (growth > MAX_GROWTH) problems.push(`heap grew ${(growth * 100).toFixed(1)}% since minute 1 (limit ${MAX_GROWTH * 100}%)`);
if (!drained) problems.push(`${stats.running} running and ${stats.taskQueue.size} queued tasks still live ${DRAIN_MS / 1000} s after the producer stopped`);
if (finished !== stats.totalSubmitted) problems.push(`${stats.totalSubmitted} submitted, ${finished} ended`);
if (counts.ended !== finished) problems.push(`${counts.ended} terminal events, getStats() counts ${finished}`);
const seconds = (performance.now() - started) / 1000;
console.log(
  `verdict: ${problems.length === 0 ? 'PASS' : 'FAIL'}: ${stats.totalSubmitted} tasks in ${seconds.toFixed(0)} s (${Math.round(stats.totalSubmitted / seconds)}/s); heap ${heaps[0]?.toFixed(1)} → ${heaps.at(-1)?.toFixed(1)} MB (${(growth * 100).toFixed(1)}%); completed ${stats.totalCompleted}, failed ${stats.totalFailed}, cancelled ${stats.totalCancelled}, retries ${stats.totalRetries}, timeouts ${stats.totalTimeouts}${problems.length > 0 ? `\n  ${problems.join('\n  ')}` : ''}`,
);
process.exitCode = problems.length === 0 ? 0 : 1;
