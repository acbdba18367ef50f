import { describe, expect, it } from 'vitest';
import {
  AgentRole,
  NonRetryableError,
  TaskCancelledError,
  TaskNotFoundError,
  TaskPriority,
  TaskStatus,
  TaskTimeoutError,
  type AgentHandler,
  type OrchestratorEvents,
  type ParallelOrchestrator,
  type TaskEvent,
} from '../src/index.js';
import { deferred, eventOf, nextEvent, settle, useOrchestrators } from './helpers.js';

const make = useOrchestrators();

/** Registers one agent with capability 'w' and the given handler. */
function worker(o: ParallelOrchestrator, handler: AgentHandler, maxConcurrent = 1, agentId = 'worker'): void {
  o.registerAgent({ agentId, role: AgentRole.EXECUTOR, capabilities: ['w'], maxConcurrent, handler });
}

/** Resolves once the handler's signal aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

describe('timeouts', () => {
  it('fail a task whose handler ignores its signal with TaskTimeoutError, and discard its late result', async () => {
    const o = await make();
    const gate = deferred();
    const seen = deferred<{ aborted: boolean; reason: unknown }>();
    worker(o, async (task, ctx) => {
      if (task.type !== 'slow') return 'next';
      await gate.promise;
      seen.resolve({ aborted: ctx.signal.aborted, reason: ctx.signal.reason });
      return 'late';
    });
    const completed: OrchestratorEvents['task:completed'][] = [];
    o.on('task:completed', (payload) => completed.push(payload));
    const failed = nextEvent(o, 'task:failed');

    const obs = o.submit({ type: 'slow', capabilities: ['w'], timeout: 20, retry: { maxAttempts: 1 } });
    const error = await eventOf(obs, 'error');
    expect(error.error).toBeInstanceOf(TaskTimeoutError);
    expect(error).toMatchObject({ type: 'error', taskId: obs.taskId, code: 'TASK_TIMEOUT', attempts: 1 });
    await expect(obs.result()).rejects.toMatchObject({ name: 'TaskTimeoutError', code: 'TASK_TIMEOUT', taskId: obs.taskId, timeout: 20 });
    expect(await failed).toMatchObject({ taskId: obs.taskId, code: 'TASK_TIMEOUT', status: TaskStatus.TIMEOUT, attempts: 1 });
    expect(obs.state).toBe(TaskStatus.TIMEOUT);

    gate.resolve();
    const { aborted: wasAborted, reason } = await seen.promise;
    expect(wasAborted).toBe(true);
    expect(reason).toBeInstanceOf(TaskTimeoutError);
    // The agent has one slot, so this runs only after the late handler returned and was dealt with.
    expect((await o.submit({ type: 'next', capabilities: ['w'] }).result()).result).toBe('next');
    expect(completed.map((c) => c.result)).toEqual(['next']);
    expect(obs.state).toBe(TaskStatus.TIMEOUT);
    expect(o.getStats()).toMatchObject({ totalCompleted: 1, totalFailed: 1, totalTimeouts: 1 });
  });

  it('fail a task whose handler returns only after its timeout elapsed, even if the deadline timer could not fire first', async () => {
    const o = await make();
    worker(o, async () => {
      // CPU-bound for 4× the timeout: no timer runs meanwhile, so only the settle path can notice the overrun.
      const until = performance.now() + 40;
      while (performance.now() < until);
      return 'too late';
    });
    const obs = o.submit({ type: 'cpu', capabilities: ['w'], timeout: 10, retry: { maxAttempts: 1 } });
    const outcome = await settle(obs.result());
    expect(outcome.ok ? `completed with ${JSON.stringify(outcome.value.result)} after ${outcome.value.duration} ms` : outcome.error).toBeInstanceOf(TaskTimeoutError);
    expect(obs.state).toBe(TaskStatus.TIMEOUT);
  });

  it('retry a timed-out attempt when attempts remain', async () => {
    const o = await make();
    worker(o, async (_task, ctx) => {
      if (ctx.attempt === 1) await aborted(ctx.signal);
      return ctx.attempt;
    });
    const obs = o.submit({ type: 'flaky', capabilities: ['w'], timeout: 15, retry: { maxAttempts: 2, initialDelay: 1, jitter: 0 } });
    const retry = await eventOf(obs, 'retry');
    expect(retry.error).toBeInstanceOf(TaskTimeoutError);
    expect(await obs.result()).toMatchObject({ result: 2, attempts: 2 });
    expect(o.getStats()).toMatchObject({ totalTimeouts: 1, totalRetries: 1, totalFailed: 0, totalCompleted: 1 });
  });
});

describe('retries', () => {
  it('retry with exponential backoff, same task id, attempt counting up', async () => {
    const o = await make();
    const attempts: { id: string; attempt: number; taskAttempt: number }[] = [];
    worker(o, async (task, ctx) => {
      attempts.push({ id: task.id, attempt: ctx.attempt, taskAttempt: task.attempt });
      if (ctx.attempt < 4) throw new Error(`fail ${ctx.attempt}`);
      return 'finally';
    });
    const orchestratorRetries: OrchestratorEvents['task:retry'][] = [];
    o.on('task:retry', (payload) => orchestratorRetries.push(payload));
    const obs = o.submit({ id: 'again', type: 'flaky', capabilities: ['w'], retry: { maxAttempts: 4, initialDelay: 5, factor: 10, maxDelay: 20, jitter: 0 } });
    const retries: TaskEvent[] = [];
    obs.on('retry', (event) => retries.push(event));

    expect(await obs.result()).toMatchObject({ taskId: 'again', result: 'finally', attempts: 4 });
    // 5, then 5·10 capped at 20, then 20.
    expect(retries).toMatchObject([
      { type: 'retry', taskId: 'again', attempt: 2, delay: 5, error: { message: 'fail 1' } },
      { type: 'retry', taskId: 'again', attempt: 3, delay: 20, error: { message: 'fail 2' } },
      { type: 'retry', taskId: 'again', attempt: 4, delay: 20, error: { message: 'fail 3' } },
    ]);
    expect(orchestratorRetries.map(({ taskId, attempt, delay }) => ({ taskId, attempt, delay }))).toEqual([
      { taskId: 'again', attempt: 2, delay: 5 },
      { taskId: 'again', attempt: 3, delay: 20 },
      { taskId: 'again', attempt: 4, delay: 20 },
    ]);
    expect(attempts).toEqual([1, 2, 3, 4].map((n) => ({ id: 'again', attempt: n, taskAttempt: n })));
    expect(o.getStats()).toMatchObject({ totalRetries: 3, totalCompleted: 1, totalFailed: 0 });
  });

  it('shorten each delay by at most the jitter fraction', async () => {
    const o = await make();
    worker(o, async () => {
      throw new Error('always');
    });
    const obs = o.submit({ type: 'doomed', capabilities: ['w'], retry: { maxAttempts: 4, initialDelay: 8, factor: 2, jitter: 0.5 } });
    const delays: number[] = [];
    obs.on('retry', (event) => delays.push(event.delay));
    await settle(obs.result());
    expect(delays).toHaveLength(3);
    [8, 16, 32].forEach((base, i) => {
      expect(delays[i]).toBeGreaterThanOrEqual(base / 2);
      expect(delays[i]).toBeLessThanOrEqual(base);
    });
  });

  it.each([
    ['NonRetryableError', () => new NonRetryableError('bad input'), 'NON_RETRYABLE'],
    ['an error with retryable: false', () => Object.assign(new Error('quota gone'), { retryable: false }), 'TASK_FAILED'],
    ['an error with retryable: false and its own code', () => Object.assign(new Error('denied'), { retryable: false, code: 'E_DENIED' }), 'E_DENIED'],
  ])('fail at once on %s', async (_name, makeError, code) => {
    const o = await make();
    let calls = 0;
    worker(o, async () => {
      calls++;
      throw makeError();
    });
    const obs = o.submit({ type: 'final', capabilities: ['w'], retry: { maxAttempts: 5, initialDelay: 1 } });
    const retries: TaskEvent[] = [];
    obs.on('retry', (event) => retries.push(event));
    const error = await eventOf(obs, 'error');
    expect(error).toMatchObject({ code, attempts: 1 });
    expect(calls).toBe(1);
    expect(retries).toEqual([]);
    expect(o.getStats()).toMatchObject({ totalRetries: 0, totalFailed: 1 });
  });
});

describe('dead-letter queue', () => {
  it('holds a task whose attempts ran out, and requeueDeadLetter runs it again', async () => {
    const o = await make();
    let healthy = false;
    worker(o, async (_task, ctx) => {
      if (!healthy) throw new Error(`boom ${ctx.attempt}`);
      return { attempt: ctx.attempt };
    });
    const deadLetter = nextEvent(o, 'task:dead-letter');
    const obs = o.submit({ id: 'dlq-1', type: 'fragile', priority: TaskPriority.HIGH, capabilities: ['w'], payload: { n: 7 }, retry: { maxAttempts: 2, initialDelay: 1 } });
    await expect(obs.result()).rejects.toThrow('boom 2');

    const event = await deadLetter;
    expect(event).toMatchObject({ taskId: 'dlq-1', attempts: 2, error: { message: 'boom 2' } });
    const letters = await o.deadLetters();
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({
      taskId: 'dlq-1',
      type: 'fragile',
      code: 'TASK_FAILED',
      attempts: 2,
      error: { message: 'boom 2' },
      spec: { id: 'dlq-1', type: 'fragile', priority: TaskPriority.HIGH, capabilities: ['w'], payload: { n: 7 } },
    });
    expect(typeof letters[0]!.failedAt).toBe('number');
    expect(o.getStats().taskQueue.deadLetters).toBe(1);

    healthy = true;
    const again = await o.requeueDeadLetter('dlq-1');
    expect(again.taskId).toBe('dlq-1');
    expect(await o.deadLetters()).toEqual([]);
    expect(await again.result()).toMatchObject({ taskId: 'dlq-1', result: { attempt: 1 }, attempts: 1 });
    await expect(o.requeueDeadLetter('dlq-1')).rejects.toThrow(TaskNotFoundError);
  });
});

describe('checkpoints', () => {
  it("hand a failed attempt's ctx.checkpoint to the retry as ctx.resumeState", async () => {
    const o = await make();
    const resumes: unknown[] = [];
    worker(o, async (_task, ctx) => {
      resumes.push(ctx.resumeState);
      if (ctx.attempt === 1) {
        await ctx.checkpoint({ step: 3, partial: [1, 2, 3] });
        throw new Error('crashed after step 3');
      }
      return 'resumed';
    });
    const obs = o.submit({ id: 'cp-1', type: 'long', capabilities: ['w'], retry: { maxAttempts: 2, initialDelay: 1 } });
    let duringRetry: unknown;
    o.on('task:retry', ({ taskId }) => (duringRetry = o.resumeFromCheckpoint(taskId)));
    await obs.result();
    expect(resumes).toEqual([undefined, { step: 3, partial: [1, 2, 3] }]);
    expect(duringRetry).toEqual({ step: 3, partial: [1, 2, 3] });
    // Released once the task completed.
    expect(o.resumeFromCheckpoint('cp-1')).toBeNull();
    expect(o.getStats().checkpoints).toBe(1);
  });

  it('orchestrator.checkpoint saves a state that resumeFromCheckpoint returns and the next run receives', async () => {
    const o = await make();
    const gate = deferred();
    const resumes: unknown[] = [];
    worker(o, async (task, ctx) => {
      if (task.type === 'blocker') await gate.promise;
      else resumes.push(ctx.resumeState);
    });
    await eventOf(o.submit({ type: 'blocker', capabilities: ['w'] }), 'start');
    const queued = o.submit({ id: 'cp-2', type: 'work', capabilities: ['w'] });
    expect(o.resumeFromCheckpoint('cp-2')).toBeNull();
    await o.checkpoint('cp-2', { progress: 50, data: 'checkpoint-state' });
    expect(o.resumeFromCheckpoint('cp-2')).toEqual({ progress: 50, data: 'checkpoint-state' });
    gate.resolve();
    await queued.result();
    expect(resumes).toEqual([{ progress: 50, data: 'checkpoint-state' }]);
    expect(o.getStats().checkpoints).toBe(1);
  });

  it('can checkpoint a dead-lettered task so its requeued run resumes', async () => {
    const o = await make();
    let fail = true;
    worker(o, async (_task, ctx) => {
      if (fail) throw new NonRetryableError('down');
      return ctx.resumeState;
    });
    await settle(o.submit({ id: 'cp-3', type: 'work', capabilities: ['w'] }).result());
    await o.checkpoint('cp-3', { cursor: 42 });
    fail = false;
    expect((await (await o.requeueDeadLetter('cp-3')).result()).result).toEqual({ cursor: 42 });
  });

  it('reject a checkpoint for an unknown task with TaskNotFoundError', async () => {
    const o = await make();
    const outcome = await settle(Promise.resolve().then(() => o.checkpoint('nope', {})));
    expect(!outcome.ok && outcome.error).toBeInstanceOf(TaskNotFoundError);
    expect(o.resumeFromCheckpoint('nope')).toBeNull();
  });
});

describe('cancel', () => {
  it('removes a queued task: cancelled event, never starts', async () => {
    const o = await make();
    const gate = deferred();
    const ran: string[] = [];
    worker(o, async (task) => {
      ran.push(task.id);
      if (task.type === 'blocker') await gate.promise;
    });
    const blocker = o.submit({ id: 'blocker', type: 'blocker', capabilities: ['w'] });
    await eventOf(blocker, 'start');
    const victim = o.submit({ id: 'victim', type: 'work', capabilities: ['w'] });
    const orchestratorCancelled = nextEvent(o, 'task:cancelled');
    const cancelled = eventOf(victim, 'cancelled');
    expect(o.getStats().taskQueue.size).toBe(1);

    expect(await o.cancel('victim', 'not needed')).toBe(true);
    expect(await cancelled).toEqual({ type: 'cancelled', taskId: 'victim', reason: 'not needed' });
    expect(await orchestratorCancelled).toEqual({ taskId: 'victim', reason: 'not needed' });
    await expect(victim.result()).rejects.toBeInstanceOf(TaskCancelledError);
    expect(victim.state).toBe(TaskStatus.CANCELLED);
    expect(o.getStats().taskQueue.size).toBe(0);
    expect(await o.cancel('victim')).toBe(false);

    gate.resolve();
    await o.onIdle();
    expect(ran).toEqual(['blocker']);
    expect(o.getStats()).toMatchObject({ totalCancelled: 1, totalCompleted: 1 });
  });

  it('aborts a running task: its signal fires, status cancelled, no completion', async () => {
    const o = await make();
    const seen = deferred<{ aborted: boolean; reason: unknown }>();
    worker(o, async (task, ctx) => {
      if (task.type !== 'long') return 'next';
      await aborted(ctx.signal);
      seen.resolve({ aborted: ctx.signal.aborted, reason: ctx.signal.reason });
      return 'ignored';
    });
    const completed: string[] = [];
    o.on('task:completed', ({ taskId }) => completed.push(taskId));
    const obs = o.submit({ id: 'long', type: 'long', capabilities: ['w'] });
    await eventOf(obs, 'start');
    const cancelled = eventOf(obs, 'cancelled');
    expect(await o.cancel('long', 'user pressed stop')).toBe(true);
    expect(obs.state).toBe(TaskStatus.CANCELLED);
    expect(await cancelled).toMatchObject({ taskId: 'long', reason: 'user pressed stop' });
    const { aborted: wasAborted, reason } = await seen.promise;
    expect(wasAborted).toBe(true);
    expect(reason).toBeInstanceOf(TaskCancelledError);
    await expect(obs.result()).rejects.toMatchObject({ code: 'TASK_CANCELLED', reason: 'user pressed stop' });
    // One slot: this completes only after the cancelled handler gave it back.
    await o.submit({ type: 'next', capabilities: ['w'] }).result();
    expect(completed).toHaveLength(1);
    expect(completed).not.toContain('long');
    expect(obs.state).toBe(TaskStatus.CANCELLED);
  });

  it('stops a task waiting for its retry', async () => {
    const o = await make();
    let calls = 0;
    worker(o, async () => {
      calls++;
      throw new Error('transient');
    });
    const obs = o.submit({ id: 'retrying', type: 'work', capabilities: ['w'], retry: { maxAttempts: 3, initialDelay: 60_000 } });
    await eventOf(obs, 'retry');
    expect(o.getTask('retrying')?.status).toBe(TaskStatus.RETRYING);
    expect(await o.cancel('retrying')).toBe(true);
    await expect(obs.result()).rejects.toBeInstanceOf(TaskCancelledError);
    await o.onIdle();
    expect(calls).toBe(1);
    expect(o.getStats().taskQueue.retrying).toBe(0);
  });
});

describe('orchestrator events', () => {
  const names = [
    'orchestrator:started',
    'task:submitted',
    'task:started',
    'task:progress',
    'task:retry',
    'task:completed',
    'task:failed',
    'task:cancelled',
    'task:dead-letter',
    'agent:registered',
    'agent:unregistered',
    'orchestrator:shutdown',
  ] as const satisfies readonly (keyof OrchestratorEvents)[];

  it('fire with their documented payloads', async () => {
    const o = await make({}, { start: false });
    const log: { name: string; payload: Record<string, unknown> }[] = [];
    for (const name of names) o.on(name, (payload) => log.push({ name, payload: payload as unknown as Record<string, unknown> }));
    const of = (name: string, taskId?: string) => log.filter((e) => e.name === name && (taskId === undefined || e.payload.taskId === taskId)).map((e) => e.payload);

    await o.start();
    o.registerAgent({
      agentId: 'ev',
      role: AgentRole.MONITOR,
      capabilities: ['e'],
      maxConcurrent: 2,
      handler: async (task, ctx) => {
        if (task.type === 'bad') throw new NonRetryableError('broken');
        if (task.type === 'hang') {
          await aborted(ctx.signal);
          return null;
        }
        ctx.progress({ pct: 50 * ctx.attempt });
        if (ctx.attempt === 1) throw new Error('flaky');
        return 'fine';
      },
    });
    await o.submit({ id: 'good', type: 'good', priority: TaskPriority.HIGH, capabilities: ['e'], retry: { maxAttempts: 2, initialDelay: 1, jitter: 0 } }).result();
    await settle(o.submit({ id: 'bad', type: 'bad', capabilities: ['e'] }).result());
    const hang = o.submit({ id: 'hang', type: 'hang', capabilities: ['e'] });
    await eventOf(hang, 'start');
    o.cancel('hang', 'stop it');
    await o.onIdle();
    o.unregisterAgent('ev');
    await o.shutdown({ graceful: true });

    const number = expect.any(Number);
    const string = expect.any(String);
    expect(of('orchestrator:started')).toEqual([{ timestamp: number }]);
    expect(of('agent:registered')).toEqual([{ agentId: 'ev', role: AgentRole.MONITOR, capabilities: ['e'] }]);
    expect(of('task:submitted')).toEqual([
      { taskId: 'good', type: 'good', priority: TaskPriority.HIGH },
      { taskId: 'bad', type: 'bad', priority: TaskPriority.NORMAL },
      { taskId: 'hang', type: 'hang', priority: TaskPriority.NORMAL },
    ]);
    expect(of('task:started', 'good')).toEqual([
      { taskId: 'good', type: 'good', agentId: 'ev', workerId: string, attempt: 1 },
      { taskId: 'good', type: 'good', agentId: 'ev', workerId: string, attempt: 2 },
    ]);
    // Core fields only: a JSON Patch `delta` may ride along, depending on streaming options.
    expect(of('task:progress').map(({ taskId, agentId, sequence, data }) => ({ taskId, agentId, sequence, data }))).toEqual([
      { taskId: 'good', agentId: 'ev', sequence: 1, data: { pct: 50 } },
      { taskId: 'good', agentId: 'ev', sequence: 2, data: { pct: 100 } },
    ]);
    expect(of('task:retry')).toEqual([{ taskId: 'good', attempt: 2, delay: 1, error: expect.objectContaining({ message: 'flaky' }) }]);
    expect(of('task:completed')).toEqual([{ taskId: 'good', type: 'good', agentId: 'ev', workerId: string, duration: number, attempts: 2, result: 'fine' }]);
    expect(of('task:failed')).toEqual([
      { taskId: 'bad', type: 'bad', error: expect.any(NonRetryableError), code: 'NON_RETRYABLE', attempts: 1, status: TaskStatus.FAILED },
    ]);
    expect(of('task:dead-letter')).toEqual([{ taskId: 'bad', error: expect.any(NonRetryableError), attempts: 1 }]);
    expect(of('task:cancelled')).toEqual([{ taskId: 'hang', reason: 'stop it' }]);
    expect(of('agent:unregistered')).toEqual([{ agentId: 'ev' }]);
    expect(of('orchestrator:shutdown')).toEqual([{ graceful: true, cancelled: 0, timestamp: number }]);
    // Lifecycle of the retried task, in order.
    expect(log.filter((e) => e.payload.taskId === 'good').map((e) => e.name)).toEqual([
      'task:submitted',
      'task:started',
      'task:progress',
      'task:retry',
      'task:started',
      'task:progress',
      'task:completed',
    ]);
    expect(log[0]!.name).toBe('orchestrator:started');
    expect(log.at(-1)!.name).toBe('orchestrator:shutdown');
  });
});

describe('subscribing right after submit', () => {
  it('misses neither start nor the first delta, even for work submitted from a running handler', async () => {
    const o = await make({ workerPool: { maxWorkers: 4 } });
    const timelines = new Map<string, string[]>();
    const follow = (submitted: ReturnType<ParallelOrchestrator['submit']>) => {
      const timeline: string[] = [];
      timelines.set(submitted.taskId, timeline);
      submitted.on('start', (e) => timeline.push(`start ${e.attempt}`));
      submitted.on('delta', (e) => timeline.push(`delta ${e.metadata.sequence}`));
      submitted.on('complete', () => timeline.push('complete'));
      return submitted;
    };
    o.registerAgent({
      agentId: 'streamer',
      role: AgentRole.EXECUTOR,
      capabilities: ['s'],
      maxConcurrent: 4,
      // Progress is reported synchronously at start: a late subscriber would miss it.
      handler: async (task, ctx) => {
        ctx.progress({ at: 'start' });
        if (task.type === 'parent') follow(o.submit({ type: 'child', capabilities: ['s'] }));
        await Promise.resolve();
        ctx.progress({ at: 'end' });
        return task.id;
      },
    });
    for (let i = 0; i < 40; i++) follow(o.submit({ type: 'parent', capabilities: ['s'] }));
    await o.onIdle();
    expect(timelines.size).toBe(80);
    for (const [taskId, timeline] of timelines) expect(timeline, taskId).toEqual(['start 1', 'delta 1', 'delta 2', 'complete']);
  });

  it('an async iterator started right after submit yields every event in order', async () => {
    const o = await make();
    worker(o, async (_task, ctx) => {
      ctx.progress({ attempt: ctx.attempt });
      if (ctx.attempt === 1) throw new Error('again');
      return 'ok';
    });
    const types: string[] = [];
    for await (const event of o.submit({ type: 'it', capabilities: ['w'], retry: { maxAttempts: 2, initialDelay: 1 } })) types.push(event.type);
    expect(types).toEqual(['start', 'delta', 'retry', 'start', 'delta', 'complete']);
  });
});

describe('getStats', () => {
  it('reports consistent totals, queue depth per priority, pool and router state', async () => {
    const makeFrom = Date.now();
    const o = await make({ workerPool: { minWorkers: 2, maxWorkers: 3 }, circuitBreaker: { enabled: false } });
    const startedBy = Date.now();
    const gate = deferred();
    const handler: AgentHandler = async (task, ctx) => {
      if (task.type === 'blocker') await gate.promise;
      if (task.type === 'fail') throw new Error('nope');
      if (task.type === 'save') await ctx.checkpoint({ saved: true });
      return task.type;
    };
    o.registerAgent({ agentId: 'obs', role: AgentRole.OBSERVER, capabilities: ['o'], maxConcurrent: 1, handler });
    o.registerAgent({ agentId: 'exe-1', role: AgentRole.EXECUTOR, capabilities: ['e'], maxConcurrent: 2, handler });
    o.registerAgent({ agentId: 'exe-2', role: AgentRole.EXECUTOR, capabilities: ['e'], maxConcurrent: 2, handler });
    const blocker = o.submit({ type: 'blocker', capabilities: ['o'] });
    await eventOf(blocker, 'start');
    const levels = [TaskPriority.HIGH, TaskPriority.BACKGROUND, TaskPriority.HIGH, TaskPriority.LOW, TaskPriority.BACKGROUND, TaskPriority.CRITICAL, TaskPriority.BACKGROUND];
    const queued = levels.map((priority) => o.submit({ type: 'ok', priority, capabilities: ['o'] }));

    const during = o.getStats();
    expect(during.taskQueue).toMatchObject({ size: 7, maxSize: Infinity, retrying: 0, byPriority: { CRITICAL: 1, HIGH: 2, NORMAL: 0, LOW: 1, BACKGROUND: 3 } });
    expect(during.running).toBe(1);
    expect(during.workerPool.busy).toBe(1);
    expect(o.getAgentState('obs').active).toBe(1);
    o.cancel(queued[1]!.taskId);
    expect(o.getStats().taskQueue.byPriority).toEqual({ CRITICAL: 1, HIGH: 2, NORMAL: 0, LOW: 1, BACKGROUND: 2 });

    const others = [
      ...Array.from({ length: 5 }, () => o.submit({ type: 'ok', capabilities: ['e'] })),
      ...Array.from({ length: 2 }, () => o.submit({ type: 'fail', capabilities: ['e'], retry: { maxAttempts: 1 } })),
      o.submit({ type: 'save', capabilities: ['e'] }),
    ];
    gate.resolve();
    const outcomes = await Promise.all([blocker, ...queued, ...others].map((t) => settle(t.result())));
    await o.onIdle();

    const before = Date.now();
    const stats = o.getStats();
    const after = Date.now();
    expect(stats).toMatchObject({
      totalSubmitted: 16,
      totalCompleted: 13,
      totalFailed: 2,
      totalCancelled: 1,
      totalTimeouts: 0,
      totalRetries: 0,
      successRate: 13 / 15,
      checkpoints: 1,
      running: 0,
    });
    // Since start(), which came after `make` began and before this test's first submit.
    expect(stats.uptime).toBeGreaterThanOrEqual(before - startedBy);
    expect(stats.uptime).toBeLessThanOrEqual(after - makeFrom);
    const durations = outcomes.flatMap((outcome) => (outcome.ok ? [outcome.value.duration] : []));
    expect(durations).toHaveLength(13);
    expect(stats.averageDuration).toBeCloseTo(durations.reduce((sum, d) => sum + d, 0) / durations.length, 6);
    expect(stats.taskQueue).toEqual({
      size: 0,
      maxSize: Infinity,
      retrying: 0,
      byPriority: { CRITICAL: 0, HIGH: 0, NORMAL: 0, LOW: 0, BACKGROUND: 0 },
      deadLetters: 2,
      deadLettersDropped: 0,
    });
    expect(stats.workerPool).toMatchObject({ minWorkers: 2, maxWorkers: 3, busy: 0, tasksRun: 15, successRate: 13 / 15 });
    expect(stats.workerPool.currentWorkers).toBeGreaterThanOrEqual(2);
    expect(stats.workerPool.currentWorkers).toBeLessThanOrEqual(3);
    expect(stats.workerPool.peakWorkers).toBeLessThanOrEqual(3);
    expect(stats.agentRouter).toMatchObject({ agents: 3, byRole: { [AgentRole.OBSERVER]: 1, [AgentRole.EXECUTOR]: 2 } });
    expect(stats.agentRouter.routingDecisions).toBeGreaterThanOrEqual(15);
    const agentStats = stats.agentRouter.agentStats;
    expect(agentStats.map((a) => a.agentId).sort()).toEqual(['exe-1', 'exe-2', 'obs']);
    expect(agentStats.reduce((sum, a) => sum + a.completed, 0)).toBe(13);
    expect(agentStats.reduce((sum, a) => sum + a.failed, 0)).toBe(2);
    expect(agentStats.find((a) => a.agentId === 'obs')).toMatchObject({ completed: 7, failed: 0, active: 0, execution: 'inline' });
  });
});
