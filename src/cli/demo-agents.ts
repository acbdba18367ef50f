import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { AgentRole, TaskPriority, type AgentSpec, type TaskContext, type TaskSpec } from '../index.js';

const gzipAsync = promisify(gzip);
type Ctx = TaskContext<{ progress: number }>;

/**
 * The seed's example: ten agents, one per role, doing real work (log tallies, gzip, validation,
 * a topological sort, statistics, a knapsack, an SLO check that fails every second call and is
 * retried, aggregation, a hash chain, a timeline merge), each streaming `progress` (0-100).
 * `pace` ms between progress steps makes the run slow enough to watch.
 */
export function demoAgents(pace: number): AgentSpec<never, unknown, never>[] {
  const step = async (ctx: Ctx, progress: number) => {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    ctx.progress({ progress });
    if (pace > 0) await sleep(pace, undefined, { signal: ctx.signal });
  };
  // Runs `work` over `items` in four chunks, reporting progress after each.
  const inChunks = async <T>(items: readonly T[], ctx: Ctx, work: (chunk: readonly T[]) => void | Promise<void>) => {
    const size = Math.ceil(items.length / 4);
    for (let i = 0; i < 4; i++) {
      await work(items.slice(i * size, (i + 1) * size));
      await step(ctx, (i + 1) * 25);
    }
  };
  const Reading = z.object({ id: z.number().int().nonnegative(), sensor: z.string().regex(/^s\d+$/), celsius: z.number().min(-50).max(150) });
  let monitorCalls = 0;

  const agents: [AgentRole, string, (payload: never, ctx: Ctx) => Promise<string>][] = [
    [AgentRole.OBSERVER, 'observe', async (lines: string[], ctx) => {
      const levels: Record<string, number> = {};
      await inChunks(lines, ctx, (chunk) => {
        for (const line of chunk) {
          const level = /\b(INFO|WARN|ERROR)\b/.exec(line)?.[1] ?? 'OTHER';
          levels[level] = (levels[level] ?? 0) + 1;
        }
      });
      return Object.entries(levels).map(([level, n]) => `${level}=${n}`).join(' ');
    }],
    [AgentRole.COMPRESSOR, 'compress', async (text: string, ctx) => {
      let bytes = 0;
      await inChunks([...Array(4).keys()], ctx, async ([i]) => {
        const quarter = Math.ceil(text.length / 4);
        bytes += (await gzipAsync(Buffer.from(text.slice(i! * quarter, (i! + 1) * quarter)))).length;
      });
      return `${text.length} B → ${bytes} B (${((bytes / text.length) * 100).toFixed(1)}%)`;
    }],
    [AgentRole.VALIDATOR, 'validate', async (records: unknown[], ctx) => {
      let invalid = 0;
      await inChunks(records, ctx, (chunk) => void (invalid += chunk.filter((r) => !Reading.safeParse(r).success).length));
      return `${records.length - invalid} valid, ${invalid} invalid`;
    }],
    [AgentRole.ORCHESTRATOR, 'plan', async (jobs: Record<string, string[]>, ctx) => {
      const order: string[] = [];
      const visit = (job: string, seen = new Set<string>()) => {
        if (order.includes(job)) return;
        if (seen.has(job)) throw new Error(`dependency cycle at ${job}`);
        seen.add(job);
        for (const dep of jobs[job] ?? []) visit(dep, seen);
        order.push(job);
      };
      await inChunks(Object.keys(jobs), ctx, (chunk) => chunk.forEach((job) => visit(job)));
      return order.join(' → ');
    }],
    [AgentRole.ANALYZER, 'analyze', async (sample: number[], ctx) => {
      const sorted = [...sample].sort((a, b) => a - b);
      let sum = 0;
      await inChunks(sorted, ctx, (chunk) => void (sum += chunk.reduce((a, b) => a + b, 0)));
      const mean = sum / sorted.length;
      const sd = Math.sqrt(sorted.reduce((acc, x) => acc + (x - mean) ** 2, 0) / sorted.length);
      return `n=${sorted.length} mean=${mean.toFixed(2)} sd=${sd.toFixed(2)} p50=${percentile(sorted, 50).toFixed(2)}`;
    }],
    [AgentRole.OPTIMIZER, 'optimize', async ({ items, capacity }: { items: { weight: number; value: number }[]; capacity: number }, ctx) => {
      const best = new Array<number>(capacity + 1).fill(0);
      await inChunks(items, ctx, (chunk) => {
        for (const { weight, value } of chunk) for (let c = capacity; c >= weight; c--) best[c] = Math.max(best[c]!, best[c - weight]! + value);
      });
      return `best value ${best[capacity]} of ${items.length} items within ${capacity}`;
    }],
    [AgentRole.MONITOR, 'monitor', async (latencies: number[], ctx) => {
      // Its probe fails every second call: the task is retried (and its breaker counts the failures).
      if (++monitorCalls % 2 === 0) throw new Error('health probe timed out');
      const sorted = [...latencies].sort((a, b) => a - b);
      await inChunks([0], ctx, () => undefined);
      const p95 = percentile(sorted, 95);
      return `p95 ${p95.toFixed(0)} ms: ${p95 <= 250 ? 'within' : 'over'} SLO`;
    }],
    [AgentRole.AGGREGATOR, 'aggregate', async (sales: { region: string; amount: number }[], ctx) => {
      const totals: Record<string, number> = {};
      await inChunks(sales, ctx, (chunk) => chunk.forEach(({ region, amount }) => void (totals[region] = (totals[region] ?? 0) + amount)));
      return Object.entries(totals).map(([region, total]) => `${region}=${total}`).join(' ');
    }],
    [AgentRole.EXECUTOR, 'execute', async ({ seed, rounds }: { seed: string; rounds: number }, ctx) => {
      let digest = seed;
      await inChunks([...Array(rounds).keys()], ctx, (chunk) => {
        for (let i = 0; i < chunk.length; i++) digest = createHash('sha256').update(digest).digest('hex');
      });
      return `${rounds} rounds → ${digest.slice(0, 12)}…`;
    }],
    [AgentRole.COORDINATOR, 'coordinate', async (docs: string[], ctx) => {
      const events: { source: string; at: number }[] = [];
      await inChunks(docs, ctx, (chunk) => chunk.forEach((doc) => events.push(...(JSON.parse(doc) as typeof events))));
      return events.sort((a, b) => a.at - b.at).map(({ source, at }) => `${source}@${at}`).join(' ');
    }],
  ];
  return agents.map(([role, capability, handler]) => ({
    agentId: role.split('-')[1]!,
    role,
    capabilities: [capability],
    maxConcurrent: 2,
    handler: (task: { payload: never }, ctx: TaskContext<never>) => handler(task.payload, ctx as unknown as Ctx),
  }));
}

const PRIORITIES: Record<string, TaskPriority> = {
  monitor: TaskPriority.CRITICAL, validate: TaskPriority.CRITICAL, observe: TaskPriority.HIGH, compress: TaskPriority.HIGH,
  analyze: TaskPriority.NORMAL, aggregate: TaskPriority.NORMAL, execute: TaskPriority.NORMAL,
  plan: TaskPriority.LOW, optimize: TaskPriority.LOW, coordinate: TaskPriority.BACKGROUND,
};

/** `rounds` tasks per role at all five priorities, with deterministic inputs (the same every run). */
export function demoTasks(rounds: number): TaskSpec[] {
  let seed = 42;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const inputs: Record<string, () => unknown> = {
    observe: () => Array.from({ length: 500 }, (_, i) => `${i} ${['INFO', 'INFO', 'WARN', 'ERROR'][Math.floor(random() * 4)]} request served`),
    compress: () => JSON.stringify(Array.from({ length: 4000 }, (_, i) => ({ id: i, status: random() < 0.9 ? 'ok' : 'retry' }))),
    validate: () => Array.from({ length: 1000 }, (_, i) => ({ id: i, sensor: random() < 0.97 ? `s${i % 9}` : 'bad', celsius: random() * 210 - 55 })),
    plan: () => ({ deploy: ['test', 'build'], test: ['build'], build: ['install'], install: [], docs: ['build'] }),
    analyze: () => Array.from({ length: 10_000 }, () => random() * 100),
    optimize: () => ({ capacity: 500, items: Array.from({ length: 60 }, () => ({ weight: 1 + Math.floor(random() * 50), value: Math.floor(random() * 100) })) }),
    monitor: () => Array.from({ length: 200 }, () => 50 + random() * 230),
    aggregate: () => Array.from({ length: 2000 }, () => ({ region: ['eu', 'us', 'apac'][Math.floor(random() * 3)], amount: Math.floor(random() * 100) })),
    execute: () => ({ seed: String(random()), rounds: 20_000 }),
    coordinate: () => ['ci', 'deploy', 'pager'].map((source) => JSON.stringify(Array.from({ length: 2 }, () => ({ source, at: Math.floor(random() * 100) })))),
  };
  const tasks: TaskSpec[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const [capability, input] of Object.entries(inputs)) {
      tasks.push({ id: `${capability}-${round}`, type: capability, priority: PRIORITIES[capability], capabilities: [capability], payload: input() });
    }
  }
  return tasks;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
