// Checkpoints, resume and the audit trail through the orchestrator API, on every store; then what
// only a durable (SQLite) store promises: state that outlives the orchestrator that wrote it.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AgentRole,
  CircuitState,
  InvalidTaskError,
  NonRetryableError,
  StoreError,
  TaskCancelledError,
  TaskNotFoundError,
  createParallelOrchestrator,
  type AuditEvent,
  type OrchestratorOptions,
  type ParallelOrchestrator,
  type StoreOptions,
  type TaskContext,
} from '../dist/index.js';
import { deferred } from './helpers.js';
import { DATABASE_URL, dropSchema, postgresAvailable, uniqueSchema } from './pg-helpers.js';

interface StoreInitializer {
  name: 'memory' | 'sqlite' | 'postgres';
  /** Called before each test: a SQLite store gets a fresh file, a PostgreSQL store a fresh schema. */
  setup(): void;
  teardown(): Promise<void> | void;
  store(): StoreOptions;
}

let dir = '';
const dbPath = (): string => join(dir, 'orchestrator.db');

const initializers: StoreInitializer[] = [
  { name: 'memory', setup() {}, teardown() {}, store: () => ({ type: 'memory' }) },
  {
    name: 'sqlite',
    setup() {
      dir = mkdtempSync(join(tmpdir(), 'persistence-'));
    },
    teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
    store: () => ({ type: 'sqlite', path: dbPath() }),
  },
];
let schema = '';
if (await postgresAvailable()) {
  initializers.push({
    name: 'postgres',
    setup() {
      schema = uniqueSchema('po_persist');
    },
    teardown: () => dropSchema(schema),
    store: () => ({ type: 'postgres', connectionString: DATABASE_URL, schema, leaseMs: 1_000, pollIntervalMs: 200 }),
  });
}

// Retries come at once, so tests wait on events, not on backoff.
const FAST_RETRY = { initialDelay: 1, jitter: 0 };
const live: ParallelOrchestrator[] = [];

/** An orchestrator on this test's store, force-shut-down after the test. Started unless `start: false`. */
async function make(store: StoreOptions, options: OrchestratorOptions = {}, start = true): Promise<ParallelOrchestrator> {
  const o = createParallelOrchestrator({ ...options, store });
  live.push(o);
  if (start) await o.start();
  return o;
}

async function shutdownAll(): Promise<void> {
  await Promise.all(live.splice(0).map((o) => o.shutdown({ graceful: false })));
}

function addAgent(o: ParallelOrchestrator, handler: (task: { id: string; payload: unknown; attempt: number }, ctx: TaskContext) => unknown, maxConcurrent = 4): void {
  o.registerAgent({ agentId: 'worker', role: AgentRole.EXECUTOR, capabilities: ['work'], maxConcurrent, handler });
}

const types = (events: AuditEvent[]): string[] => events.map((e) => e.type);

/** Every entry of the trail, paged. */
async function wholeAudit(o: ParallelOrchestrator): Promise<AuditEvent[]> {
  const all: AuditEvent[] = [];
  for (;;) {
    const page = await o.audit({ since: all.at(-1)?.seq ?? 0, limit: 10_000 });
    if (page.length === 0) return all;
    all.push(...page);
  }
}

describe.each(initializers)('persistence on the $name store', (init) => {
  beforeEach(() => init.setup());
  afterEach(async () => {
    await shutdownAll();
    await init.teardown();
  });

  it('names the store in getStats()', async () => {
    const o = await make(init.store());
    expect(o.getStats().store).toBe(init.name);
  });

  describe('checkpoints', () => {
    it('gives a retry the handler’s last checkpoint as resumeState, as it was when saved', async () => {
      const o = await make(init.store());
      const seen: unknown[] = [];
      addAgent(o, async (_task, ctx) => {
        seen.push(ctx.resumeState);
        if (ctx.attempt === 1) {
          const state = { step: 1, items: [1] };
          await ctx.checkpoint(state);
          state.step = 2;
          state.items.push(2);
          await ctx.checkpoint(state);
          // Changed after the checkpoint: the retry must not see this.
          state.items.push(3);
          throw new Error('first attempt fails');
        }
        return ctx.resumeState;
      });
      const obs = o.submit({ id: 'cp', type: 'work', capabilities: ['work'], retry: { ...FAST_RETRY, maxAttempts: 2 } });
      const { result, attempts } = await obs.result();
      expect(attempts).toBe(2);
      expect(seen).toEqual([undefined, { step: 2, items: [1, 2] }]);
      expect(result).toEqual({ step: 2, items: [1, 2] });
      // A completed task's checkpoint is released.
      expect(o.resumeFromCheckpoint('cp')).toBeNull();
    });

    it('checkpoint(taskId, state) and resumeFromCheckpoint(taskId), as in the seed', async () => {
      const o = await make(init.store());
      const running = deferred();
      const release = deferred();
      const seen: unknown[] = [];
      addAgent(o, async (_task, ctx) => {
        seen.push(ctx.resumeState);
        if (ctx.attempt === 1) {
          running.resolve();
          await release.promise;
          throw new Error('first attempt fails');
        }
        return 'done';
      });
      const obs = o.submit({ id: 'seed', type: 'work', capabilities: ['work'], retry: { ...FAST_RETRY, maxAttempts: 2 } });
      await running.promise;
      expect(o.resumeFromCheckpoint('seed')).toBeNull();
      await o.checkpoint('seed', { progress: 50, data: 'checkpoint-state' });
      expect(o.resumeFromCheckpoint('seed')).toEqual({ progress: 50, data: 'checkpoint-state' });
      release.resolve();
      expect((await obs.result()).result).toBe('done');
      expect(seen).toEqual([undefined, { progress: 50, data: 'checkpoint-state' }]);
      const checkpoints = (await o.history('seed')).filter((e) => e.type === 'checkpoint');
      expect(checkpoints).toHaveLength(1);
      expect(checkpoints[0]).toMatchObject({ taskId: 'seed', agentId: 'worker', attempt: 1 });
    });

    it('checkpoint() of an unknown task fails with TaskNotFoundError; resumeFromCheckpoint() gives null', async () => {
      const o = await make(init.store());
      await expect(async () => o.checkpoint('nope', { x: 1 })).rejects.toBeInstanceOf(TaskNotFoundError);
      expect(o.resumeFromCheckpoint('nope')).toBeNull();
    });

    it('a checkpoint saved for a dead-lettered task reaches its run after requeueDeadLetter', async () => {
      const o = await make(init.store());
      const seen: unknown[] = [];
      addAgent(o, (_task, ctx) => {
        seen.push(ctx.resumeState);
        if (ctx.resumeState === undefined) throw new NonRetryableError('needs a fix');
        return ctx.resumeState;
      });
      const failed = o.submit({ id: 'dl', type: 'work', capabilities: ['work'] });
      await expect(failed.result()).rejects.toThrow('needs a fix');
      await o.checkpoint('dl', { fixed: true });
      const { result } = await (await o.requeueDeadLetter('dl')).result();
      expect(result).toEqual({ fixed: true });
      expect(seen).toEqual([undefined, { fixed: true }]);
    });

    it('automatic checkpointing saves the latest progress state, once while it is unchanged', async () => {
      const interval = 20;
      const o = await make(init.store(), { checkpointing: { enabled: true, interval } });
      const seen: unknown[] = [];
      addAgent(o, async (task, ctx) => {
        seen.push(ctx.resumeState);
        if (ctx.attempt > 1) return ctx.resumeState;
        ctx.progress({ n: 1 });
        ctx.progress({ n: 2 });
        ctx.progress({ n: 3, done: ['a', 'b'] });
        // No event marks an automatic checkpoint: read until the timer's pass has saved it.
        await vi.waitFor(() => expect(o.resumeFromCheckpoint(task.id)).toEqual({ n: 3, done: ['a', 'b'] }), { timeout: 5_000, interval: 5 });
        // No progress for several intervals: an unchanged state must not be saved again.
        await delay(interval * 6);
        throw new Error('fails after streaming');
      });
      const { result } = await o.submit({ id: 'auto', type: 'work', capabilities: ['work'], retry: { ...FAST_RETRY, maxAttempts: 2 } }).result();
      expect(seen).toEqual([undefined, { n: 3, done: ['a', 'b'] }]);
      expect(result).toEqual({ n: 3, done: ['a', 'b'] });
      const checkpoints = (await o.audit({ type: 'checkpoint', limit: 100 })).filter((e) => e.taskId === 'auto');
      expect(checkpoints).toHaveLength(1);
      expect(checkpoints[0]).toMatchObject({ agentId: 'worker', attempt: 1, details: { automatic: true } });
      expect(o.getStats().checkpoints).toBe(1);
    });
  });

  describe('history(taskId)', () => {
    it('a task that retried and then completed', async () => {
      const o = await make(init.store());
      addAgent(o, (_task, ctx) => {
        if (ctx.attempt === 1) throw new Error('transient');
        return 'ok';
      });
      await o.submit({ id: 'retried', type: 'work', capabilities: ['work'], retry: { ...FAST_RETRY, maxAttempts: 3 } }).result();
      const history = await o.history('retried');
      expect(types(history)).toEqual(['submitted', 'started', 'retried', 'started', 'completed']);
      expect(history.map((e) => e.attempt)).toEqual([0, 1, 1, 2, 2]);
      expect(history.every((e) => e.taskId === 'retried')).toBe(true);
      expect(history[1]).toMatchObject({ agentId: 'worker' });
      expect(history[2]!.details).toMatchObject({ error: 'transient', delay: 1 });
      expect(history[4]).toMatchObject({ agentId: 'worker' });
      for (let i = 1; i < history.length; i++) {
        expect(history[i]!.seq).toBeGreaterThan(history[i - 1]!.seq);
        expect(history[i]!.timestamp).toBeGreaterThanOrEqual(history[i - 1]!.timestamp);
      }
    });

    it('a task that timed out', async () => {
      const o = await make(init.store());
      addAgent(o, (_task, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true })));
      const obs = o.submit({ id: 'slow', type: 'work', capabilities: ['work'], timeout: 30, retry: { maxAttempts: 1 } });
      await expect(obs.result()).rejects.toMatchObject({ code: 'TASK_TIMEOUT' });
      const history = await o.history('slow');
      expect(types(history)).toEqual(['submitted', 'started', 'timed-out', 'dead-lettered']);
      expect(history[2]!.details).toMatchObject({ code: 'TASK_TIMEOUT' });
    });

    it('a task cancelled while running, and one cancelled while queued', async () => {
      const o = await make(init.store());
      const started = deferred();
      addAgent(
        o,
        (_task, ctx) =>
          new Promise((_resolve, reject) => {
            started.resolve();
            ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
          }),
        1,
      );
      const running = o.submit({ id: 'running', type: 'work', capabilities: ['work'] });
      const queued = o.submit({ id: 'queued', type: 'work', capabilities: ['work'] });
      await started.promise;
      expect(await o.cancel('queued', 'not needed')).toBe(true);
      expect(await o.cancel('running', 'changed my mind')).toBe(true);
      await expect(running.result()).rejects.toMatchObject({ code: 'TASK_CANCELLED' });
      await expect(queued.result()).rejects.toMatchObject({ code: 'TASK_CANCELLED' });
      expect(types(await o.history('running'))).toEqual(['submitted', 'started', 'cancelled']);
      expect((await o.history('running'))[2]!.details).toEqual({ reason: 'changed my mind' });
      expect(types(await o.history('queued'))).toEqual(['submitted', 'cancelled']);
    });

    it('a task dead-lettered, then requeued and completed', async () => {
      const o = await make(init.store());
      let fail = true;
      addAgent(o, () => {
        if (fail) throw new NonRetryableError('broken input');
        return 'fixed';
      });
      await expect(o.submit({ id: 'dl', type: 'work', capabilities: ['work'] }).result()).rejects.toThrow('broken input');
      expect((await o.deadLetters()).map((d) => d.taskId)).toEqual(['dl']);
      fail = false;
      const { result } = await (await o.requeueDeadLetter('dl')).result();
      expect(result).toBe('fixed');
      const history = await o.history('dl');
      expect(types(history)).toEqual(['submitted', 'started', 'failed', 'dead-lettered', 'submitted', 'requeued', 'started', 'completed']);
      expect(history[2]!.details).toMatchObject({ error: 'broken input', code: 'NON_RETRYABLE' });
      // A requeued task starts over with a fresh attempt count.
      expect(history[6]!.attempt).toBe(1);
      expect(await o.deadLetters()).toEqual([]);
    });

    it('is empty for a task never seen', async () => {
      const o = await make(init.store());
      expect(await o.history('never')).toEqual([]);
    });
  });

  describe('audit()', () => {
    it('pages through the trail with since and limit, and filters by type', async () => {
      const o = await make(init.store());
      addAgent(o, (task) => task.payload);
      for (let i = 0; i < 5; i++) await o.submit({ id: `t${i}`, type: 'work', capabilities: ['work'], payload: i }).result();
      const all = await wholeAudit(o);
      expect(all).toHaveLength(15);
      expect(types(all.slice(0, 3))).toEqual(['submitted', 'started', 'completed']);
      for (let i = 1; i < all.length; i++) expect(all[i]!.seq).toBeGreaterThan(all[i - 1]!.seq);

      const paged: AuditEvent[] = [];
      let since = 0;
      for (;;) {
        const page = await o.audit({ since, limit: 4 });
        expect(page.length).toBeLessThanOrEqual(4);
        if (page.length === 0) break;
        paged.push(...page);
        since = page.at(-1)!.seq;
      }
      expect(paged).toEqual(all);

      const completed = await o.audit({ type: 'completed' });
      expect(completed.map((e) => e.taskId)).toEqual(['t0', 't1', 't2', 't3', 't4']);
      const afterSecond = await o.audit({ type: 'completed', since: completed[1]!.seq, limit: 2 });
      expect(afterSecond.map((e) => e.taskId)).toEqual(['t2', 't3']);
      expect(await o.audit({ since: all.at(-1)!.seq })).toEqual([]);
      // The default page is 100 entries.
      expect(await o.audit()).toEqual(all);
    });

    it('keeps only the newest maxEvents entries', async () => {
      const o = await make(init.store(), { audit: { maxEvents: 10 } });
      addAgent(o, () => 'ok');
      for (let i = 0; i < 6; i++) await o.submit({ id: `t${i}`, type: 'work', capabilities: ['work'] }).result();
      // 6 tasks × (submitted, started, completed) = 18 entries; the newest 10 remain.
      const kept = await wholeAudit(o);
      expect(kept.map((e) => e.seq)).toEqual([9, 10, 11, 12, 13, 14, 15, 16, 17, 18]);
      expect(kept.at(-1)).toMatchObject({ type: 'completed', taskId: 't5' });
      expect(await o.history('t0')).toEqual([]);
      expect(types(await o.history('t5'))).toEqual(['submitted', 'started', 'completed']);
    });

    it('records nothing when disabled', async () => {
      const o = await make(init.store(), { audit: { enabled: false } });
      addAgent(o, () => 'ok');
      await o.submit({ id: 't', type: 'work', capabilities: ['work'] }).result();
      expect(await wholeAudit(o)).toEqual([]);
      expect(await o.history('t')).toEqual([]);
    });

    it('records circuit changes as circuit entries', async () => {
      const o = await make(init.store(), { circuitBreaker: { failureThreshold: 2, resetTimeout: 60_000 } });
      addAgent(o, () => {
        throw new NonRetryableError('down');
      });
      for (let i = 0; i < 2; i++) await expect(o.submit({ id: `f${i}`, type: 'work', capabilities: ['work'] }).result()).rejects.toThrow('down');
      expect(o.getAgentState('worker').circuitState).toBe(CircuitState.OPEN);
      o.resetCircuit('worker');
      const circuit = await o.audit({ type: 'circuit' });
      expect(circuit.map((e) => ({ taskId: e.taskId, agentId: e.agentId, details: e.details }))).toEqual([
        { taskId: null, agentId: 'worker', details: { from: CircuitState.CLOSED, to: CircuitState.OPEN } },
        { taskId: null, agentId: 'worker', details: { from: CircuitState.OPEN, to: CircuitState.CLOSED } },
      ]);
    });
  });
});

describe('the SQLite store across orchestrators', () => {
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'persistence-'));
  });
  afterEach(async () => {
    await shutdownAll();
    rmSync(dir, { recursive: true, force: true });
  });

  const sqlite = (): StoreOptions => ({ type: 'sqlite', path: dbPath() });

  it('after a graceful shutdown, a new orchestrator on the file sees the dead letters and the history', async () => {
    const first = await make(sqlite());
    addAgent(first, (task) => {
      if (task.payload === 'bad') throw new NonRetryableError('bad payload');
      return 'ok';
    });
    await first.submit({ id: 'good', type: 'work', capabilities: ['work'], payload: 'fine' }).result();
    await expect(first.submit({ id: 'bad', type: 'work', capabilities: ['work'], payload: 'bad', metadata: { owner: 'me' } }).result()).rejects.toThrow();
    const historyBefore = { good: (await first.history('good')), bad: (await first.history('bad')) };
    const auditBefore = await wholeAudit(first);
    await first.shutdown({ graceful: true });

    const second = await make(sqlite());
    expect(second.getStats().recovered).toBe(0);
    expect(await second.history('good')).toEqual(historyBefore.good);
    expect(await second.history('bad')).toEqual(historyBefore.bad);
    expect(types(historyBefore.bad)).toEqual(['submitted', 'started', 'failed', 'dead-lettered']);
    expect(await wholeAudit(second)).toEqual(auditBefore);
    const dead = await second.deadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ taskId: 'bad', type: 'work', code: 'NON_RETRYABLE', attempts: 1 });
    expect(dead[0]!.error).toBeInstanceOf(Error);
    expect(dead[0]!.error.message).toBe('bad payload');
    expect(dead[0]!.spec).toMatchObject({ id: 'bad', payload: 'bad', metadata: { owner: 'me' } });

    // The dead letter can be requeued there, and the trail goes on from where it was.
    addAgent(second, (task) => `fixed ${String(task.payload)}`);
    const { result } = await (await second.requeueDeadLetter('bad')).result();
    expect(result).toBe('fixed bad');
    expect(types(await second.history('bad'))).toEqual(['submitted', 'started', 'failed', 'dead-lettered', 'submitted', 'requeued', 'started', 'completed']);
    expect((await second.history('bad'))[4]!.seq).toBeGreaterThan(auditBefore.at(-1)!.seq);
    await second.shutdown({ graceful: true });
    const third = await make(sqlite());
    expect(await third.deadLetters()).toEqual([]);
  });

  it('after a forced shutdown, a new orchestrator finishes the queued and running tasks', async () => {
    const first = await make(sqlite());
    const checkpointed = deferred();
    const bothRunning = deferred();
    let runningCount = 0;
    addAgent(
      first,
      async (task, ctx) => {
        if (task.id === 'run-cp') {
          await ctx.checkpoint({ half: true, done: [1, 2, 3] });
          checkpointed.resolve();
        }
        if (++runningCount === 2) bothRunning.resolve();
        // Held until the forced shutdown aborts it.
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        return 'from the first orchestrator';
      },
      2,
    );
    const ids = ['run-cp', 'run-plain', 'queued-1', 'queued-2'];
    const observables = ids.map((id) => first.submit({ id, type: 'work', capabilities: ['work'], payload: id, retry: { maxAttempts: 3 } }));
    await Promise.all([checkpointed.promise, bothRunning.promise]);
    expect(first.getStats().taskQueue.size).toBe(2);
    const idle = first.onIdle();
    await first.shutdown({ graceful: false });
    // In this process they end (cancelled), and nothing waits forever; the store keeps them unfinished.
    await idle;
    for (const observable of observables) {
      await expect(observable.result()).rejects.toBeInstanceOf(TaskCancelledError);
      expect(observable.state).toBe('cancelled');
    }

    const second = await make(sqlite());
    expect(second.getStats().recovered).toBe(4);
    const runs = new Map<string, { resumeState: unknown; attempt: number }>();
    // Registered after start(): recovered tasks wait for it.
    addAgent(second, (task, ctx) => {
      runs.set(task.id, { resumeState: ctx.resumeState, attempt: ctx.attempt });
      return `done ${task.id}`;
    });
    const completed = new Map<string, unknown>();
    second.on('task:completed', ({ taskId, result }) => completed.set(taskId, result));
    await second.onIdle();
    expect([...completed.keys()].sort()).toEqual([...ids].sort());
    expect(completed.get('queued-1')).toBe('done queued-1');
    expect(runs.get('run-cp')).toEqual({ resumeState: { half: true, done: [1, 2, 3] }, attempt: 2 });
    expect(runs.get('run-plain')).toEqual({ resumeState: undefined, attempt: 2 });
    expect(runs.get('queued-1')).toEqual({ resumeState: undefined, attempt: 1 });
    expect(runs.get('queued-2')).toEqual({ resumeState: undefined, attempt: 1 });

    const recovered = await second.audit({ type: 'recovered' });
    expect(recovered.map((e) => [e.taskId, e.details])).toEqual(
      expect.arrayContaining([
        ['run-cp', { previousStatus: 'running', resumeState: true }],
        ['run-plain', { previousStatus: 'running', resumeState: false }],
        ['queued-1', { previousStatus: 'queued', resumeState: false }],
        ['queued-2', { previousStatus: 'queued', resumeState: false }],
      ]),
    );
    expect(recovered).toHaveLength(4);
    // The forced shutdown did not end them: no terminal entry before the one of the second run.
    expect(types(await second.history('run-cp'))).toEqual(['submitted', 'started', 'checkpoint', 'recovered', 'started', 'completed']);
    expect(types(await second.history('queued-1'))).toEqual(['submitted', 'recovered', 'started', 'completed']);
    await second.shutdown({ graceful: true });

    // Nothing is left unfinished for a third start.
    const third = await make(sqlite());
    expect(third.getStats().recovered).toBe(0);
  });

  it('after a forced shutdown right after a start (its row not committed yet), the task is still recovered', async () => {
    const first = await make(sqlite());
    addAgent(first, (_task, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true })));
    const task = first.submit({ id: 't1', type: 'work', capabilities: ['work'] });
    const settled = task.result().catch((error: unknown) => error);
    await new Promise((resolve) => task.once('start', resolve));
    await first.shutdown({ graceful: false });
    expect(await settled).toBeInstanceOf(TaskCancelledError);
    const second = await make(sqlite());
    expect(second.getStats().recovered).toBe(1);
  });

  it('takes tasks submitted before start(), and flush() resolves once they are committed', async () => {
    const first = await make(sqlite(), {}, false);
    first.submit({ id: 'early', type: 'work', capabilities: ['work'], waitForAgent: true });
    await first.start();
    await first.flush();
    const reader = new Database(dbPath(), { readonly: true });
    try {
      expect(reader.prepare('SELECT id, status FROM tasks').all()).toEqual([{ id: 'early', status: 'queued' }]);
    } finally {
      reader.close();
    }
    addAgent(first, () => 'ran');
    await expect(first.observe('early')!.result()).resolves.toMatchObject({ result: 'ran' });
  });

  it('refuses at submit a payload or metadata JSON cannot store, naming the field', async () => {
    const o = await make(sqlite());
    addAgent(o, () => 'never');
    expect(() => o.submit({ type: 'work', capabilities: ['work'], payload: { size: 10n } })).toThrow(InvalidTaskError);
    expect(() => o.submit({ type: 'work', capabilities: ['work'], payload: { size: 10n } })).toThrow(/^payload of task work cannot be stored as JSON/);
    expect(() => o.submit({ type: 'work', capabilities: ['work'], metadata: { size: 10n } })).toThrow(/^metadata /);
    expect(o.getStats().totalSubmitted).toBe(0);
  });

  /** start() of a new orchestrator on the file must reject with a StoreError naming the path. */
  async function startFailure(): Promise<Error> {
    const o = await make(sqlite(), {}, false);
    const error = await o.start().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: 'STORE_ERROR', path: dbPath() });
    expect((error as Error).message).toContain(dbPath());
    return error as Error;
  }

  it('start() rejects with StoreError naming the path for a corrupt file', async () => {
    writeFileSync(dbPath(), randomBytes(8192));
    await startFailure();
  });

  it('start() rejects with StoreError naming the path for a file another connection holds locked', async () => {
    // A database an earlier orchestrator left, now held by another connection in an exclusive transaction.
    const earlier = await make(sqlite());
    await earlier.shutdown();
    const holder = new Database(dbPath());
    try {
      holder.exec('BEGIN EXCLUSIVE');
      expect((await startFailure()).message).toMatch(/lock/);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
  });
});
