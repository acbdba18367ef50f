import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { AgentRole, NonRetryableError, TaskStatus, TaskTimeoutError, type AgentHandler, type TaskPriority } from '../src/index.js';
import { deferred, seededRandom, useOrchestrators } from './helpers.js';

const make = useOrchestrators();

/** Resolves once the signal has aborted (at once if it already has: a cancel may come before the handler runs). */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

type Kind = 'ok' | 'progress' | 'failOnce' | 'alwaysFail' | 'nonRetryable' | 'timeout' | 'timeoutIgnoring' | 'timeoutThenOk';
/** When a task is cancelled: never, from the submit loop a little later, as it starts, by its own handler, or while it waits for a retry. */
type CancelPlan = 'none' | 'later' | 'onStart' | 'inHandler' | 'onRetry';

interface Payload {
  kind: Kind;
  ticks: number;
  updates: number;
  cancelInHandler: boolean;
}

/** Weighted choices: mostly plain work, a steady minority of each way to fail or be cancelled. */
const KINDS: [Kind, number][] = [
  ['ok', 40],
  ['progress', 25],
  ['failOnce', 10],
  ['alwaysFail', 6],
  ['nonRetryable', 5],
  ['timeout', 2],
  ['timeoutIgnoring', 1],
  ['timeoutThenOk', 2],
];
const PLANS: [CancelPlan, number][] = [
  ['none', 85],
  ['later', 6],
  ['onStart', 3],
  ['inHandler', 3],
  ['onRetry', 3],
];
const CAPABILITIES: string[][] = [[], ['a'], ['b'], ['a', 'b']];

function pick<T>(random: () => number, weighted: [T, number][]): T {
  const total = weighted.reduce((sum, [, w]) => sum + w, 0);
  let r = random() * total;
  for (const [value, weight] of weighted) {
    r -= weight;
    if (r < 0) return value;
  }
  return weighted.at(-1)![0];
}

/** What a task of each kind ends as when nothing cancels it. */
const EXPECTED: Record<Kind, { status: TaskStatus; attempts: number }> = {
  ok: { status: TaskStatus.COMPLETED, attempts: 1 },
  progress: { status: TaskStatus.COMPLETED, attempts: 1 },
  failOnce: { status: TaskStatus.COMPLETED, attempts: 2 },
  alwaysFail: { status: TaskStatus.FAILED, attempts: 2 },
  nonRetryable: { status: TaskStatus.FAILED, attempts: 1 },
  timeout: { status: TaskStatus.TIMEOUT, attempts: 1 },
  timeoutIgnoring: { status: TaskStatus.TIMEOUT, attempts: 1 },
  timeoutThenOk: { status: TaskStatus.COMPLETED, attempts: 2 },
};

const SEED = Number(process.env.RANDOMISED_SEED ?? 20_240_611);
const TASKS = 10_000;

describe('randomised mixed workload', () => {
  it(`every one of ${TASKS} tasks reaches exactly one terminal state and the stats agree (seed ${SEED})`, async () => {
    const random = seededRandom(SEED);
    const o = await make({ workerPool: { minWorkers: 2, maxWorkers: 16 }, circuitBreaker: { enabled: false } });

    const kinds = new Map<string, Kind>();
    const plans = new Map<string, CancelPlan>();
    /** What each cancel() call returned (true: it did cancel). */
    const cancelResults = new Map<string, Promise<boolean>>();
    let handlersActive = 0;
    // Replaced when awaited: handlers that outlive their task (timed out, cancelled) finish after onIdle.
    let handlersDrained = deferred();
    const handler: AgentHandler = async (task, ctx) => {
      handlersActive++;
      try {
        const p = task.payload as Payload;
        // The retry of a timed-out task returns without yielding to timers, so its 5 ms deadline cannot win a race.
        const retryOfTimeout = p.kind === 'timeoutThenOk' && ctx.attempt > 1;
        if (!retryOfTimeout) for (let i = 0; i < p.ticks; i++) await tick();
        for (let i = 0; i < p.updates; i++) ctx.progress({ step: i });
        if (p.cancelInHandler) {
          cancelResults.set(task.id, o.cancel(task.id, 'cancelled by its own handler'));
          await tick();
        }
        switch (p.kind) {
          case 'failOnce':
            if (ctx.attempt === 1) throw new Error('transient');
            break;
          case 'alwaysFail':
            throw new Error(`always (attempt ${ctx.attempt})`);
          case 'nonRetryable':
            throw new NonRetryableError('permanent');
          case 'timeout':
            await aborted(ctx.signal);
            break;
          case 'timeoutIgnoring':
            // Goes on after the abort and returns a result, which must be discarded.
            await aborted(ctx.signal);
            await tick();
            break;
          case 'timeoutThenOk':
            if (ctx.attempt === 1) await aborted(ctx.signal);
            break;
        }
        return { id: task.id, attempt: ctx.attempt };
      } finally {
        if (--handlersActive === 0) handlersDrained.resolve();
      }
    };
    o.registerAgent({ agentId: 'a', role: AgentRole.ANALYZER, capabilities: ['a'], maxConcurrent: 4, handler });
    o.registerAgent({ agentId: 'b', role: AgentRole.OBSERVER, capabilities: ['b'], maxConcurrent: 4, handler });
    o.registerAgent({ agentId: 'ab', role: AgentRole.EXECUTOR, capabilities: ['a', 'b'], maxConcurrent: 6, handler });
    o.registerAgent({ agentId: 'plain', role: AgentRole.MONITOR, capabilities: [], maxConcurrent: 3, handler });

    const terminal = new Map<string, string[]>();
    const observed = new Map<string, string[]>();
    const attemptsAtEnd = new Map<string, number>();
    const note = (map: Map<string, string[]>, taskId: string, what: string) => {
      const list = map.get(taskId);
      if (list === undefined) map.set(taskId, [what]);
      else list.push(what);
    };
    let retries = 0;
    let timedOutAttempts = 0;
    o.on('task:completed', ({ taskId, attempts }) => {
      note(terminal, taskId, TaskStatus.COMPLETED);
      attemptsAtEnd.set(taskId, attempts);
    });
    o.on('task:failed', ({ taskId, status, attempts, error }) => {
      note(terminal, taskId, status);
      attemptsAtEnd.set(taskId, attempts);
      if (error instanceof TaskTimeoutError) timedOutAttempts++;
    });
    o.on('task:cancelled', ({ taskId }) => note(terminal, taskId, TaskStatus.CANCELLED));
    o.on('task:started', ({ taskId }) => {
      if (plans.get(taskId) === 'onStart' && !cancelResults.has(taskId)) cancelResults.set(taskId, o.cancel(taskId, 'cancelled as it started'));
    });
    o.on('task:retry', ({ taskId, error }) => {
      retries++;
      if (error instanceof TaskTimeoutError) timedOutAttempts++;
      if (plans.get(taskId) === 'onRetry') cancelResults.set(taskId, o.cancel(taskId, 'cancelled while waiting to retry'));
    });

    const laterCancels = new Map<number, string[]>();
    for (let i = 0; i < TASKS; i++) {
      const id = `r${i}`;
      const kind = pick(random, KINDS);
      const plan = pick(random, PLANS);
      kinds.set(id, kind);
      plans.set(id, plan);
      const payload: Payload = {
        kind,
        ticks: Math.floor(random() * 4),
        updates: kind === 'progress' ? 1 + Math.floor(random() * 5) : 0,
        cancelInHandler: plan === 'inHandler',
      };
      // The retry of timeoutThenOk must fit its timeout even when the machine is loaded: a longer one (its first attempt waits for the abort anyway).
      const timeout = kind === 'timeoutThenOk' ? 100 : kind === 'timeout' || kind === 'timeoutIgnoring' ? 5 : 0;
      const maxAttempts = kind === 'failOnce' || kind === 'alwaysFail' || kind === 'timeoutThenOk' ? 2 : kind === 'nonRetryable' ? 3 : 1;
      const obs = o.submit({
        id,
        type: kind,
        priority: Math.floor(random() * 5) as TaskPriority,
        capabilities: CAPABILITIES[Math.floor(random() * CAPABILITIES.length)],
        payload,
        timeout,
        retry: { maxAttempts, initialDelay: 1, jitter: 0 },
      });
      obs.on('complete', () => note(observed, id, 'complete'));
      obs.on('error', () => note(observed, id, 'error'));
      obs.on('cancelled', () => note(observed, id, 'cancelled'));
      if (plan === 'later') {
        const at = i + Math.floor(random() * 60);
        laterCancels.set(at, [...(laterCancels.get(at) ?? []), id]);
      }
      for (const victim of laterCancels.get(i) ?? []) cancelResults.set(victim, o.cancel(victim, 'cancelled from the submit loop'));
      laterCancels.delete(i);
      // Let the engine run between bursts of submissions of random length.
      if (random() < 0.02) await tick();
    }
    for (const victims of laterCancels.values()) for (const victim of victims) cancelResults.set(victim, o.cancel(victim, 'cancelled after the submit loop'));

    await o.onIdle();
    if (handlersActive > 0) {
      handlersDrained = deferred();
      await handlersDrained.promise;
    }
    // The engine takes a handler's return on a later microtask; one macrotask turn lets it.
    await tick();

    const cancelReturned = new Map<string, boolean>();
    for (const [id, result] of cancelResults) cancelReturned.set(id, await result);
    const problems: string[] = [];
    const count: Record<string, number> = {};
    for (const [id, kind] of kinds) {
      const ends = terminal.get(id) ?? [];
      const seen = observed.get(id) ?? [];
      if (ends.length !== 1) problems.push(`${id} (${kind}, ${plans.get(id)}): terminal events ${JSON.stringify(ends)}`);
      if (seen.length !== 1) problems.push(`${id} (${kind}, ${plans.get(id)}): observable terminal events ${JSON.stringify(seen)}`);
      const status = ends[0]!;
      count[status] = (count[status] ?? 0) + 1;
      const didCancel = cancelReturned.get(id) === true;
      if (didCancel !== (status === TaskStatus.CANCELLED)) problems.push(`${id} (${kind}): cancel() returned ${cancelReturned.get(id)} but it ended ${status}`);
      if (!didCancel) {
        const expected = EXPECTED[kind];
        if (status !== expected.status || attemptsAtEnd.get(id) !== expected.attempts) {
          problems.push(`${id} (${kind}): ended ${status} after ${attemptsAtEnd.get(id)} attempts, expected ${expected.status} after ${expected.attempts}`);
        }
      }
    }
    expect(problems.slice(0, 20), `seed ${SEED}`).toEqual([]);

    // Every cancel plan and every outcome actually happened, so the checks above covered them.
    for (const plan of ['later', 'onStart', 'inHandler', 'onRetry'] as const) {
      expect([...plans].some(([id, p]) => p === plan && cancelReturned.get(id) === true), `a successful '${plan}' cancel`).toBe(true);
    }
    const completed = count[TaskStatus.COMPLETED] ?? 0;
    const failed = (count[TaskStatus.FAILED] ?? 0) + (count[TaskStatus.TIMEOUT] ?? 0);
    const cancelled = count[TaskStatus.CANCELLED] ?? 0;
    expect(completed).toBeGreaterThan(0);
    expect(count[TaskStatus.FAILED]).toBeGreaterThan(0);
    expect(count[TaskStatus.TIMEOUT]).toBeGreaterThan(0);
    expect(cancelled).toBeGreaterThan(0);
    expect(completed + failed + cancelled).toBe(TASKS);

    const stats = o.getStats();
    expect(stats).toMatchObject({
      totalSubmitted: TASKS,
      totalCompleted: completed,
      totalFailed: failed,
      totalCancelled: cancelled,
      totalRetries: retries,
      totalTimeouts: timedOutAttempts,
      successRate: completed / (completed + failed),
      running: 0,
    });
    expect(stats.taskQueue).toMatchObject({ size: 0, retrying: 0, byPriority: { CRITICAL: 0, HIGH: 0, NORMAL: 0, LOW: 0, BACKGROUND: 0 } });
    expect(stats.taskQueue.deadLetters + stats.taskQueue.deadLettersDropped).toBe(failed);
    expect(stats.workerPool.busy).toBe(0);
    expect(stats.workerPool.peakWorkers).toBeLessThanOrEqual(16);
    for (const info of stats.agentRouter.agentStats) expect(info.active, info.agentId).toBe(0);
    expect(stats.agentRouter.agentStats.reduce((sum, a) => sum + a.completed, 0)).toBe(completed);
  });
});
