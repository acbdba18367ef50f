// Child process of memory.test.ts, run with --expose-gc: a million tasks through the in-memory
// engine with subscribers (a subscribe() on every 1000th task, an on() listener per event kind,
// an events() stream read to the end), some failing (dead letters). Prints the heap after full collections once the bounded
// buffers are full (retained tasks, audit ring, event history, dead letters) and again after the million.
import { AgentRole, createParallelOrchestrator } from '../../dist/index.js';

const TASKS = Number(process.env.MEMORY_TASKS ?? 1_000_000);
const BATCH = 10_000;
const WARM_UP = 30_000;

function heapUsed() {
  globalThis.gc();
  globalThis.gc();
  return process.memoryUsage().heapUsed;
}

const o = createParallelOrchestrator({ workerPool: { maxWorkers: 16 } });
await o.start();
o.registerAgent({
  agentId: 'worker',
  role: AgentRole.EXECUTOR,
  capabilities: ['work'],
  maxConcurrent: 16,
  handler: async (task, ctx) => {
    if (task.payload % 10 === 0) ctx.progress({ step: 1, of: 2 });
    // A third of the warm-up fails, filling the dead letters (10,000 held, then the oldest go).
    if (task.payload % (task.payload < WARM_UP ? 3 : 997) === 0) throw new Error('failed');
    return task.payload;
  },
});
const counts = { completed: 0, failed: 0, streamed: 0, observed: 0 };
o.on('task:completed', () => counts.completed++);
o.on('task:failed', () => counts.failed++);
const stream = (async () => {
  for await (const item of o.events()) if (item.event === 'task:submitted') counts.streamed++;
})();

async function run(from, to) {
  for (let start = from; start < to; start += BATCH) {
    for (let i = start; i < Math.min(start + BATCH, to); i++) {
      const observable = o.submit({ type: 'work', capabilities: ['work'], payload: i, retry: { maxAttempts: 1 } });
      if (i % 1000 === 0) {
        const unsubscribe = observable.subscribe((event) => {
          if (event.type === 'complete' || event.type === 'error') {
            counts.observed++;
            unsubscribe();
          }
        });
      }
    }
    await o.onIdle();
  }
}

const started = performance.now();
await run(0, WARM_UP);
const before = heapUsed();
await run(WARM_UP, WARM_UP + TASKS);
const after = heapUsed();
const seconds = (performance.now() - started) / 1000;
const stats = o.getStats();
await o.shutdown();
await stream;
process.stdout.write(
  `${JSON.stringify({ tasks: WARM_UP + TASKS, before, after, seconds, ...counts, totalCompleted: stats.totalCompleted, totalFailed: stats.totalFailed, deadLettersHeld: stats.taskQueue.deadLetters })}\n`,
);
