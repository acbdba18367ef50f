// Resilience overhead: the no-op throughput benchmark of bench/throughput.mjs (ours only: 10
// agents, concurrency 10, random priorities, all submitted at once, drained) with per-agent
// circuit breakers and rate limits on, against both off. The rate limit never throttles, so
// the difference is the bookkeeping alone. Runs alternate on/off (the order flips every round)
// so drift on a shared machine hits both alike.
//
//   node bench/resilience.mjs     prints the results as JSON (bench/run.mjs runs it so)
//   BENCH_RESILIENCE_RUNS=3 BENCH_TASKS=50000 node bench/resilience.mjs
//
// One run differs from the next by up to ±15% (where garbage collection falls), more than the
// effect measured, hence 20 rounds by default.
import { envInt, isMain, median, priorities, rotate, tick } from './common.mjs';
import { AGENTS, CONCURRENCY, runOurs } from './throughput.mjs';

/** Far more starts per second than the benchmark reaches: a bucket that never runs dry. */
export const NEVER_THROTTLES = Object.freeze({ max: 1e9, perMs: 1000 });

export const MODES = [
  {
    key: 'on',
    label: 'on: breakers (default) + every agent `rateLimit: { max: 1e9, perMs: 1000 }`',
    setup: { agent: { rateLimit: NEVER_THROTTLES } },
  },
  {
    key: 'off',
    label: 'off: `circuitBreaker: { enabled: false }`, no `rateLimit`',
    setup: { options: { circuitBreaker: { enabled: false } } },
  },
];

/**
 * `runs` rounds of one run per mode, after one warm-up run per mode. Overhead = 1 − on/off of
 * the medians; also the median over rounds of 1 − on/off within the round, which cancels drift
 * slower than a round.
 */
export async function resilience({
  tasks = envInt('BENCH_TASKS', 200_000),
  runs = envInt('BENCH_RESILIENCE_RUNS', 20),
  warmupTasks = envInt('BENCH_WARMUP_TASKS', 50_000),
  log = () => {},
} = {}) {
  const pr = priorities(tasks);
  for (const mode of MODES) {
    await tick();
    await runOurs(pr, Math.min(warmupTasks, tasks), mode.setup);
  }
  log(`resilience: warm-up done (${warmupTasks} tasks each)`);

  const results = Object.fromEntries(MODES.map((m) => [m.key, { label: m.label, tasksPerSec: [], totalMs: [] }]));
  for (let r = 0; r < runs; r++) {
    for (const mode of rotate(MODES, r)) {
      await tick();
      const { totalMs } = await runOurs(pr, tasks, mode.setup);
      results[mode.key].tasksPerSec.push(tasks / (totalMs / 1000));
      results[mode.key].totalMs.push(totalMs);
      log(`resilience ${r + 1}/${runs}: ${mode.key} ${Math.round(tasks / (totalMs / 1000))} tasks/s (total ${totalMs.toFixed(0)} ms)`);
    }
  }
  for (const entry of Object.values(results)) {
    entry.median = median(entry.tasksPerSec);
    entry.totalMsMedian = median(entry.totalMs);
  }
  const paired = results.on.tasksPerSec.map((on, r) => 1 - on / results.off.tasksPerSec[r]);
  return {
    tasks,
    runs,
    warmupTasks,
    concurrency: CONCURRENCY,
    agents: AGENTS,
    rateLimit: NEVER_THROTTLES,
    results,
    overhead: 1 - results.on.median / results.off.median,
    pairedOverheadMedian: median(paired),
    pairedOverhead: paired,
    goals: { overhead: 0.1 },
  };
}

if (isMain(import.meta.url)) {
  const result = await resilience({ log: (line) => console.error(line) });
  console.log(JSON.stringify(result));
}
