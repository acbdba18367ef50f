// The dynamic worker pool: grows to maxWorkers under load, never beyond, and retires idle
// workers back to minWorkers. Uses thread agents too, so it imports the built package.
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentRole, createParallelOrchestrator, type OrchestratorOptions, type ParallelOrchestrator } from '../dist/index.js';

const gateModule = new URL('./fixtures/modules/gate.mjs', import.meta.url);

const open: ParallelOrchestrator[] = [];
const gates: Int32Array[] = [];

async function started(options: OrchestratorOptions): Promise<ParallelOrchestrator> {
  const o = createParallelOrchestrator(options);
  open.push(o);
  await o.start();
  return o;
}

/** A gate threads block on (Atomics.wait) until `openGate`. */
function threadGate(): Int32Array {
  const gate = new Int32Array(new SharedArrayBuffer(4));
  gates.push(gate);
  return gate;
}

function openGate(gate: Int32Array): void {
  Atomics.store(gate, 0, 1);
  Atomics.notify(gate, 0);
}

afterEach(async () => {
  // Blocked threads must be let go before shutdown terminates them.
  for (const gate of gates.splice(0)) openGate(gate);
  await Promise.all(open.splice(0).map((o) => o.shutdown({ graceful: false })));
});

/** A promise and its resolver, for in-process handlers to wait on. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Lets pending microtasks, immediates and I/O callbacks run, so any start that could happen has happened. */
async function settle(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise(setImmediate);
}

/** Polls `condition` (the pool emits no event when it retires a worker). */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

describe('growing under load', () => {
  it('in-process work grows the pool to maxWorkers and no further', async () => {
    const o = await started({ workerPool: { minWorkers: 1, maxWorkers: 4, idleTimeout: 60_000 } });
    const gate = deferred();
    const fourRunning = deferred();
    let running = 0;
    let maxRunning = 0;
    let maxWorkersSeen = 0;
    for (const agentId of ['a', 'b', 'c']) {
      o.registerAgent({
        agentId,
        role: AgentRole.EXECUTOR,
        capabilities: ['io'],
        maxConcurrent: 3,
        handler: async () => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          maxWorkersSeen = Math.max(maxWorkersSeen, o.getStats().workerPool.currentWorkers);
          if (running === 4) fourRunning.resolve();
          await gate.promise;
          running--;
        },
      });
    }
    const tasks = Array.from({ length: 12 }, () => o.submit({ type: 'io', capabilities: ['io'] }));
    await fourRunning.promise;
    await settle();
    expect(running).toBe(4);
    expect(o.getStats().workerPool).toMatchObject({ currentWorkers: 4, busy: 4, idle: 0, peakWorkers: 4 });
    expect(o.getStats().taskQueue.size).toBe(8);
    gate.resolve();
    await Promise.all(tasks.map((task) => task.result()));
    expect(maxRunning).toBe(4);
    expect(maxWorkersSeen).toBe(4);
    expect(o.getStats().workerPool).toMatchObject({ currentWorkers: 4, peakWorkers: 4, workersCreated: 4, tasksRun: 12 });
  });

  it('thread work grows the pool to maxWorkers threads, retiring an idle in-process slot to make room', async () => {
    const o = await started({ workerPool: { minWorkers: 1, maxWorkers: 3, idleTimeout: 60_000 } });
    o.registerAgent({ agentId: 'gated', role: AgentRole.EXECUTOR, capabilities: ['cpu'], maxConcurrent: 3, module: gateModule });
    const gate = threadGate();
    const starts: string[] = [];
    o.on('task:started', ({ workerId }) => starts.push(workerId));
    const tasks = Array.from({ length: 3 }, () => o.submit({ type: 'cpu', capabilities: ['cpu'], payload: { gate: gate.buffer } }));
    await settle();
    expect(new Set(starts).size).toBe(3);
    expect(o.getStats().workerPool).toMatchObject({ currentWorkers: 3, threads: 3, peakWorkers: 3 });
    openGate(gate);
    const done = await Promise.all(tasks.map((task) => task.result()));
    expect(new Set(done.map((d) => d.workerId)).size).toBe(3);
    expect(o.getStats().workerPool.peakWorkers).toBe(3);
  });

  it('in-process slots and threads together never exceed maxWorkers', async () => {
    const maxWorkers = 3;
    const o = await started({ workerPool: { minWorkers: 1, maxWorkers, idleTimeout: 60_000 } });
    const inlineGate = deferred();
    const gate = threadGate();
    let inlineRunning = 0;
    const violations: string[] = [];
    let sawThreads = 0;
    const check = (where: string) => {
      const pool = o.getStats().workerPool;
      sawThreads = Math.max(sawThreads, pool.threads);
      if (pool.currentWorkers > maxWorkers || inlineRunning + pool.threads > maxWorkers) {
        violations.push(`${where}: ${pool.currentWorkers} workers, ${inlineRunning} in-process running, ${pool.threads} threads`);
      }
    };
    o.on('task:started', ({ taskId }) => check(`start of ${taskId}`));
    o.registerAgent({
      agentId: 'io',
      role: AgentRole.OBSERVER,
      capabilities: ['io'],
      maxConcurrent: 5,
      handler: async () => {
        inlineRunning++;
        check('in-process handler');
        await inlineGate.promise;
        inlineRunning--;
      },
    });
    o.registerAgent({ agentId: 'cpu', role: AgentRole.EXECUTOR, capabilities: ['cpu'], maxConcurrent: 5, module: gateModule });
    const tasks = [];
    for (let i = 0; i < 5; i++) {
      tasks.push(o.submit({ type: 'io', capabilities: ['io'] }));
      tasks.push(o.submit({ type: 'cpu', capabilities: ['cpu'], payload: { gate: gate.buffer } }));
    }
    await settle();
    check('after dispatch');
    expect(sawThreads).toBeGreaterThanOrEqual(1);
    expect(inlineRunning).toBeGreaterThanOrEqual(1);
    inlineGate.resolve();
    openGate(gate);
    await Promise.all(tasks.map((task) => task.result()));
    expect(violations).toEqual([]);
    expect(o.getStats().workerPool.peakWorkers).toBeLessThanOrEqual(maxWorkers);
    expect(o.getStats().totalCompleted).toBe(10);
  });
});

describe('shrinking when idle', () => {
  it('retires idle in-process slots back to minWorkers after idleTimeout', async () => {
    const o = await started({ workerPool: { minWorkers: 1, maxWorkers: 4, idleTimeout: 50 } });
    const gate = deferred();
    let running = 0;
    const fourRunning = deferred();
    o.registerAgent({
      agentId: 'io',
      role: AgentRole.EXECUTOR,
      capabilities: ['io'],
      maxConcurrent: 4,
      handler: async () => {
        if (++running === 4) fourRunning.resolve();
        await gate.promise;
      },
    });
    const tasks = Array.from({ length: 4 }, () => o.submit({ type: 'io', capabilities: ['io'] }));
    await fourRunning.promise;
    expect(o.getStats().workerPool.currentWorkers).toBe(4);
    gate.resolve();
    await Promise.all(tasks.map((task) => task.result()));
    await waitFor(() => o.getStats().workerPool.currentWorkers === 1, 'the pool to shrink to minWorkers');
    await settle();
    expect(o.getStats().workerPool).toMatchObject({ currentWorkers: 1, minWorkers: 1, peakWorkers: 4, workersRetired: 3, busy: 0, idle: 1 });
    // The pool grows again on demand after shrinking.
    const again = await o.submit({ type: 'io', capabilities: ['io'] }).result();
    expect(again.agentId).toBe('io');
  });

  it('retires idle threads back to minWorkers after idleTimeout', async () => {
    const o = await started({ workerPool: { minWorkers: 1, maxWorkers: 3, idleTimeout: 50 } });
    o.registerAgent({ agentId: 'gated', role: AgentRole.EXECUTOR, capabilities: ['cpu'], maxConcurrent: 3, module: gateModule });
    const gate = threadGate();
    const tasks = Array.from({ length: 3 }, () => o.submit({ type: 'cpu', capabilities: ['cpu'], payload: { gate: gate.buffer } }));
    await settle();
    expect(o.getStats().workerPool.threads).toBe(3);
    openGate(gate);
    await Promise.all(tasks.map((task) => task.result()));
    await waitFor(() => o.getStats().workerPool.currentWorkers === 1, 'the pool to shrink to minWorkers');
    await settle();
    const pool = o.getStats().workerPool;
    expect(pool).toMatchObject({ currentWorkers: 1, threads: 1, peakWorkers: 3, tasksRun: 3 });
    expect(pool.workersRetired).toBe(pool.workersCreated - pool.currentWorkers);
    expect(pool.workersReplaced).toBe(0);
    // The remaining thread still serves.
    const next = await o.submit({ type: 'cpu', capabilities: ['cpu'], payload: { gate: gate.buffer } }).result();
    expect(next.workerId).toMatch(/^thread-/);
  });

  it('never retires below minWorkers', async () => {
    const o = await started({ workerPool: { minWorkers: 3, maxWorkers: 5, idleTimeout: 20 } });
    o.registerAgent({ agentId: 'io', role: AgentRole.EXECUTOR, capabilities: ['io'], maxConcurrent: 5, handler: async () => 'ok' });
    await Promise.all(Array.from({ length: 5 }, () => o.submit({ type: 'io', capabilities: ['io'] }).result()));
    const before = o.getStats().workerPool;
    await waitFor(() => o.getStats().workerPool.currentWorkers === 3, 'the pool to shrink to minWorkers');
    // Several idle timeouts later it still holds minWorkers.
    await delay(100);
    expect(o.getStats().workerPool).toMatchObject({ currentWorkers: 3, workersRetired: before.currentWorkers - 3 });
  });
});
