// Preemption: how long a CRITICAL task waits for a slot when every agent is busy with long
// BACKGROUND work, with and without preemption.
//
// 2 agents (one slot each) and a backlog of 1 s BACKGROUND tasks that checkpoint every 10 ms and
// give way when their signal aborts; CRITICAL tasks (1 ms of work) arrive every 50 ms. Measured:
// submit-to-start of the CRITICAL tasks (their `start` event), p50/p99/max, with the BACKGROUND
// tasks submitted `preemptible: true` and then `false`. Without preemption a CRITICAL task waits
// for the remaining run time of a BACKGROUND one; with it, for the preempted handler to give way.
//
//   node bench/preemption.mjs        prints the results as JSON (bench/run.mjs runs it so)
//   BENCH_PREEMPT_CRITICAL=40 node bench/preemption.mjs
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentRole, TaskPriority, createParallelOrchestrator } from 'parallel-orchestrator';
import { envInt, isMain, percentile } from './common.mjs';

const CRITICAL = envInt('BENCH_PREEMPT_CRITICAL', 100);
const GAP_MS = 50;
const BACKGROUND_MS = 1_000;
const STEP_MS = 10;

async function run(preemptible) {
  const o = createParallelOrchestrator({ workerPool: { minWorkers: 2, maxWorkers: 2 } });
  await o.start();
  const handler = async (task, ctx) => {
    if (task.type === 'critical') {
      await sleep(1);
      return 'done';
    }
    for (let step = ctx.resumeState?.step ?? 0; step < BACKGROUND_MS / STEP_MS; step++) {
      await sleep(STEP_MS);
      if (ctx.signal.aborted) throw ctx.signal.reason;
      await ctx.checkpoint({ step: step + 1 });
    }
    return 'done';
  };
  for (const agentId of ['a', 'b']) o.registerAgent({ agentId, role: AgentRole.EXECUTOR, capabilities: ['work'], maxConcurrent: 1, handler });
  // A backlog that keeps both agents busy for the whole run.
  const backlog = Math.ceil((CRITICAL * GAP_MS) / BACKGROUND_MS) * 2 + 4;
  const background = Array.from({ length: backlog }, () => o.submit({ type: 'background', priority: TaskPriority.BACKGROUND, capabilities: ['work'], preemptible }));
  await sleep(20);
  const waits = [];
  const critical = [];
  for (let i = 0; i < CRITICAL; i++) {
    const submittedAt = performance.now();
    const task = o.submit({ type: 'critical', priority: TaskPriority.CRITICAL, capabilities: ['work'] });
    task.once('start', () => waits.push(performance.now() - submittedAt));
    critical.push(task.result());
    await sleep(GAP_MS);
  }
  await Promise.all(critical);
  const stats = o.getStats();
  for (const task of background) await o.cancel(task.taskId);
  await o.shutdown({ graceful: false });
  return { p50: percentile(waits, 0.5), p99: percentile(waits, 0.99), max: Math.max(...waits), preemptions: stats.totalPreemptions };
}

export async function preemption() {
  const withPreemption = await run(true);
  const without = await run(false);
  return {
    critical: CRITICAL,
    gapMs: GAP_MS,
    backgroundMs: BACKGROUND_MS,
    checkpointEveryMs: STEP_MS,
    results: { withPreemption, without },
    goals: { p99WithPreemptionMs: 20 },
  };
}

if (isMain(import.meta.url)) console.log(JSON.stringify(await preemption(), null, 2));
