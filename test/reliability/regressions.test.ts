// Faults the model-based fuzzing (model.test.ts) found, one focused test each (each failed before
// its fix). Thread agents load the built package, so this file imports dist.
import { describe, expect, it } from 'vitest';
import { AgentRole, createParallelOrchestrator, type ParallelOrchestrator } from '../../dist/index.js';
import { DATABASE_URL, dropSchema, postgresAvailable, sql, uniqueSchema } from '../pg-helpers.js';
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
