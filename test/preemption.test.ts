// Priority preemption: a waiting task that no agent has room for takes the slot of a running
// preemptible task at least `preemption.minGap` levels less urgent; the preempted task resumes
// from its checkpoint, its retry budget untouched.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentRole, TaskPriority, type OrchestratorOptions, type ParallelOrchestrator, type StoreOptions, type TaskContext } from '../src/index.js';
import { createParallelOrchestrator as createBuiltOrchestrator } from '../dist/index.js';
import { deferred, nextEvent, useOrchestrators } from './helpers.js';
import { DATABASE_URL, dropSchema, postgresAvailable, sql, uniqueSchema } from './pg-helpers.js';

const make = useOrchestrators();
const makeBuilt = useOrchestrators(createBuiltOrchestrator as never) as unknown as typeof make;
const pgAvailable = await postgresAvailable();
const dir = mkdtempSync(join(tmpdir(), 'preemption-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A long task of `steps` steps that checkpoints after each and stops when its signal aborts; it
 * resumes from its checkpoint. `gate` holds it at each step until the test lets it go on.
 */
type Gate = (type: string, signal: AbortSignal) => Promise<void>;

function stepper(log: string[], gate?: Gate) {
  return async (task: { id: string; type: string; payload: unknown }, ctx: TaskContext<{ step: number }>) => {
    const { steps, checkpoints = true } = task.payload as { steps: number; checkpoints?: boolean };
    const from = ctx.resumeState?.step ?? 0;
    log.push(`${task.type} starts at step ${from} (attempt ${ctx.attempt})`);
    for (let step = from; step < steps; step++) {
      if (gate !== undefined) await gate(task.type, ctx.signal);
      else await new Promise((resolve) => setImmediate(resolve));
      if (ctx.signal.aborted) {
        log.push(`${task.type} gives way at step ${step}`);
        throw ctx.signal.reason;
      }
      if (checkpoints) await ctx.checkpoint({ step: step + 1 });
    }
    log.push(`${task.type} done`);
    return `${task.type} done`;
  };
}

async function single(options: OrchestratorOptions, log: string[], gate?: Gate, create = make): Promise<ParallelOrchestrator> {
  const o = await create({ workerPool: { minWorkers: 1, maxWorkers: 1 }, ...options });
  o.registerAgent({ agentId: 'solo', role: AgentRole.EXECUTOR, capabilities: ['work'], maxConcurrent: 1, handler: stepper(log, gate) as never });
  return o;
}

describe('priority preemption', () => {
  it('a CRITICAL task takes the slot of a preemptible BACKGROUND one, which then resumes from its checkpoint with its retry budget untouched', async () => {
    const log: string[] = [];
    const reached = deferred();
    const hold = deferred();
    let calls = 0;
    // Two steps go through; the third waits, so the task is busy (two checkpoints saved) when the CRITICAL one comes.
    const gate = async () => {
      if (++calls <= 2) return;
      reached.resolve();
      await hold.promise;
    };
    const o = await single({}, log, gate);
    const background = o.submit({ type: 'background', priority: TaskPriority.BACKGROUND, capabilities: ['work'], payload: { steps: 4 }, preemptible: true, retry: { maxAttempts: 1 } });
    await reached.promise;
    const preempted = nextEvent(o, 'task:preempted');
    const critical = o.submit({ type: 'critical', priority: TaskPriority.CRITICAL, capabilities: ['work'], payload: { steps: 1 } });
    // Let the background task go on: it sees its signal aborted at its next step and gives way.
    hold.resolve();
    expect(await preempted).toMatchObject({ taskId: background.taskId, by: critical.taskId, agentId: 'solo' });
    expect((await critical.result()).result).toBe('critical done');
    expect(await background.result()).toMatchObject({ result: 'background done', attempts: 1 });
    expect(log).toEqual([
      'background starts at step 0 (attempt 1)',
      'background gives way at step 2',
      'critical starts at step 0 (attempt 1)',
      'critical done',
      'background starts at step 2 (attempt 1)',
      'background done',
    ]);
    expect(o.getStats()).toMatchObject({ totalPreemptions: 1, totalRetries: 0, totalFailed: 0 });
    expect(o.getAgentState('solo')).toMatchObject({ failed: 0, circuitState: 'closed' });
    const types = (await o.history(background.taskId)).map((entry) => entry.type).filter((type) => type !== 'checkpoint');
    expect(types).toEqual(['submitted', 'started', 'preempted', 'started', 'completed']);
  });

  it('a preempted in-process handler that returns a result past its timeout, within graceMs, completes the task (its deadline stopped at the preemption)', async () => {
    const o = await make({ workerPool: { minWorkers: 1, maxWorkers: 1 }, preemption: { graceMs: 10_000 } });
    const aborted = deferred();
    o.registerAgent({
      agentId: 'solo',
      role: AgentRole.EXECUTOR,
      capabilities: ['work'],
      maxConcurrent: 1,
      handler: async (task, ctx) => {
        if (task.type !== 'stubborn') return 'urgent done';
        const started = performance.now();
        ctx.signal.addEventListener('abort', () => aborted.resolve(), { once: true });
        await aborted.promise;
        // Finishes its work anyway, past its timeout: the run must outlast it, so it waits for that time.
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, 600 - (performance.now() - started))));
        return 'stubborn done';
      },
    });
    const stubborn = o.submit({ type: 'stubborn', priority: TaskPriority.BACKGROUND, capabilities: ['work'], preemptible: true, timeout: 500, retry: { maxAttempts: 2 } });
    await nextEvent(o, 'task:started', (e) => e.taskId === stubborn.taskId);
    const urgent = o.submit({ type: 'urgent', priority: TaskPriority.CRITICAL, capabilities: ['work'] });
    expect(await stubborn.result()).toMatchObject({ result: 'stubborn done', attempts: 1 });
    expect((await urgent.result()).result).toBe('urgent done');
    expect(o.getStats()).toMatchObject({ totalPreemptions: 0, totalRetries: 0, totalFailed: 0 });
  });

  it('a preempted run cancelled while it gives way still frees its slot after graceMs, not stuckGrace', async () => {
    const o = await make({ workerPool: { minWorkers: 1, maxWorkers: 1, stuckGrace: 60_000 }, preemption: { graceMs: 20 } });
    const never = deferred();
    o.registerAgent({
      agentId: 'solo',
      role: AgentRole.EXECUTOR,
      capabilities: ['work'],
      maxConcurrent: 1,
      // The stubborn handler ignores its signal and returns only when the test ends.
      handler: async (task) => {
        if (task.type === 'stubborn') await never.promise;
        return 'urgent done';
      },
    });
    try {
      const stubborn = o.submit({ type: 'stubborn', priority: TaskPriority.BACKGROUND, capabilities: ['work'], preemptible: true });
      await nextEvent(o, 'task:started', (e) => e.taskId === stubborn.taskId);
      const urgent = o.submit({ type: 'urgent', priority: TaskPriority.CRITICAL, capabilities: ['work'] });
      await new Promise((resolve) => setImmediate(resolve));
      expect(await o.cancel(stubborn.taskId)).toBe(true);
      // Before the fix the urgent task waited for stuckGrace (a minute) once its victim was cancelled.
      expect((await urgent.result()).result).toBe('urgent done');
      expect(stubborn.state).toBe('cancelled');
      expect(o.getStats().totalPreemptions).toBe(0);
    } finally {
      never.resolve();
    }
  });

  it('aging never makes a task preempt a run of its own priority (no churn among BACKGROUND tasks)', async () => {
    const o = await make({ workerPool: { minWorkers: 1, maxWorkers: 2 }, taskQueue: { agingMs: 2, preemptibleFrom: TaskPriority.BACKGROUND } });
    const hold = deferred();
    const log: string[] = [];
    o.registerAgent({
      agentId: 'solo',
      role: AgentRole.EXECUTOR,
      capabilities: ['work'],
      maxConcurrent: 1,
      handler: async (task, ctx) => {
        if (task.type === 'first') {
          await Promise.race([hold.promise, new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }))]);
          if (ctx.signal.aborted) {
            log.push('first gives way');
            throw ctx.signal.reason;
          }
        }
        return task.type;
      },
    });
    o.registerAgent({ agentId: 'ticker', role: AgentRole.EXECUTOR, capabilities: ['tick'], maxConcurrent: 1, handler: () => 'tick' });
    const first = o.submit({ type: 'first', priority: TaskPriority.BACKGROUND, capabilities: ['work'] });
    await nextEvent(o, 'task:started', (e) => e.taskId === first.taskId);
    const second = o.submit({ type: 'second', priority: TaskPriority.BACKGROUND, capabilities: ['work'] });
    // Each tick is a dispatch pass: it ages the waiting task and looks for a run it may preempt.
    while (second.state === 'queued' && o.getStats().taskQueue.byPriority.CRITICAL === 0) await o.submit({ type: 'tick', capabilities: ['tick'] }).result();
    await o.submit({ type: 'tick', capabilities: ['tick'] }).result();
    hold.resolve();
    expect((await first.result()).result).toBe('first');
    expect((await second.result()).result).toBe('second');
    expect(log).toEqual([]);
    expect(o.getStats().totalPreemptions).toBe(0);
  });

  it('leaves alone a task that is not preemptible, and one whose priority is too close', async () => {
    for (const [low, preemptible] of [
      [TaskPriority.BACKGROUND, false],
      [TaskPriority.HIGH, true],
    ] as const) {
      const log: string[] = [];
      const hold = deferred();
      const o = await single({}, log, () => hold.promise);
      const running = o.submit({ type: 'running', priority: low, capabilities: ['work'], payload: { steps: 1 }, preemptible });
      await nextEvent(o, 'task:started', (e) => e.taskId === running.taskId);
      const urgent = o.submit({ type: 'urgent', priority: TaskPriority.CRITICAL, capabilities: ['work'], payload: { steps: 1 } });
      // The urgent task is queued behind it; dispatch looked for a victim and found none.
      await new Promise((resolve) => setImmediate(resolve));
      expect(urgent.state).toBe('queued');
      hold.resolve();
      await urgent.result();
      expect(o.getStats().totalPreemptions).toBe(0);
      expect(log.indexOf('running done')).toBeLessThan(log.indexOf('urgent done'));
    }
  });

  it('leaves alone a run whose agent could not start the waiting task in its slot (rate limit spent, circuit isolated)', async () => {
    for (const stop of ['rate limit', 'isolated'] as const) {
      const log: string[] = [];
      const hold = deferred();
      const o = await make({ workerPool: { minWorkers: 2, maxWorkers: 2 } });
      o.registerAgent({
        agentId: 'solo',
        role: AgentRole.EXECUTOR,
        capabilities: ['work'],
        maxConcurrent: 2,
        handler: stepper(log, () => hold.promise) as never,
        ...(stop === 'rate limit' ? { rateLimit: { max: 1, perMs: 60_000 } } : {}),
      });
      const running = o.submit({ type: 'running', priority: TaskPriority.BACKGROUND, capabilities: ['work'], payload: { steps: 1 }, preemptible: true });
      await nextEvent(o, 'task:started', (e) => e.taskId === running.taskId);
      if (stop === 'isolated') o.isolateAgent('solo');
      const urgent = o.submit({ type: 'urgent', priority: TaskPriority.CRITICAL, capabilities: ['work'], payload: { steps: 1 } });
      await new Promise((resolve) => setImmediate(resolve));
      expect(urgent.state).toBe('queued');
      hold.resolve();
      await running.result();
      expect(o.getStats().totalPreemptions).toBe(0);
      await o.cancel(urgent.taskId);
    }
  });

  it('taskQueue.preemptibleFrom makes every task at that priority or below preemptible', async () => {
    const log: string[] = [];
    let hold = deferred();
    const o = await single({ taskQueue: { preemptibleFrom: TaskPriority.LOW } }, log, () => hold.promise);
    const low = o.submit({ type: 'low', priority: TaskPriority.LOW, capabilities: ['work'], payload: { steps: 2 } });
    await nextEvent(o, 'task:started', (e) => e.taskId === low.taskId);
    const preempted = nextEvent(o, 'task:preempted');
    o.submit({ type: 'critical', priority: TaskPriority.CRITICAL, capabilities: ['work'], payload: { steps: 1 } });
    const current = hold;
    hold = { promise: Promise.resolve() } as never;
    current.resolve();
    expect((await preempted).taskId).toBe(low.taskId);
    await low.result();
  });

  it('stops preempting a task after preemption.maxPerTask times without a checkpoint (no thrashing)', async () => {
    const log: string[] = [];
    const o = await single({ preemption: { maxPerTask: 2 } }, log);
    const victim = o.submit({ type: 'victim', priority: TaskPriority.BACKGROUND, capabilities: ['work'], payload: { steps: 2_000, checkpoints: false }, preemptible: true });
    // Four urgent tasks, each while the victim runs: the first two take its slot, the others wait for it.
    for (let i = 0; i < 4 && victim.state !== 'completed'; i++) {
      if (victim.state !== 'running') await nextEvent(o, 'task:started', (e) => e.taskId === victim.taskId);
      await o.submit({ type: 'urgent', priority: TaskPriority.CRITICAL, capabilities: ['work'], payload: { steps: 1 } }).result();
    }
    await victim.result();
    expect(o.getStats().totalPreemptions).toBe(2);
    expect(log.filter((line) => line.startsWith('victim gives way'))).toHaveLength(2);
  });

  it('goes on preempting a task that checkpoints between preemptions (it loses no work)', async () => {
    const log: string[] = [];
    // Resolves after two more steps: the first of them checkpointed (the gate runs before the step's checkpoint).
    let calls = 0;
    let waiter: { at: number; resolve(): void } | null = null;
    const gate = async () => {
      await new Promise((resolve) => setImmediate(resolve));
      if (waiter !== null && ++calls >= waiter.at) waiter.resolve();
    };
    const twoSteps = () => new Promise<void>((resolve) => (waiter = { at: calls + 2, resolve }));
    const o = await single({ preemption: { maxPerTask: 1 } }, log, gate);
    const victim = o.submit({ type: 'victim', priority: TaskPriority.BACKGROUND, capabilities: ['work'], payload: { steps: 2_000 }, preemptible: true });
    for (let i = 0; i < 3; i++) {
      await twoSteps();
      await o.submit({ type: 'urgent', priority: TaskPriority.CRITICAL, capabilities: ['work'], payload: { steps: 1 } }).result();
    }
    await o.cancel(victim.taskId);
    expect(o.getStats().totalPreemptions).toBe(3);
    expect(log.filter((line) => line.startsWith('victim gives way'))).toHaveLength(3);
  });

  it('replaces a worker thread whose preempted task ignores the abort, after preemption.graceMs', async () => {
    // Threads load the built entry (dist/workers/thread-main.js): this orchestrator is the built one.
    const o = await makeBuilt({ workerPool: { minWorkers: 1, maxWorkers: 1 }, preemption: { graceMs: 50 } });
    o.registerAgent({ agentId: 'spinner', role: AgentRole.EXECUTOR, capabilities: ['cpu'], module: fileURLToPath(new URL('./fixtures/modules/spin.mjs', import.meta.url)) });
    const spinning = o.submit({ type: 'spin', priority: TaskPriority.BACKGROUND, capabilities: ['cpu'], payload: { spin: true }, preemptible: true });
    const first = await nextEvent(o, 'task:started', (e) => e.taskId === spinning.taskId);
    const urgent = o.submit({ type: 'urgent', priority: TaskPriority.CRITICAL, capabilities: ['cpu'], payload: { value: 1 } });
    const done = await urgent.result();
    expect(done.result).toEqual({ value: 1 });
    // The spinning thread was terminated: the urgent task ran on a new one.
    expect(done.workerId).not.toBe(first.workerId);
    expect(o.getStats().totalPreemptions).toBe(1);
    // The spinner is queued again; it spins again on the new thread until cancelled.
    await o.cancel(spinning.taskId);
  });

  const durable: [string, () => Promise<{ store: StoreOptions; rows: (id: string) => Promise<unknown[]>; done(): Promise<void> }>][] = [
    [
      'sqlite',
      async () => {
        const path = join(dir, `preempt-${Math.random().toString(36).slice(2)}.db`);
        return { store: { type: 'sqlite', path }, rows: async () => [], done: async () => {} };
      },
    ],
  ];
  if (pgAvailable) {
    durable.push([
      'postgres',
      async () => {
        const schema = uniqueSchema('po_preempt');
        return {
          store: { type: 'postgres', connectionString: DATABASE_URL, schema, leaseMs: 1_000, pollIntervalMs: 200 },
          rows: (id) => sql(`select state from ${schema}.checkpoints where task_id = $1`, [id]),
          done: () => dropSchema(schema),
        };
      },
    ]);
  }

  it.each(durable)('keeps the preempted task’s checkpoint and count on %s', async (name, setup) => {
    const { store, rows, done } = await setup();
    let o: ParallelOrchestrator | undefined;
    try {
      const log: string[] = [];
      // The background task's second step (its first checkpoint saved) waits until it is asked to
      // give way: on PostgreSQL the CRITICAL task reaches this node a few milliseconds after submit().
      let backgroundSteps = 0;
      const gate: Gate = (type, signal) => {
        if (type !== 'background' || ++backgroundSteps !== 2) return Promise.resolve();
        return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      };
      // The built orchestrator: the SQLite store commits from a worker thread that loads dist/.
      o = await single({ store }, log, gate, makeBuilt);
      await o.flush();
      const background = o.submit({ type: 'background', priority: TaskPriority.BACKGROUND, capabilities: ['work'], payload: { steps: 3 }, preemptible: true });
      await nextEvent(o, 'task:started', (e) => e.taskId === background.taskId);
      const preempted = nextEvent(o, 'task:preempted');
      const critical = o.submit({ type: 'critical', priority: TaskPriority.CRITICAL, capabilities: ['work'], payload: { steps: 1 } });
      await preempted;
      await critical.result();
      await background.result();
      const history = await o.history(background.taskId);
      expect(history.filter((entry) => entry.type === 'preempted')).toHaveLength(1);
      expect(history.find((entry) => entry.type === 'preempted')!.details).toMatchObject({ by: critical.taskId, preemptions: 1 });
      // The entry names the attempt it ended; the resumed run has the same number.
      expect(history.filter((entry) => ['started', 'preempted'].includes(entry.type)).map((entry) => `${entry.type}/${entry.attempt}`)).toEqual(['started/1', 'preempted/1', 'started/1']);
      expect(o.getStats().totalPreemptions).toBe(1);
      expect(log).toContain('background starts at step 1 (attempt 1)');
      if (name === 'postgres') expect(await rows(background.taskId)).toEqual([]);
    } finally {
      // Stopped before its schema goes, so it does not poll a dropped table.
      await o?.shutdown();
      await done();
    }
  });
});
