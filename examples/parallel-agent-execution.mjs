// Main demo (`npm start`): the ten agent roles doing real work in parallel.
// In your project import from 'parallel-orchestrator'; here the built dist/.
import { createHash } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { z } from 'zod';
import { createParallelOrchestrator, AgentRole, TaskPriority } from '../dist/index.js';

const gzipAsync = promisify(gzip);
const PRIORITY_NAMES = Object.fromEntries(Object.entries(TaskPriority).map(([name, value]) => [value, name]));

// Deterministic inputs, so every run prints the same results.
let seed = 42;
const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);

const orchestrator = createParallelOrchestrator({
  workerPool: { minWorkers: 2, maxWorkers: 4, assignmentStrategy: 'least-busy' },
  taskQueue: { maxSize: 1000, defaultPriority: TaskPriority.NORMAL, retry: { maxAttempts: 4, initialDelay: 20 } },
  circuitBreaker: { failureThreshold: 3, successThreshold: 1, resetTimeout: 200 },
});
await orchestrator.start();

const Reading = z.object({ id: z.number().int().nonnegative(), sensor: z.string().regex(/^s\d+$/), celsius: z.number().min(-50).max(150) });
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

let monitorCalls = 0;
const agents = [
  // α₁: tallies log lines by level.
  [AgentRole.OBSERVER, ['observe'], async ({ payload }) => {
    const levels = {};
    for (const line of payload) {
      const level = /\b(INFO|WARN|ERROR)\b/.exec(line)?.[1] ?? 'OTHER';
      levels[level] = (levels[level] ?? 0) + 1;
    }
    return Object.entries(levels).map(([level, n]) => `${level}=${n}`).join(' ');
  }],
  // α₂: gzips the payload chunk by chunk, streaming its progress.
  [AgentRole.COMPRESSOR, ['compress'], async ({ payload }, ctx) => {
    const chunks = [];
    for (let i = 0; i < payload.length; i += payload.length / 4) {
      chunks.push(await gzipAsync(Buffer.from(payload.slice(i, i + payload.length / 4))));
      ctx.progress({ percent: Math.round(((i + payload.length / 4) / payload.length) * 100) });
    }
    const bytes = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    return `${payload.length} B → ${bytes} B (${((bytes / payload.length) * 100).toFixed(1)}%)`;
  }],
  // α₃: validates records against a zod schema.
  [AgentRole.VALIDATOR, ['validate'], async ({ payload }) => {
    const invalid = payload.filter((record) => !Reading.safeParse(record).success).length;
    return `${payload.length - invalid} valid, ${invalid} invalid`;
  }],
  // α₄: orders jobs by their dependencies (topological sort).
  [AgentRole.ORCHESTRATOR, ['plan'], async ({ payload }) => {
    const order = [];
    const visit = (job, seen = new Set()) => {
      if (order.includes(job)) return;
      if (seen.has(job)) throw new Error(`dependency cycle at ${job}`);
      seen.add(job);
      for (const dep of payload[job] ?? []) visit(dep, seen);
      order.push(job);
    };
    for (const job of Object.keys(payload)) visit(job);
    return order.join(' → ');
  }],
  // α₅: summary statistics of a sample.
  [AgentRole.ANALYZER, ['analyze'], async ({ payload }) => {
    const sorted = [...payload].sort((a, b) => a - b);
    const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
    const sd = Math.sqrt(sorted.reduce((acc, x) => acc + (x - mean) ** 2, 0) / sorted.length);
    return `n=${sorted.length} mean=${mean.toFixed(2)} sd=${sd.toFixed(2)} p50=${percentile(sorted, 50).toFixed(2)} p99=${percentile(sorted, 99).toFixed(2)}`;
  }],
  // α₆: best value within a weight budget (0/1 knapsack).
  [AgentRole.OPTIMIZER, ['optimize'], async ({ payload: { items, capacity } }) => {
    const best = new Array(capacity + 1).fill(0);
    for (const { weight, value } of items) for (let c = capacity; c >= weight; c--) best[c] = Math.max(best[c], best[c - weight] + value);
    return `best value ${best[capacity]} of ${items.length} items within ${capacity}`;
  }],
  // α₇: checks latency samples against an SLO; its probe fails every second call (and is retried).
  [AgentRole.MONITOR, ['monitor'], async ({ payload }) => {
    if (++monitorCalls % 2 === 0) throw new Error('health probe timed out');
    const sorted = [...payload].sort((a, b) => a - b);
    return `p95 ${percentile(sorted, 95).toFixed(0)} ms: ${percentile(sorted, 95) <= 250 ? 'within' : 'over'} SLO`;
  }],
  // α₈: sums amounts per region.
  [AgentRole.AGGREGATOR, ['aggregate'], async ({ payload }) => {
    const totals = {};
    for (const { region, amount } of payload) totals[region] = (totals[region] ?? 0) + amount;
    return Object.entries(totals).map(([region, total]) => `${region}=${total}`).join(' ');
  }],
  // α₉: a sha256 hash chain.
  [AgentRole.EXECUTOR, ['execute'], async ({ payload }, ctx) => {
    let digest = payload.seed;
    for (let i = 1; i <= payload.rounds; i++) {
      digest = createHash('sha256').update(digest).digest('hex');
      if (i % (payload.rounds / 2) === 0) ctx.progress({ percent: (i / payload.rounds) * 100 });
    }
    return `${payload.rounds} rounds → ${digest.slice(0, 12)}…`;
  }],
  // α₁₀: parses JSON events from several sources and aligns them on one timeline.
  [AgentRole.COORDINATOR, ['coordinate'], async ({ payload }) => {
    const events = payload.flatMap((doc) => JSON.parse(doc)).sort((a, b) => a.at - b.at);
    return events.map(({ source, at }) => `${source}@${at}`).join(' ');
  }],
];
for (const [role, capabilities, handler] of agents) {
  orchestrator.registerAgent({ agentId: role.split('-')[1], role, capabilities, maxConcurrent: 2, handler });
}

// Three tasks per role, at all five priorities.
const inputs = {
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
const priorities = {
  monitor: TaskPriority.CRITICAL, validate: TaskPriority.CRITICAL, observe: TaskPriority.HIGH, compress: TaskPriority.HIGH,
  analyze: TaskPriority.NORMAL, aggregate: TaskPriority.NORMAL, execute: TaskPriority.NORMAL,
  plan: TaskPriority.LOW, optimize: TaskPriority.LOW, coordinate: TaskPriority.BACKGROUND,
};

orchestrator.on('task:retry', ({ taskId, attempt, error }) => console.log(`  ↻ ${taskId} retry (attempt ${attempt}): ${error.message}`));

// Completions print as they happen: higher priorities first, the queue permitting.
orchestrator.on('task:completed', ({ taskId, type, agentId, attempts, result }) => {
  const retried = attempts > 1 ? ` [${attempts} attempts]` : '';
  console.log(`✓ ${taskId.padEnd(12)} ${PRIORITY_NAMES[priorities[type]].padEnd(10)} ${agentId.padEnd(12)} ${result}${retried}`);
});

const tasks = [];
for (let round = 1; round <= 3; round++) {
  for (const [capability, input] of Object.entries(inputs)) {
    const task = orchestrator.submit({ id: `${capability}-${round}`, type: capability, priority: priorities[capability], capabilities: [capability], payload: input() });
    // Stream the progress of the first compress and execute tasks.
    if (round === 1 && (capability === 'compress' || capability === 'execute')) {
      task.on('delta', ({ data, metadata }) => console.log(`  … ${task.taskId} ${data.percent}% (update ${metadata.sequence} from ${metadata.agentId})`));
    }
    tasks.push(task.result());
  }
}
await Promise.all(tasks);

const stats = orchestrator.getStats();
console.log('\nfinal stats');
console.log(`  uptime: ${stats.uptime.toFixed(0)} ms`);
console.log(`  totalSubmitted: ${stats.totalSubmitted}, totalCompleted: ${stats.totalCompleted}, totalFailed: ${stats.totalFailed}, retries: ${stats.totalRetries}`);
console.log(`  successRate: ${(stats.successRate * 100).toFixed(1)}%`);
const { currentWorkers, minWorkers, maxWorkers, peakWorkers, tasksRun } = stats.workerPool;
console.log(`  workerPool: ${JSON.stringify({ currentWorkers, minWorkers, maxWorkers, peakWorkers, tasksRun })}`);
const { size, retrying, byPriority, deadLetters } = stats.taskQueue;
console.log(`  taskQueue: ${JSON.stringify({ size, retrying, byPriority, deadLetters })}`);
const { agents: agentCount, routingDecisions, agentStats } = stats.agentRouter;
console.log(`  agentRouter: ${agentCount} agents, ${routingDecisions} routing decisions`);
console.log(`  completed per agent: ${agentStats.map(({ agentId, completed, failed }) => `${agentId} ${completed}${failed ? ` (${failed} failed)` : ''}`).join(', ')}`);
await orchestrator.shutdown({ graceful: true });
