// A cluster of real processes on one PostgreSQL schema: nodes killed with SIGKILL, frozen with
// SIGSTOP, cut off from the server; cancel, priority and progress across nodes.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TaskPriority, createParallelOrchestrator, type ParallelOrchestrator, type StoreOptions } from '../dist/index.js';
import { DATABASE_URL, dropSchema, postgresAvailable, sql, uniqueSchema } from './pg-helpers.js';

const available = await postgresAvailable();
const NODE = fileURLToPath(new URL('./fixtures/cluster-node.mjs', import.meta.url));

interface Line {
  node: string;
  t: number;
  e: string;
  id?: string;
  attempt?: number;
  resumed?: { step: number } | null;
  nodeId?: string;
  reason?: string;
  priority?: number;
}

/** A node process and everything it printed. */
class NodeProcess {
  readonly lines: Line[] = [];
  readonly child: ChildProcess;
  readonly #waiters: { match: (line: Line) => boolean; resolve: (line: Line) => void }[] = [];
  readonly exited: Promise<void>;
  nodeId = '';

  constructor(name: string, schema: string, env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [NODE], {
      env: { ...process.env, DATABASE_URL, SCHEMA: schema, NODE: name, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    createInterface({ input: this.child.stdout! }).on('line', (text) => {
      const line = JSON.parse(text) as Line;
      this.lines.push(line);
      for (const waiter of [...this.#waiters]) {
        if (!waiter.match(line)) continue;
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    });
  }

  async ready(): Promise<this> {
    this.nodeId = (await this.next((line) => line.e === 'ready')).nodeId!;
    return this;
  }

  /** The first line (printed already or later) that `match` accepts. */
  next(match: (line: Line) => boolean): Promise<Line> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

describe.skipIf(!available)('a cluster of processes on one PostgreSQL schema', () => {
  let schema = '';
  let store: StoreOptions;
  const nodes: NodeProcess[] = [];
  const orchestrators: ParallelOrchestrator[] = [];

  const spawnNode = async (name: string, env: Record<string, string> = {}) => {
    const node = new NodeProcess(name, schema, env);
    nodes.push(node);
    return node.ready();
  };
  const producer = async (options: Record<string, unknown> = {}) => {
    const o = createParallelOrchestrator({ store, ...options });
    orchestrators.push(o);
    await o.start();
    return o;
  };

  beforeAll(() => {
    schema = uniqueSchema('po_cluster');
  });
  afterEach(async () => {
    await Promise.all(orchestrators.splice(0).map((o) => o.shutdown({ graceful: false })));
    for (const node of nodes.splice(0)) {
      node.kill('SIGCONT');
      node.kill('SIGKILL');
      await node.exited;
    }
    await dropSchema(schema);
    schema = uniqueSchema('po_cluster');
    store = { type: 'postgres', connectionString: DATABASE_URL, schema, leaseMs: 1_000, pollIntervalMs: 200 };
  });
  afterAll(() => dropSchema(schema));
  beforeAll(() => {
    store = { type: 'postgres', connectionString: DATABASE_URL, schema, leaseMs: 1_000, pollIntervalMs: 200 };
  });

  it('three nodes finish 5,000 tasks of mixed priority and capability exactly once each, one of them killed mid-run', async () => {
    const agents = JSON.stringify([['a', 'b'], ['a']]);
    const [, victim] = await Promise.all([spawnNode('n1', { AGENTS: agents }), spawnNode('n2', { AGENTS: agents }), spawnNode('n3', { AGENTS: agents })]);
    const o = await producer();
    const capabilities = [[], ['a'], ['b'], ['a', 'b']];
    const tasks = Array.from({ length: 5_000 }, (_, i) =>
      o.submit({ type: 'work', priority: (i % 5) as TaskPriority, capabilities: capabilities[i % 4], payload: { steps: 3, stepMs: 2 } }),
    );
    // Kill a node once it is in the middle of things: it has started tasks it has not finished.
    await victim!.next((line) => line.e === 'start' && victim!.lines.filter((l) => l.e === 'start').length > 200);
    victim!.kill('SIGKILL');
    const results = await Promise.all(tasks.map((task) => task.result()));
    expect(results).toHaveLength(5_000);
    expect(results.every((r) => r.result !== undefined)).toBe(true);

    const statuses = await sql<{ status: string; count: string }>(`select status, count(*) from ${schema}.tasks group by status`);
    expect(statuses).toEqual([{ status: 'completed', count: '5000' }]);
    const completions = await sql<{ n: string }>(`select count(*) as n from ${schema}.audit where type = 'completed' group by task_id having count(*) <> 1`);
    expect(completions).toEqual([]);
    const held = await sql(`select id from ${schema}.tasks where owner = $1`, [victim!.nodeId]);
    expect(held).toEqual([]);
    // Tasks the killed node had started went on elsewhere from their last checkpoint.
    const survivors = nodes.filter((node) => node !== victim);
    const resumed = survivors.flatMap((node) => node.lines).filter((line) => line.e === 'start' && (line.attempt ?? 0) > 1 && line.resumed !== null);
    expect(resumed.length).toBeGreaterThan(0);
  });

  it('fences off the late results of a node frozen past its lease', async () => {
    const frozen = await spawnNode('frozen', { LEASE_MS: '600' });
    const o = await producer({ store: { ...store, leaseMs: 600 } });
    const task = o.submit({ type: 'long', capabilities: ['a'], payload: { steps: 10, stepMs: 100 } });
    await frozen.next((line) => line.e === 'start' && line.id === task.taskId);
    frozen.kill('SIGSTOP');
    const rescuer = await spawnNode('rescuer', { LEASE_MS: '600' });
    const { result } = await task.result();
    expect(result).toMatchObject({ node: 'rescuer' });
    frozen.kill('SIGCONT');
    const lost = await frozen.next((line) => line.e === 'claim-lost' && line.id === task.taskId);
    expect(lost.reason).toMatch(/taken over/);
    expect(rescuer.lines.some((line) => line.e === 'end' && line.id === task.taskId)).toBe(true);
    const [row] = await sql<{ status: string; result: { node: string } }>(`select status, result from ${schema}.tasks where id = $1`, [task.taskId]);
    expect(row).toEqual({ status: 'completed', result: { node: 'rescuer', id: task.taskId } });
    const completed = await sql(`select 1 from ${schema}.audit where type = 'completed' and task_id = $1`, [task.taskId]);
    expect(completed).toHaveLength(1);
  });

  it('carries on when the server terminates its connections, losing nothing and never running a task twice at once', async () => {
    const node = await spawnNode('cut', { CONCURRENCY: '4' });
    const o = await producer();
    const tasks = Array.from({ length: 300 }, () => o.submit({ type: 'work', capabilities: ['a'], payload: { steps: 2, stepMs: 5 } }));
    await node.next((line) => line.e === 'end' && node.lines.filter((l) => l.e === 'end').length > 30);
    const killed = await sql<{ n: string }>(`select count(pg_terminate_backend(pid)) as n from pg_stat_activity where application_name like $1`, [`parallel-orchestrator ${node.nodeId}%`]);
    expect(Number(killed[0]!.n)).toBeGreaterThan(0);
    const results = await Promise.all(tasks.map((task) => task.result()));
    expect(results).toHaveLength(300);
    // Runs of one task never overlap in time.
    const runs = new Map<string, { start: number; end: number }[]>();
    const open = new Map<string, number>();
    for (const line of node.lines) {
      if (line.e === 'start') open.set(`${line.id}/${line.attempt}`, line.t);
      if (line.e === 'end' || line.e === 'aborted') {
        const start = open.get(`${line.id}/${line.attempt}`);
        if (start !== undefined) (runs.get(line.id!) ?? runs.set(line.id!, []).get(line.id!)!).push({ start, end: line.t });
      }
    }
    for (const [, spans] of runs) {
      spans.sort((a, b) => a.start - b.start);
      for (let i = 1; i < spans.length; i++) expect(spans[i]!.start).toBeGreaterThanOrEqual(spans[i - 1]!.end);
    }
  });

  it('cancels a task running on another node, and a queued one at once', async () => {
    const node = await spawnNode('runner');
    const o = await producer();
    const running = o.submit({ type: 'long', capabilities: ['a'], payload: { steps: 100, stepMs: 20 } });
    await new Promise<void>((resolve) => running.once('start', () => resolve()));
    expect(await o.cancel(running.taskId, 'no longer needed')).toBe(true);
    const cancelled = await new Promise<{ reason: string }>((resolve) => running.once('cancelled', resolve));
    expect(cancelled.reason).toMatch(/no longer needed/);
    await node.next((line) => line.e === 'aborted' && line.id === running.taskId);
    const queued = o.submit({ type: 'never', capabilities: ['nobody-has-this'], waitForAgent: true });
    await o.flush();
    expect(await o.cancel(queued.taskId)).toBe(true);
    expect(queued.state).toBe('cancelled');
    const rows = await sql<{ id: string; status: string }>(`select id, status from ${schema}.tasks order by id`);
    expect(rows.map((row) => row.status)).toEqual(['cancelled', 'cancelled']);
  });

  it('runs a CRITICAL task submitted behind a backlog of LOW ones before almost all of them', async () => {
    const node = await spawnNode('busy', { CONCURRENCY: '1', AGENTS: JSON.stringify([['a']]), PREFETCH: '4' });
    const o = await producer();
    const low = Array.from({ length: 40 }, () => o.submit({ type: 'low', priority: TaskPriority.LOW, capabilities: ['a'], payload: { steps: 1, stepMs: 10 } }));
    await node.next((line) => line.e === 'start');
    const critical = o.submit({ type: 'critical', priority: TaskPriority.CRITICAL, capabilities: ['a'], payload: { steps: 1, stepMs: 1 } });
    await critical.result();
    await Promise.all(low.map((task) => task.result()));
    const starts = node.lines.filter((line) => line.e === 'start').map((line) => line.id);
    // At most the ones prefetched or running when it arrived start before it.
    expect(starts.indexOf(critical.taskId)).toBeLessThan(7);
  });

  it('streams progress from the node that runs a task to the producer that submitted it, and to an observer on a third', async () => {
    await spawnNode('worker');
    const o = await producer();
    const observer = await producer();
    const task = o.submit({ type: 'steps', capabilities: ['a'], payload: { steps: 5, stepMs: 30 } });
    await o.flush();
    const watched = observer.observe(task.taskId)!;
    const seen: number[] = [];
    const observed: number[] = [];
    task.on('delta', (event) => seen.push((event.data as { progress: number }).progress));
    watched.on('delta', (event) => observed.push((event.data as { progress: number }).progress));
    const [{ result }, end] = await Promise.all([task.result(), watched.result()]);
    expect(result).toMatchObject({ node: 'worker' });
    expect(end.result).toEqual(result);
    expect(seen).toEqual([20, 40, 60, 80, 100]);
    expect(observed.at(-1)).toBe(100);
  });
});
