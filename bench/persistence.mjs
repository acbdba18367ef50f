// Persistence: (1) no-op throughput with the SQLite store against the memory store, timed from
// the first submit until every write is committed (shutdown); (2) the cost of automatic
// checkpointing with 1,000 tasks running at once, each streaming progress, on the SQLite store.
//
//   node bench/persistence.mjs                prints the results as JSON (bench/run.mjs runs it so)
//   BENCH_TASKS=50000 node bench/persistence.mjs
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentRole, createParallelOrchestrator } from 'parallel-orchestrator';
import { AGENTS, CONCURRENCY } from './throughput.mjs';
import { envInt, isMain, median, priorities, rotate, tick } from './common.mjs';

const CAPABILITIES = Object.freeze(['work']);
const noop = async () => 1;
const dir = mkdtempSync(join(tmpdir(), 'po-bench-'));
let files = 0;
const freshDb = () => join(dir, `bench-${files++}.db`);

async function started(options) {
  const orchestrator = createParallelOrchestrator({ ...options, workerPool: { minWorkers: CONCURRENCY, maxWorkers: CONCURRENCY } });
  await orchestrator.start();
  return orchestrator;
}

/** N no-op tasks as in the throughput benchmark; the time includes committing every write. */
async function runNoop(store, pr, n) {
  const orchestrator = await started({ store });
  for (let a = 0; a < AGENTS; a++) {
    orchestrator.registerAgent({ agentId: `agent-${a}`, role: AgentRole.EXECUTOR, capabilities: CAPABILITIES, maxConcurrent: CONCURRENCY, handler: noop });
  }
  const t0 = performance.now();
  for (let i = 0; i < n; i++) orchestrator.submit({ type: 'noop', priority: pr[i], capabilities: CAPABILITIES });
  await orchestrator.onIdle();
  const completed = orchestrator.getStats().totalCompleted;
  await orchestrator.shutdown();
  const ms = performance.now() - t0;
  if (completed !== n) throw new Error(`completed ${completed} of ${n}`);
  return ms;
}

/** 1,000 tasks at once, each hashing and streaming progress `steps` times; automatic checkpoints on or off. */
async function runCheckpointing(checkpointing, tasks, steps) {
  const orchestrator = createParallelOrchestrator({
    store: { type: 'sqlite', path: freshDb() },
    checkpointing,
    workerPool: { minWorkers: tasks, maxWorkers: tasks },
  });
  await orchestrator.start();
  orchestrator.registerAgent({
    agentId: 'worker',
    role: AgentRole.EXECUTOR,
    capabilities: CAPABILITIES,
    maxConcurrent: tasks,
    handler: async (task, ctx) => {
      let digest = String(task.payload);
      for (let step = 1; step <= steps; step++) {
        for (let k = 0; k < 20; k++) digest = createHash('sha256').update(digest).digest('hex');
        ctx.progress({ step, of: steps, digest });
        await tick();
      }
      return digest;
    },
  });
  const t0 = performance.now();
  const results = [];
  for (let t = 0; t < tasks; t++) results.push(orchestrator.submit({ type: 'hash', capabilities: CAPABILITIES, payload: t }).result());
  await Promise.all(results);
  const checkpoints = orchestrator.getStats().checkpoints;
  await orchestrator.shutdown();
  return { ms: performance.now() - t0, checkpoints };
}

export async function persistence({
  tasks = envInt('BENCH_TASKS', 200_000),
  runs = envInt('BENCH_RUNS', 3),
  checkpointTasks = envInt('BENCH_CHECKPOINT_TASKS', 1_000),
  checkpointSteps = envInt('BENCH_CHECKPOINT_STEPS', 200),
  checkpointInterval = envInt('BENCH_CHECKPOINT_INTERVAL', 1000),
  log = () => {},
} = {}) {
  try {
    const pr = priorities(tasks);
    const stores = [
      { key: 'memory', label: 'memory store', store: () => ({ type: 'memory' }) },
      { key: 'sqlite', label: 'SQLite store (WAL, synchronous normal, batched commits)', store: () => ({ type: 'sqlite', path: freshDb() }) },
    ];
    for (const contender of stores) await runNoop(contender.store(), pr, Math.min(tasks, 20_000));
    const throughput = Object.fromEntries(stores.map((c) => [c.key, { label: c.label, tasksPerSec: [] }]));
    for (let r = 0; r < runs; r++) {
      for (const contender of rotate(stores, r)) {
        await tick();
        const ms = await runNoop(contender.store(), pr, tasks);
        throughput[contender.key].tasksPerSec.push(tasks / (ms / 1000));
        log(`persistence ${r + 1}/${runs}: ${contender.key} ${Math.round(tasks / (ms / 1000))} tasks/s`);
      }
    }
    for (const entry of Object.values(throughput)) entry.median = median(entry.tasksPerSec);

    const variants = [
      { key: 'off', checkpointing: { enabled: false } },
      { key: 'on', checkpointing: { enabled: true, interval: checkpointInterval } },
    ];
    const checkpointing = Object.fromEntries(variants.map((v) => [v.key, { ms: [], checkpoints: [] }]));
    for (let r = 0; r < runs; r++) {
      for (const variant of rotate(variants, r)) {
        const { ms, checkpoints } = await runCheckpointing(variant.checkpointing, checkpointTasks, checkpointSteps);
        checkpointing[variant.key].ms.push(ms);
        checkpointing[variant.key].checkpoints.push(checkpoints);
        log(`checkpointing ${r + 1}/${runs}: ${variant.key} ${ms.toFixed(0)} ms, ${checkpoints} checkpoints`);
      }
    }
    for (const entry of Object.values(checkpointing)) entry.medianMs = median(entry.ms);
    return {
      tasks,
      runs,
      throughput,
      ratios: { sqliteOverMemory: throughput.sqlite.median / throughput.memory.median },
      checkpointing: {
        tasks: checkpointTasks,
        steps: checkpointSteps,
        interval: checkpointInterval,
        ...checkpointing,
        overhead: checkpointing.on.medianMs / checkpointing.off.medianMs - 1,
        // What one checkpoint costs, to scale the overhead to other intervals and task counts.
        microsPerCheckpoint: ((checkpointing.on.medianMs - checkpointing.off.medianMs) * 1000) / median(checkpointing.on.checkpoints),
      },
      goals: { sqliteOverMemory: 0.3, checkpointingOverhead: 0.05 },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  const result = await persistence({ log: (line) => console.error(line) });
  console.log(JSON.stringify(result));
}
