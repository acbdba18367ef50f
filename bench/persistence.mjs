// Persistence: (1) no-op throughput with the SQLite store against the memory store, timed from
// the first submit until every write is committed (shutdown), with the CPU time of the main
// thread and of the busiest other thread (the SQLite writer) where /proc tells it: on a machine
// shared with other work, wall time mostly measures the neighbours, CPU time per thread does not;
// (2) the cost of automatic checkpointing with 1,000 tasks running at once, each streaming
// progress, on the SQLite store.
//
//   node bench/persistence.mjs                prints the results as JSON (bench/run.mjs runs it so)
//   BENCH_TASKS=50000 node bench/persistence.mjs
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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

/** CPU ms per thread of this process (Linux), by thread id; null where /proc is missing. */
function threadCpu() {
  if (!existsSync('/proc/self/task')) return null;
  const out = new Map();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime and stime, in clock ticks of 10 ms.
      out.set(tid, (Number(fields[11]) + Number(fields[12])) * 10);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

/** CPU ms of the main thread and of the busiest other thread between two readings. */
function cpuSpent(before, after) {
  if (before === null || after === null) return null;
  const spent = [...after].map(([tid, ms]) => [tid, ms - (before.get(tid) ?? 0)]);
  const main = spent.find(([tid]) => tid === String(process.pid))?.[1] ?? 0;
  const others = spent.filter(([tid]) => tid !== String(process.pid)).map(([, ms]) => ms);
  return { main, busiestOther: Math.max(0, ...others) };
}

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
  const cpuBefore = threadCpu();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) orchestrator.submit({ type: 'noop', priority: pr[i], capabilities: CAPABILITIES });
  await orchestrator.onIdle();
  const completed = orchestrator.getStats().totalCompleted;
  // Read before shutdown() ends the writer thread (its /proc entry goes with it).
  const cpuIdle = threadCpu();
  await orchestrator.shutdown();
  const ms = performance.now() - t0;
  const cpuAfter = threadCpu();
  if (completed !== n) throw new Error(`completed ${completed} of ${n}`);
  const cpu = cpuSpent(cpuBefore, cpuAfter === null ? null : new Map([...cpuIdle, ...cpuAfter]));
  return { ms, cpu };
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
    const throughput = Object.fromEntries(stores.map((c) => [c.key, { label: c.label, tasksPerSec: [], mainCpuUsPerTask: [], otherCpuUsPerTask: [] }]));
    for (let r = 0; r < runs; r++) {
      for (const contender of rotate(stores, r)) {
        await tick();
        const { ms, cpu } = await runNoop(contender.store(), pr, tasks);
        const entry = throughput[contender.key];
        entry.tasksPerSec.push(tasks / (ms / 1000));
        if (cpu !== null) {
          entry.mainCpuUsPerTask.push((cpu.main * 1000) / tasks);
          entry.otherCpuUsPerTask.push((cpu.busiestOther * 1000) / tasks);
        }
        log(`persistence ${r + 1}/${runs}: ${contender.key} ${Math.round(tasks / (ms / 1000))} tasks/s${cpu === null ? '' : `, CPU µs/task main ${((cpu.main * 1000) / tasks).toFixed(2)}, busiest other thread ${((cpu.busiestOther * 1000) / tasks).toFixed(2)}`}`);
      }
    }
    for (const entry of Object.values(throughput)) {
      entry.median = median(entry.tasksPerSec);
      entry.mainCpuMedian = median(entry.mainCpuUsPerTask);
      entry.otherCpuMedian = median(entry.otherCpuUsPerTask);
    }

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
      ratios: {
        sqliteOverMemory: throughput.sqlite.median / throughput.memory.median,
        // Were every thread on a core of its own: the busiest thread bounds the time per task.
        sqliteOverMemoryByCpu:
          Math.max(throughput.memory.mainCpuMedian, throughput.memory.otherCpuMedian) /
          Math.max(throughput.sqlite.mainCpuMedian, throughput.sqlite.otherCpuMedian),
      },
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
