// Faults the model-based fuzzing (model.test.ts) found, one focused test each (each failed before
// its fix). Thread agents load the built package, so this file imports dist.
import { createHash } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { AgentRole, createParallelOrchestrator, type ParallelOrchestrator } from '../../dist/index.js';
import { DATABASE_URL, dropSchema, postgresAvailable, sql, uniqueSchema } from '../pg-helpers.js';
import { deferred, nextEvent } from '../helpers.js';
import { activeResources } from './model-harness.js';


/** Runs `body` with an orchestrator on a fresh PostgreSQL schema, dropped after (skipped loudly without PostgreSQL; CI=true fails instead). */
async function onPostgres(ctx: { skip(): void }, body: (o: ParallelOrchestrator, schema: string) => Promise<void>): Promise<void> {
  if (!(await postgresAvailable())) ctx.skip();
  const schema = uniqueSchema('po_reg');
  try {
    await body(createParallelOrchestrator({ store: { type: 'postgres', connectionString: DATABASE_URL, schema } }), schema);
  } finally {
    await dropSchema(schema);
  }
}

/** A transaction on another connection (to hold locks); `end()` rolls it back and closes it. */
async function transaction(): Promise<{ query: (text: string, values?: unknown[]) => Promise<unknown>; end: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  await client.query('begin');
  return {
    query: (text, values) => client.query(text, values),
    end: async () => {
      await client.query('rollback');
      await client.end();
    },
  };
}

/** Locks a task's row from another connection (its next write waits); resolves with the unlock. */
async function lockTaskRow(schema: string, taskId: string): Promise<() => Promise<void>> {
  const locker = await transaction();
  await locker.query(`select 1 from ${schema}.tasks where id = $1 for update`, [taskId]);
  return locker.end;
}

/** Resolves when attempt `attempt` of the task starts. */
const started = (o: ParallelOrchestrator, taskId: string, attempt = 1) => nextEvent(o, 'task:started', (event) => event.taskId === taskId && event.attempt === attempt);

/** Resolves once a statement of the schema like `pattern` waits for a lock (the server's view, polled). */
async function statementBlocked(pattern: string): Promise<void> {
  while ((await sql(`select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like $1`, [pattern])).length === 0);
}

/** Resolves once an outcome write (the settle statement) of the schema waits for a lock. */
const outcomeWriteBlocked = (schema: string) => statementBlocked(`%update ${schema}.tasks t set status = u.status%`);

describe('FIFO within a level when an agent registers between two submits', () => {
  it('starts the task submitted before the agent came first', async () => {
    const o = createParallelOrchestrator({ workerPool: { minWorkers: 1, maxWorkers: 1 } });
    await o.start();
    const order: string[] = [];
    o.on('task:started', ({ taskId }) => order.push(taskId));
    // t1 has no capable agent when submitted: its verdict waits for a microtask.
    const first = o.submit({ id: 't1', type: 'x', capabilities: ['a'] });
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: ['a'], maxConcurrent: 1, handler: () => 'ok' });
    const second = o.submit({ id: 't2', type: 'x', capabilities: ['a'] });
    await Promise.all([first.result(), second.result()]);
    await o.shutdown();
    expect(order).toEqual(['t1', 't2']);
  });
});

describe('shutdown() right after a thread agent registers', () => {
  it('leaves no thread of the module probe behind', async () => {
    const before = activeResources();
    const o = createParallelOrchestrator();
    await o.start();
    o.registerAgent({ agentId: 't', role: AgentRole.EXECUTOR, capabilities: ['t'], module: new URL('./model-thread.mjs', import.meta.url) });
    await o.shutdown({ graceful: false });
    expect(activeResources().get('MessagePort') ?? 0).toBeLessThanOrEqual(before.get('MessagePort') ?? 0);
  });
});

describe('PostgreSQL: a forced shutdown right after a submit no agent can serve yet', () => {
  it('leaves the task in the cluster, as its cancel reason says', (ctx) =>
    onPostgres(ctx, async (o, schema) => {
    await o.start();
    // No agent: the verdict waits for a fresh read of the node registry; shutdown comes first.
    const task = o.submit({ id: 'kept', type: 'x', capabilities: ['later'] });
    await o.shutdown({ graceful: false });
    await expect(task.result()).rejects.toMatchObject({ reason: 'the orchestrator shut down; the task stays with the cluster' });
    expect(await sql(`select id, status from ${schema}.tasks`)).toEqual([{ id: 'kept', status: 'queued' }]);
    }));
});

describe('PostgreSQL: a forced shutdown while a submitted task waits to be inserted', () => {
  it('cancels it here once, without failing it as a duplicate of its own row', (ctx) =>
    onPostgres(ctx, async (o, schema) => {
    const ends: string[] = [];
    for (const event of ['task:completed', 'task:failed', 'task:cancelled'] as const) o.on(event, ({ taskId }) => ends.push(`${event} ${taskId}`));
    await o.start();
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: ['a'], handler: () => 'ok' });
    const first = o.submitAsync({ id: 't1', type: 'x', capabilities: ['a'] });
    o.submit({ id: 't2', type: 'x', capabilities: ['a'] });
    await o.shutdown({ graceful: false });
    await first.then((task) => task.result()).catch(() => undefined);
    expect(ends.sort()).toEqual(['task:cancelled t1', 'task:cancelled t2']);
    expect(await sql(`select task_id, type from ${schema}.audit order by seq`)).toEqual([
      { task_id: 't1', type: 'submitted' },
      { task_id: 't2', type: 'submitted' },
    ]);
    expect(await sql(`select id, status from ${schema}.tasks order by id`)).toEqual([
      { id: 't1', status: 'queued' },
      { id: 't2', status: 'queued' },
    ]);
    }));
});

describe('FIFO within a level: a task no agent could serve, then one that waits for an agent', () => {
  it('starts the first submitted first once an agent registers', async () => {
    const o = createParallelOrchestrator({ workerPool: { minWorkers: 1, maxWorkers: 1 } });
    await o.start();
    const order: string[] = [];
    o.on('task:started', ({ taskId }) => order.push(taskId));
    const first = o.submit({ id: 't1', type: 'x', capabilities: ['a'] });
    const second = o.submit({ id: 't2', type: 'x', capabilities: ['a'], waitForAgent: true });
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: ['a'], maxConcurrent: 1, handler: () => 'ok' });
    await Promise.all([first.result(), second.result()]);
    await o.shutdown();
    expect(order).toEqual(['t1', 't2']);
  });
});

describe('PostgreSQL: cancel() right after submitAsync()', () => {
  it('cancels the task whose insert is in flight', (ctx) =>
    onPostgres(ctx, async (o, schema) => {
    const cancelled: string[] = [];
    o.on('task:cancelled', ({ taskId }) => cancelled.push(taskId));
    await o.start();
    // submitAsync() sends the insert at once; the cancel must not look for the row before it commits.
    const submitted = o.submitAsync({ id: 't1', type: 'x', capabilities: ['a'], waitForAgent: true });
    const result = await o.cancel('t1');
    await submitted;
    await o.shutdown();
    expect(result).toBe(true);
    expect(cancelled).toEqual(['t1']);
    expect(await sql(`select id, status from ${schema}.tasks`)).toEqual([{ id: 't1', status: 'cancelled' }]);
    }));
});

describe('PostgreSQL: cancel() of a task waiting in the table', () => {
  it('counts it in getStats().totalCancelled, as its task:cancelled event', (ctx) =>
    onPostgres(ctx, async (o) => {
    const cancelled: string[] = [];
    o.on('task:cancelled', ({ taskId }) => cancelled.push(taskId));
    await o.start();
    // Committed in the table, no agent: cancelled there, not by a run here.
    await o.submitAsync({ id: 't1', type: 'x', capabilities: ['a'], waitForAgent: true });
    expect(await o.cancel('t1')).toBe(true);
    await o.shutdown();
    expect(cancelled).toEqual(['t1']);
    expect(o.getStats().totalCancelled).toBe(1);
    }));
});

describe('PostgreSQL: a late "queued again" notice about a task whose outcome is being written', () => {
  it('does not reopen the task: its result still arrives', (ctx) =>
    onPostgres(ctx, async (o, schema) => {
      const listenerErrors: unknown[] = [];
      o.on('listener:error', ({ error }) => listenerErrors.push(error));
      await o.start();
      let finish!: () => void;
      const gate = new Promise<void>((resolve) => (finish = resolve));
      const running = Promise.all([started(o, 't1'), started(o, 't2')]);
      o.registerAgent({
        agentId: 'a',
        role: AgentRole.EXECUTOR,
        capabilities: ['a'],
        maxConcurrent: 2,
        handler: async (task, run) => {
          if (task.id === 't1') await gate;
          else await new Promise((resolve) => run.signal.addEventListener('abort', resolve, { once: true }));
          return 'ok';
        },
      });
      const t1 = await o.submitAsync({ id: 't1', type: 'x', capabilities: ['a'] });
      const t2 = await o.submitAsync({ id: 't2', type: 'x', capabilities: ['a'] });
      const result = t1.result();
      await running;
      // t1's outcome write waits behind a lock on its row.
      const unlock = await lockTaskRow(schema, 't1');
      try {
        finish();
        await outcomeWriteBlocked(schema);
        // A reaper's notice that t1 was queued again, then a cancel of t2 whose event says the notice was read.
        const channel = `po_${createHash('sha1').update(schema).digest('hex').slice(0, 10)}_n_${o.nodeId}`;
        const t2Cancelled = new Promise((resolve) => t2.once('cancelled', resolve));
        await sql('select pg_notify($1, $2)', [channel, JSON.stringify([{ k: 'q', i: 't1', t: 1 }])]);
        await sql('select pg_notify($1, $2)', [channel, JSON.stringify([{ k: 'x', i: 't2', m: 'probe' }])]);
        await t2Cancelled;
        expect(o.getTask('t1')?.status).toBe('completed');
      } finally {
        await unlock();
      }
      await expect(result).resolves.toMatchObject({ result: 'ok' });
      await o.shutdown();
      expect(listenerErrors).toEqual([]);
    }));
});

describe('PostgreSQL: a last attempt that timed out, while its failure is being written', () => {
  it('is not in getStats().totalTimeouts before its task:failed event', (ctx) =>
    onPostgres(ctx, async (o, schema) => {
      const failed: string[] = [];
      o.on('task:failed', ({ taskId, status }) => failed.push(`${taskId} ${status}`));
      await o.start();
      o.registerAgent({
        agentId: 'a',
        role: AgentRole.EXECUTOR,
        capabilities: ['a'],
        handler: (_task, run) => new Promise((resolve) => run.signal.addEventListener('abort', resolve, { once: true })),
      });
      const task = await o.submitAsync({ id: 't1', type: 'x', capabilities: ['a'], timeout: 500, retry: { maxAttempts: 1 } });
      const outcome = task.result().catch((error: unknown) => error);
      await started(o, 't1');
      const unlock = await lockTaskRow(schema, 't1');
      try {
        await outcomeWriteBlocked(schema);
        expect(failed).toEqual([]);
        expect(o.getStats().totalTimeouts).toBe(0);
      } finally {
        await unlock();
      }
      await expect(outcome).resolves.toMatchObject({ code: 'TASK_TIMEOUT' });
      expect(failed).toEqual(['t1 timeout']);
      expect(o.getStats().totalTimeouts).toBe(1);
      await o.shutdown();
    }));
});

describe('PostgreSQL: a forced shutdown while a claim is in flight', () => {
  it('hands the claimed task back before the store closes', (ctx) =>
    onPostgres(ctx, async (o, schema) => {
      const storeErrors: string[] = [];
      o.on('store:error', ({ error }) => storeErrors.push(error.message));
      await o.start();
      await o.submitAsync({ id: 't1', type: 'x', capabilities: ['a'], waitForAgent: true });
      // The claim the agent's registration starts waits behind a lock on the whole table.
      const locker = await transaction();
      let shutdown: Promise<void>;
      try {
        await locker.query(`lock table ${schema}.tasks in access exclusive mode`);
        o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: ['a'], handler: () => 'ok' });
        await statementBlocked(`%update ${schema}.tasks t set status = 'running'%`);
        shutdown = o.shutdown({ graceful: false });
        // A close that does not wait for the claim ends the node's LISTEN connection meanwhile; one
        // that waits keeps it until the claim is answered, so the wait for that is bounded (1 s).
        const listening = `listen "%_n_${o.nodeId}"`;
        for (const until = Date.now() + 1_000; Date.now() < until; ) {
          if ((await sql('select 1 from pg_stat_activity where query like $1', [listening])).length === 0) break;
        }
      } finally {
        await locker.end();
      }
      await shutdown;
      expect(storeErrors).toEqual([]);
      expect(await sql(`select id, status, owner from ${schema}.tasks`)).toEqual([{ id: 't1', status: 'queued', owner: null }]);
    }));
});

describe('a handler that throws an Error whose code or message getter throws', () => {
  it('fails the task with a readable error, without an unhandled rejection', async () => {
    class UnreadableCode extends Error {
      get code(): string {
        throw new Error('code getter');
      }
    }
    class UnreadableMessage extends Error {
      constructor() {
        super('x');
        Object.defineProperty(this, 'message', {
          get() {
            throw new Error('message getter');
          },
        });
      }
    }
    const o = createParallelOrchestrator({ taskQueue: { retry: { maxAttempts: 1 } } });
    await o.start();
    const kinds = { UnreadableCode, UnreadableMessage };
    o.registerAgent({
      agentId: 'a',
      role: AgentRole.EXECUTOR,
      capabilities: ['a'],
      handler: (task) => {
        throw new kinds[task.payload as keyof typeof kinds]();
      },
    });
    for (const kind of Object.keys(kinds)) {
      const error = await o.submit({ type: kind, capabilities: ['a'], payload: kind }).result().catch((thrown: unknown) => thrown);
      expect(error).toMatchObject({ message: 'an error was thrown whose message, name, code or retryable cannot be read' });
      expect((error as Error).cause).toBeInstanceOf(kinds[kind as keyof typeof kinds]);
    }
    await o.shutdown();
  });
});

describe('PostgreSQL: the outcomes of two claims of one task in one write (its lease expired while the first was waiting to be written)', () => {
  it("records the current claim's outcome once, and settles the task's observable with it", (ctx) =>
    onPostgres(ctx, async (o, schema) => {
      const listenerErrors: unknown[] = [];
      const completed: string[] = [];
      o.on('listener:error', ({ error }) => listenerErrors.push(error));
      o.on('task:completed', ({ taskId, result }) => completed.push(`${taskId} ${String(result)}`));
      await o.start();
      const gates = { t0: deferred(), t1: deferred() };
      o.registerAgent({
        agentId: 'a',
        role: AgentRole.EXECUTOR,
        capabilities: ['a'],
        maxConcurrent: 2,
        handler: async (task, run) => {
          if (run.attempt === 1) await gates[task.id as keyof typeof gates].promise;
          return run.attempt;
        },
      });
      const bothStarted = Promise.all([started(o, 't0'), started(o, 't1')]);
      await o.submitAsync({ id: 't0', type: 'x', capabilities: ['a'] });
      const t1 = await o.submitAsync({ id: 't1', type: 'x', capabilities: ['a'] });
      const result = t1.result();
      await bothStarted;
      const endedHere = async (taskId: string) => {
        while (o.getTask(taskId)?.status !== 'completed') await new Promise((resolve) => setImmediate(resolve));
      };
      // t0's outcome write waits behind a lock on its row; what ends meanwhile waits for the next write.
      const unlock = await lockTaskRow(schema, 't0');
      try {
        gates.t0.resolve();
        await outcomeWriteBlocked(schema);
        gates.t1.resolve();
        await endedHere('t1');
        // t1's lease expires and the task is queued again (as the reaper does); this node claims it again.
        const secondStart = started(o, 't1', 2);
        await sql(`update ${schema}.tasks set status = 'queued', owner = null, claim_token = null, lease_until = null, run_at = 0 where id = 't1'`);
        await sql('select pg_notify($1, $2)', [`po_${createHash('sha1').update(schema).digest('hex').slice(0, 10)}_work`, '2']);
        await secondStart;
        await endedHere('t1');
      } finally {
        await unlock();
      }
      await expect(result).resolves.toMatchObject({ result: 2, attempts: 2 });
      await o.flush();
      expect(completed.filter((entry) => entry.startsWith('t1'))).toEqual(['t1 2']);
      expect(await sql(`select count(*)::int as n from ${schema}.audit where task_id = 't1' and type = 'completed'`)).toEqual([{ n: 1 }]);
      expect(listenerErrors).toEqual([]);
      await o.shutdown();
    }));
});

describe('an agent registered again while a run of its previous registration goes on', () => {
  it("counts that run against the id's maxConcurrent until it ends", async () => {
    const o = createParallelOrchestrator();
    await o.start();
    const order: string[] = [];
    o.on('task:started', ({ taskId }) => order.push(`started ${taskId}`));
    o.on('task:completed', ({ taskId }) => order.push(`completed ${taskId}`));
    const first = deferred();
    const spec = { agentId: 'a', role: AgentRole.EXECUTOR, capabilities: ['a'], maxConcurrent: 1 } as const;
    o.registerAgent({ ...spec, handler: () => first.promise.then(() => 'first') });
    const t1 = o.submit({ id: 't1', type: 'x', capabilities: ['a'] });
    await started(o, 't1');
    o.unregisterAgent('a');
    o.registerAgent({ ...spec, handler: () => 'second' });
    const t2 = o.submit({ id: 't2', type: 'x', capabilities: ['a'] });
    // t2 may not start while t1 holds the id's one slot.
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['started t1']);
    first.resolve();
    await Promise.all([t1.result(), t2.result()]);
    expect(order).toEqual(['started t1', 'completed t1', 'started t2', 'completed t2']);
    expect(o.getAgent('a')?.active).toBe(0);
    await o.shutdown();
  });
});

describe('PostgreSQL: an outcome write that deadlocks with another transaction', () => {
  it('is written again, without a store error or a second run', (ctx) =>
    onPostgres(ctx, async (o, schema) => {
      const storeErrors: string[] = [];
      o.on('store:error', ({ error }) => storeErrors.push(error.message));
      await o.start();
      const gates = { tb: deferred(), t0: deferred(), t1: deferred() };
      o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: ['a'], maxConcurrent: 3, handler: (task) => gates[task.id as keyof typeof gates].promise.then(() => task.id) });
      const running = Promise.all(Object.keys(gates).map((id) => started(o, id)));
      const tasks = await Promise.all(Object.keys(gates).map((id) => o.submitAsync({ id, type: 'x', capabilities: ['a'] })));
      const results = Promise.all(tasks.map((task) => task.result()));
      await running;
      const other = await transaction();
      try {
        // tb's write goes first and waits; t0's and t1's outcomes queue behind it, in one write.
        const unlockBlocker = await lockTaskRow(schema, 'tb');
        gates.tb.resolve();
        await outcomeWriteBlocked(schema);
        gates.t0.resolve();
        await new Promise((resolve) => setImmediate(resolve));
        gates.t1.resolve();
        await new Promise((resolve) => setImmediate(resolve));
        await other.query(`select 1 from ${schema}.tasks where id = 't1' for update`);
        await unlockBlocker();
        // The write of t0 and t1 locks t0, then waits for t1; this transaction then waits for t0: a deadlock, which the server breaks by failing the write.
        await outcomeWriteBlocked(schema);
        await other.query(`update ${schema}.tasks set updated_at = updated_at where id = 't0'`);
      } finally {
        await other.end();
      }
      expect((await results).map((end) => [end.taskId, end.attempts])).toEqual([['tb', 1], ['t0', 1], ['t1', 1]]);
      await o.flush();
      expect(storeErrors).toEqual([]);
      await o.shutdown();
    }));
});
