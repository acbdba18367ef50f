// The PostgreSQL backend through several orchestrators in one process: migration, registry,
// capability checks, commits, hand-back at shutdown, retries and dead letters across nodes.
import { createHash } from 'node:crypto';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AgentRole,
  InvalidOptionsError,
  TaskPriority,
  NoCapableAgentError,
  OrchestratorShutdownError,
  StoreError,
  createParallelOrchestrator,
  type OrchestratorOptions,
  type ParallelOrchestrator,
  type StoreOptions,
} from '../dist/index.js';
import { deferred, lanesHeap, nextEvent, settle } from './helpers.js';
import { DATABASE_URL, dropSchema, postgresAvailable, sql, uniqueSchema } from './pg-helpers.js';

const available = await postgresAvailable();

describe.skipIf(!available)('the PostgreSQL store', () => {
  let schema = '';
  let store: StoreOptions;
  const live: ParallelOrchestrator[] = [];
  const node = async (options: OrchestratorOptions = {}, start = true) => {
    const o = createParallelOrchestrator({ ...options, store: { ...store, ...(options.store as object) } as StoreOptions });
    live.push(o);
    if (start) await o.start();
    return o;
  };
  /** Registers an agent and waits until the registry shows it to the other nodes. */
  const agent = async (o: ParallelOrchestrator, agentId: string, capabilities: string[], handler: (task: { payload: unknown; attempt: number }) => unknown, maxConcurrent = 4) => {
    o.registerAgent({ agentId, role: AgentRole.EXECUTOR, capabilities, maxConcurrent, handler: async (task) => handler(task) });
    await o.flush();
  };

  beforeEach(() => {
    schema = uniqueSchema('po_pg');
    store = { type: 'postgres', connectionString: DATABASE_URL, schema, leaseMs: 1_000, pollIntervalMs: 200 };
  });
  afterEach(async () => {
    await Promise.all(live.splice(0).map((o) => o.shutdown({ graceful: false })));
    await dropSchema(schema);
  });

  it('migrates once when ten nodes start at once on a new schema', async () => {
    const nodes = await Promise.all(Array.from({ length: 10 }, () => node()));
    expect(new Set(nodes.map((o) => o.nodeId)).size).toBe(10);
    expect(await sql(`select version from ${schema}.schema_version`)).toEqual([{ version: 1 }]);
    const registered = await sql<{ n: string }>(`select count(*) as n from ${schema}.nodes`);
    expect(registered).toEqual([{ n: '10' }]);
  });

  it('refuses a schema name that is not a plain identifier, and a schema of a newer version', async () => {
    expect(() => createParallelOrchestrator({ store: { ...store, schema: 'x; drop table y' } as StoreOptions })).toThrow(InvalidOptionsError);
    const first = await node();
    await first.shutdown();
    await sql(`update ${schema}.schema_version set version = 99`);
    const later = await node({}, false);
    const started = await settle(later.start());
    expect(started.ok ? null : started.error).toBeInstanceOf(StoreError);
    expect((started as { error: Error }).error.message).toMatch(/version 99.*newer version/);
  });

  it('releases its connections and leaves the registry when shut down while start() connects', async () => {
    const o = await node({}, false);
    let startSettled = false;
    const starting = settle(o.start()).finally(() => (startSettled = true));
    await o.shutdown();
    // Nothing of the opening outlives shutdown(): it resolves once the store gave back what it opened.
    expect(startSettled).toBe(true);
    const started = await starting;
    expect(started.ok ? null : started.error).toBeInstanceOf(OrchestratorShutdownError);
    // Connections end asynchronously on the server: their backends are gone once pg_stat_activity says so.
    const connections = async () => sql(`select pid from pg_stat_activity where application_name like $1`, [`%${o.nodeId}%`]);
    for (let tries = 0; (await connections()).length > 0 && tries < 50; tries++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await connections()).toEqual([]);
    expect(await sql(`select id from ${schema}.nodes where id = $1`, [o.nodeId])).toEqual([]);
  });

  it('checks capabilities against the agents of every live node', async () => {
    const producer = await node();
    const worker = await node();
    await agent(worker, 'w', ['remote'], (task) => task.payload);
    const served = producer.submit({ type: 't', capabilities: ['remote'], payload: 7 });
    expect((await served.result()).result).toBe(7);
    const refused = await settle(producer.submit({ type: 't', capabilities: ['nowhere'] }).result());
    expect(refused.ok ? null : refused.error).toBeInstanceOf(NoCapableAgentError);
  });

  it('resolves submitAsync once the row is committed', async () => {
    const producer = await node();
    const task = await producer.submitAsync({ type: 't', waitForAgent: true });
    expect(await sql(`select status from ${schema}.tasks where id = $1`, [task.taskId])).toEqual([{ status: 'queued' }]);
  });

  it('hands back the tasks it claimed but did not start when it shuts down gracefully, and leaves the registry', async () => {
    const gate = deferred();
    const first = await node();
    await agent(first, 'slow', ['s'], async () => gate.promise, 1);
    const producer = await node();
    const tasks = Array.from({ length: 20 }, () => producer.submit({ type: 's', capabilities: ['s'] }));
    await new Promise<void>((resolve) => tasks[0]!.once('start', () => resolve()));
    const stopping = first.shutdown({ graceful: true, timeout: 10_000 });
    const second = await node();
    await agent(second, 'fast', ['s'], () => 'second', 8);
    gate.resolve();
    await stopping;
    const results = await Promise.all(tasks.map((task) => task.result()));
    expect(results.filter((r) => r.agentId === 'fast').length).toBeGreaterThanOrEqual(18);
    expect(await sql(`select id from ${schema}.nodes where id = $1`, [first.nodeId])).toEqual([]);
    const statuses = await sql<{ status: string; n: string }>(`select status, count(*) as n from ${schema}.tasks group by status`);
    expect(statuses).toEqual([{ status: 'completed', n: '20' }]);
  });

  it('retries a failed attempt with backoff, on whichever node claims it, with the retry seen by the submitter', async () => {
    const producer = await node();
    const worker = await node();
    await agent(worker, 'flaky', ['f'], (task) => {
      if (task.attempt === 1) throw new Error('transient');
      return `ok on attempt ${task.attempt}`;
    });
    const task = producer.submit({ type: 'f', capabilities: ['f'], retry: { maxAttempts: 3, initialDelay: 50, jitter: 0 } });
    const retried = new Promise<{ attempt: number; delay: number }>((resolve) => task.once('retry', resolve));
    expect(await retried).toMatchObject({ attempt: 2, delay: 50 });
    expect((await task.result()).result).toBe('ok on attempt 2');
    const types = (await producer.history(task.taskId)).map((entry) => entry.type);
    // The producer's 'submitted' entry commits on its own node, and on a loaded machine after the
    // worker's first entries: the trail is in commit order.
    expect(types.filter((type) => type !== 'submitted')).toEqual(['started', 'retried', 'started', 'completed']);
    expect(types.filter((type) => type === 'submitted')).toEqual(['submitted']);
  });

  it('dead-letters a task whose attempts ran out, and any node can requeue it', async () => {
    const producer = await node();
    const worker = await node();
    let failing = true;
    await agent(worker, 'w', ['d'], () => {
      if (failing) throw new Error('down');
      return 'fine';
    });
    const task = producer.submit({ type: 'd', capabilities: ['d'], retry: { maxAttempts: 1 } });
    await settle(task.result());
    const letters = await worker.deadLetters();
    expect(letters.map((letter) => [letter.taskId, letter.error.message, letter.attempts])).toEqual([[task.taskId, 'down', 1]]);
    failing = false;
    const again = await worker.requeueDeadLetter(task.taskId);
    expect((await again.result()).result).toBe('fine');
    expect(await producer.deadLetters()).toEqual([]);
  });

  it('carries a progress state too large for a notification to the submitter', async () => {
    const producer = await node();
    const worker = await node();
    const big = { rows: Array.from({ length: 2_000 }, (_, i) => `row ${i}`) };
    const release = deferred();
    worker.registerAgent({
      agentId: 'big',
      role: AgentRole.EXECUTOR,
      capabilities: ['b'],
      handler: async (_task, ctx) => {
        ctx.progress(big);
        // Still running when the submitter gets the update: it is not read back from the finished row.
        await release.promise;
        return 'done';
      },
    });
    await worker.flush();
    const task = producer.submit({ type: 'b', capabilities: ['b'] });
    const delta = await new Promise<{ data: unknown }>((resolve) => task.once('delta', resolve));
    release.resolve();
    expect(delta.data).toEqual(big);
    await task.result();
  });

  it('tells the submitter on another node of a preemption, as in one process, and of the agent that runs and ran its task', async () => {
    const producer = await node();
    const worker = await node();
    worker.registerAgent({
      agentId: 'solo',
      role: AgentRole.EXECUTOR,
      capabilities: ['p'],
      maxConcurrent: 1,
      handler: async (task, ctx) => {
        if (task.type === 'urgent' || ctx.resumeState !== undefined) return `${task.type} done`;
        await ctx.checkpoint({ half: true });
        // Holds the only slot until a more urgent task takes it.
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        throw ctx.signal.reason;
      },
    });
    await worker.flush();
    const background = producer.submit({ type: 'background', priority: TaskPriority.BACKGROUND, capabilities: ['p'], preemptible: true });
    await new Promise((resolve) => background.once('start', resolve));
    expect(producer.getTask(background.taskId)).toMatchObject({ status: 'running', agentId: 'solo' });
    const preempted = new Promise((resolve) => background.once('preempted', resolve));
    const announced = nextEvent(producer, 'task:preempted');
    const urgent = producer.submit({ type: 'urgent', priority: TaskPriority.CRITICAL, capabilities: ['p'] });
    expect(await preempted).toMatchObject({ type: 'preempted', taskId: background.taskId, by: urgent.taskId, agentId: 'solo', preemptions: 1 });
    expect(await announced).toEqual({ taskId: background.taskId, by: urgent.taskId, agentId: 'solo' });
    expect((await background.result()).result).toBe('background done');
    expect(producer.getTask(background.taskId)).toMatchObject({ status: 'completed', attempt: 1, agentId: 'solo' });
    expect(producer.getTask(urgent.taskId)).toMatchObject({ status: 'completed', agentId: 'solo' });
    expect(await producer.findTask(background.taskId)).toMatchObject({ agentId: 'solo', result: 'background done' });
    expect((await producer.listTasks({ type: 'background' })).map((task) => task.agentId)).toEqual(['solo']);
    // A node that neither submitted nor watched the task reads the agent from its row.
    const third = await node();
    expect(await third.findTask(background.taskId)).toMatchObject({ status: 'completed', agentId: 'solo' });
  });

  it('settles the observable of a task submitted on the node whose claim was taken over, with the outcome recorded', async () => {
    const o = await node();
    let runs = 0;
    o.registerAgent({
      agentId: 'a',
      role: AgentRole.EXECUTOR,
      capabilities: ['l'],
      handler: async (_task, ctx) => {
        if (++runs > 1) return 'second run';
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        throw ctx.signal.reason;
      },
    });
    await o.flush();
    const task = o.submit({ type: 'l', capabilities: ['l'] });
    await new Promise((resolve) => task.once('start', resolve));
    const lost = nextEvent(o, 'task:claim-lost');
    // As a reaper does once the lease expired (the node froze): the claim is gone, the task queued again.
    await sql(`update ${schema}.tasks set status = 'queued', owner = null, claim_token = null, lease_until = null where id = $1`, [task.taskId]);
    expect((await lost).taskId).toBe(task.taskId);
    expect((await task.result()).result).toBe('second run');
    expect(o.getTask(task.taskId)).toMatchObject({ status: 'completed', agentId: 'a' });
  });

  it('settles the observable of a task submitted on a node whose outcome was refused, with the outcome of the node that took over', async () => {
    const o = await node();
    const gate = deferred();
    await agent(o, 'a', ['r'], async () => {
      await gate.promise;
      return 'refused';
    });
    const task = o.submit({ type: 'r', capabilities: ['r'] });
    await new Promise((resolve) => task.once('start', resolve));
    const lost = nextEvent(o, 'task:claim-lost');
    // Another node took the claim over (this one froze past its lease)…
    await sql(`update ${schema}.tasks set owner = 'elsewhere', claim_token = claim_token + 1000 where id = $1`, [task.taskId]);
    gate.resolve();
    expect((await lost).taskId).toBe(task.taskId);
    // …and records its outcome: the one the submitter sees.
    await sql(`update ${schema}.tasks set status = 'completed', result = '"taken over"', owner = null, claim_token = null, agent_id = 'b' where id = $1`, [task.taskId]);
    expect((await task.result()).result).toBe('taken over');
    expect(o.getTask(task.taskId)).toMatchObject({ status: 'completed', agentId: 'b' });
  });

  it('sends one heartbeat at a time: a heartbeat the server is slow to answer does not pile copies of itself onto the pool', async () => {
    // Overlapping heartbeats of one node took every pooled connection (claims and outcomes then
    // waited for a connection) and deadlocked with each other on the node's task rows.
    const worker = await node({ store: { leaseMs: 150 } as StoreOptions });
    const blocker = new pg.Client({ connectionString: DATABASE_URL });
    await blocker.connect();
    const heartbeats = () =>
      sql<{ n: number }>(`select count(*)::int as n from pg_stat_activity where application_name = $1 and state = 'active' and query like '%heartbeat_at%'`, [
        `parallel-orchestrator ${worker.nodeId}`,
      ]);
    try {
      await blocker.query('begin');
      await blocker.query(`select 1 from ${schema}.nodes where id = $1 for update`, [worker.nodeId]);
      // Ten heartbeat intervals (lease / 3) with the node's registry row locked: each heartbeat sent waits on it.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await heartbeats()).toEqual([{ n: 1 }]);
    } finally {
      await blocker.query('rollback');
      await blocker.end();
    }
    await agent(worker, 'quick', ['q'], () => 7);
    expect((await worker.submit({ type: 'q', capabilities: ['q'] }).result()).result).toBe(7);
  });

  it('tells a submitter that has left the registry nothing about its tasks, and one still there everything', async () => {
    const worker = await node();
    const gone = await node();
    const present = await node();
    // Node messages go to a channel per node (see PgBackend.nodeChannel): listen on both submitters' channels.
    const prefix = `po_${createHash('sha1').update(schema).digest('hex').slice(0, 10)}`;
    const listener = new pg.Client({ connectionString: DATABASE_URL });
    await listener.connect();
    const heard = new Map<string, number>();
    listener.on('notification', (n) => heard.set(n.channel, (heard.get(n.channel) ?? 0) + 1));
    try {
      for (const o of [gone, present]) await listener.query(`listen "${prefix}_n_${o.nodeId}"`);
      const left = gone.submit({ type: 'q', capabilities: ['q'], waitForAgent: true });
      const stayed = present.submit({ type: 'q', capabilities: ['q'], waitForAgent: true });
      await Promise.all([gone.flush(), present.flush()]);
      await gone.shutdown();
      const completed = new Set<string>();
      const bothDone = new Promise<void>((resolve) =>
        worker.on('task:completed', ({ taskId }) => {
          completed.add(taskId);
          if (completed.has(left.taskId) && completed.has(stayed.taskId)) resolve();
        }),
      );
      await agent(worker, 'quick', ['q'], () => 1);
      await bothDone;
      // Committed with the outcomes, and delivered to the listener before the answer to its next query.
      await worker.flush();
      await listener.query('select 1');
      expect(heard.get(`${prefix}_n_${gone.nodeId}`)).toBeUndefined();
      expect(heard.get(`${prefix}_n_${present.nodeId}`)).toBeGreaterThan(0);
      expect((await stayed.result()).result).toBe(1);
    } finally {
      await listener.end();
    }
  });

  it('records each outcome once while heartbeats extend leases of tasks whose outcome is still being written', async () => {
    // With a short lease the heartbeat often sees the lease of a task that already ended here but
    // whose outcome was not committed yet; that lease must not be handed back over the outcome.
    const worker = await node({ store: { leaseMs: 150 } as StoreOptions });
    await agent(worker, 'quick', ['q'], () => 1, 10);
    const tasks = Array.from({ length: 3_000 }, () => worker.submit({ type: 'q', capabilities: ['q'] }));
    await Promise.all(tasks.map((task) => task.result()));
    await worker.flush();
    const twice = await sql(`select task_id, count(*)::int as n from ${schema}.audit where type = 'completed' group by task_id having count(*) > 1`);
    expect(twice).toEqual([]);
    // (A lease that a loaded machine lets expire re-runs its task legitimately: attempts may exceed 1.)
    const unfinished = await sql(`select id, status from ${schema}.tasks where status <> 'completed'`);
    expect(unfinished).toEqual([]);
  });

  it('reports a failed automatic checkpoint write as store:error (a failure of the store, not of a listener)', async () => {
    const o = await node({ checkpointing: { enabled: true, interval: 5 } });
    const listenerErrors: unknown[] = [];
    o.on('listener:error', (event) => listenerErrors.push(event));
    const storeError = new Promise<Error>((resolve) => {
      const off = o.on('store:error', ({ error }) => {
        off();
        resolve(error);
      });
    });
    // Every checkpoint write now fails; claims still read the table, so the task itself runs.
    await sql(`alter table ${schema}.checkpoints add constraint refuse_writes check (false) not valid`);
    const release = deferred();
    o.registerAgent({
      agentId: 'streamer',
      role: AgentRole.EXECUTOR,
      capabilities: ['s'],
      handler: async (_task, ctx) => {
        ctx.progress({ step: 1 });
        await release.promise;
        return 'done';
      },
    });
    const task = o.submit({ type: 's', capabilities: ['s'] });
    const error = await storeError;
    release.resolve();
    expect(error).toBeInstanceOf(StoreError);
    expect(error.message).toMatch(/refuse_writes/);
    expect((await task.result()).result).toBe('done');
    expect(listenerErrors).toEqual([]);
  });

  it('drops the lane and signature of a capability set no agent serves once its last task ends', async () => {
    const run = await lanesHeap('adaptive', 'unserved', store);
    expect(run.endings).toEqual(['TaskCancelledError']);
    // Before the fix each set stayed: ~1,000 bytes.
    expect(run.perSet).toBeLessThan(200);
    expect(run.refused).toBe('NoCapableAgentError');
    expect(run.served.result).toBe('served');
  });
});
