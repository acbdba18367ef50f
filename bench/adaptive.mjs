// Adaptive agent selection (issue 14, benchmark 2): submit-to-complete time when work arrives
// steadily below capacity, on agents of one capability whose run times differ (2, 10, 40 ms;
// in a second scenario a fourth agent, 5 ms, fails 30% of its runs). Contenders: the
// strategies 'adaptive', 'least-busy' and 'round-robin', and an oracle that knows each agent's
// true expected time per success and always takes the best free agent (a custom select()
// patched onto the router's prototype: a strategy inside the benchmark). The four run at once
// in one process, each on its own orchestrator and agents, fed the same schedule: a busy
// machine delays timers, which changes every figure, but alike for all four.
//
//   node bench/adaptive.mjs              prints the results as JSON (bench/run.mjs runs it so)
//   BENCH_ADAPTIVE_TASKS=300 BENCH_ADAPTIVE_RUNS=1 node bench/adaptive.mjs   a quick look
//
// Open loop: task i is submitted at start + i × interval whatever happened before (a late
// timer submits the ones due at once), interval = 1 / (half the agents' combined capacity in
// successes per ms). The capacity comes from the run times a warm-up round measured: timers
// fire late, and at the nominal 2 ms the fast agent alone would be near saturation. Agents have maxConcurrent 1 (the default),
// and in a third scenario 4, where the fast agent alone could almost carry the load. Each run
// is a fresh orchestrator that starts knowing nothing: adaptive's learning and exploring are
// in its figures.
import { AgentRole, createParallelOrchestrator } from '../dist/index.js';
import { AgentRouter } from '../dist/routing/agent-router.js';
import { envInt, isMain, median, percentile, rng, rotate } from './common.mjs';

const CAPABILITY = 'work';
/** The oracle's orchestrator routes this capability, so the patched select() knows its own tasks. */
const ORACLE_CAPABILITY = 'work-for-the-oracle';
const LOAD = 0.5;
/** A failed run is retried after 5 ms: the cost of a failure is the lost run and a short backoff, not the default 100 ms. */
const RETRY = Object.freeze({ maxAttempts: 10, initialDelay: 5, factor: 1, jitter: 0 });

export const SCENARIOS = [
  {
    key: 'three',
    label: 'three agents: 2, 10 and 40 ms',
    maxConcurrent: 1,
    agents: [
      { agentId: 'fast', ms: 2, failRate: 0 },
      { agentId: 'medium', ms: 10, failRate: 0 },
      { agentId: 'slow', ms: 40, failRate: 0 },
    ],
  },
  {
    key: 'flaky',
    label: 'four agents: 2, 10 and 40 ms, and 5 ms failing 30% of its runs',
    maxConcurrent: 1,
    agents: [
      { agentId: 'fast', ms: 2, failRate: 0 },
      { agentId: 'medium', ms: 10, failRate: 0 },
      { agentId: 'slow', ms: 40, failRate: 0 },
      { agentId: 'flaky', ms: 5, failRate: 0.3 },
    ],
  },
  {
    key: 'threeWide',
    label: 'three agents: 2, 10 and 40 ms, 4 slots each',
    maxConcurrent: 4,
    agents: [
      { agentId: 'fast', ms: 2, failRate: 0 },
      { agentId: 'medium', ms: 10, failRate: 0 },
      { agentId: 'slow', ms: 40, failRate: 0 },
    ],
  },
];

export const CONTENDERS = [
  { key: 'adaptive', label: "'adaptive'", strategy: 'adaptive' },
  { key: 'leastBusy', label: "'least-busy' (default)", strategy: 'least-busy' },
  { key: 'roundRobin', label: "'round-robin'", strategy: 'round-robin' },
  { key: 'oracle', label: 'oracle (knows each agent’s time per success, takes the best free one)', strategy: 'least-busy', oracle: true },
];

/** Successes per ms all agents can deliver together, from their run times (`runMs`: agentId → ms). */
function capacity(scenario, runMs) {
  return scenario.agents.reduce((sum, a) => sum + (scenario.maxConcurrent * (1 - a.failRate)) / runMs[a.agentId], 0);
}

const nominal = (scenario) => Object.fromEntries(scenario.agents.map((a) => [a.agentId, a.ms]));

/**
 * select() for the oracle's orchestrator: the free agent with the lowest true time per success.
 * Patched onto the router's prototype for the run; other orchestrators' signatures (another
 * capability) still go to the strategy's select().
 */
function withOracle(scenario, run) {
  const perSuccess = new Map(scenario.agents.map((a) => [a.agentId, a.ms / (1 - a.failRate)]));
  const original = AgentRouter.prototype.select;
  AgentRouter.prototype.select = function select(signature, ...rest) {
    if (signature.key !== ORACLE_CAPABILITY) return original.call(this, signature, ...rest);
    let best = null;
    let bestMs = Infinity;
    for (const agent of signature.agents) {
      if (!agent.admitting || agent.active >= agent.maxConcurrent) continue;
      const ms = perSuccess.get(agent.agentId);
      if (ms < bestMs) {
        best = agent;
        bestMs = ms;
      }
    }
    return best;
  };
  return run().finally(() => {
    AgentRouter.prototype.select = original;
  });
}

/** A started orchestrator with the scenario's agents, routing by the contender's strategy; counts each agent's runs. */
async function orchestratorFor(scenario, contender, seed) {
  const slots = scenario.agents.length * scenario.maxConcurrent;
  const o = createParallelOrchestrator({
    workerPool: { assignmentStrategy: contender.strategy, minWorkers: slots, maxWorkers: slots },
    // A run of failures must not take the flaky agent out for the rest of the run: routing is measured, not breakers.
    circuitBreaker: { enabled: false },
    taskQueue: { retry: RETRY },
  });
  const capability = contender.oracle ? ORACLE_CAPABILITY : CAPABILITY;
  const runsByAgent = {};
  const sleptMs = {};
  for (const spec of scenario.agents) {
    const fails = rng(seed ^ spec.ms);
    runsByAgent[spec.agentId] = 0;
    sleptMs[spec.agentId] = 0;
    o.registerAgent({
      agentId: spec.agentId,
      role: AgentRole.EXECUTOR,
      capabilities: [capability],
      maxConcurrent: scenario.maxConcurrent,
      handler: async () => {
        runsByAgent[spec.agentId]++;
        const failed = fails() < spec.failRate;
        const t0 = performance.now();
        await new Promise((resolve) => setTimeout(resolve, spec.ms));
        sleptMs[spec.agentId] += performance.now() - t0;
        if (failed) throw new Error(`${spec.agentId} failed`);
        return spec.agentId;
      },
    });
  }
  await o.start();
  return { o, capability, runsByAgent, sleptMs };
}

/**
 * One round: every contender's orchestrator at once, in one process, fed the same schedule
 * (task i of each submitted at start + i × interval), so a late timer or a busy machine hits
 * all of them alike. Returns each contender's submit-to-complete times.
 */
async function runRound(scenario, tasks, seed, order, interval) {
  const lanes = [];
  for (const contender of order) lanes.push({ contender, ...(await orchestratorFor(scenario, contender, seed)), latencies: new Float64Array(tasks), done: [] });
  try {
    await withOracle(scenario, async () => {
      const startedAt = performance.now();
      let next = 0;
      await new Promise((resolve) => {
        const tick = () => {
          const now = performance.now();
          for (; next < tasks && startedAt + next * interval <= now; next++) {
            for (const lane of lanes) {
              const i = next;
              const submittedAt = performance.now();
              const result = lane.o.submit({ type: 'work', capabilities: [lane.capability] }).result();
              lane.done.push(result.then(() => (lane.latencies[i] = performance.now() - submittedAt)));
            }
          }
          if (next === tasks) return resolve();
          setTimeout(tick, Math.max(0, startedAt + next * interval - performance.now()));
        };
        tick();
      });
      await Promise.all(lanes.flatMap((lane) => lane.done));
    });
    return Object.fromEntries(
      lanes.map(({ contender, o, latencies, runsByAgent, sleptMs }) => [
        contender.key,
        {
          meanMs: latencies.reduce((sum, x) => sum + x, 0) / tasks,
          p50Ms: percentile(latencies, 0.5),
          p99Ms: percentile(latencies, 0.99),
          runsByAgent,
          sleptMs,
          learned: contender.key === 'adaptive' ? o.listAgents().map((a) => ({ agentId: a.agentId, ...a.learned[0] })) : null,
        },
      ]),
    );
  } finally {
    await Promise.all(lanes.map((lane) => lane.o.shutdown()));
  }
}

/** How long each agent's runs really took in a round (a timer fires late: 2 ms is nearer 3 on a busy machine), all contenders together. */
function measuredRunMs(round) {
  const runs = {};
  const ms = {};
  for (const run of Object.values(round)) {
    for (const [agentId, n] of Object.entries(run.runsByAgent)) {
      runs[agentId] = (runs[agentId] ?? 0) + n;
      ms[agentId] = (ms[agentId] ?? 0) + run.sleptMs[agentId];
    }
  }
  return Object.fromEntries(Object.keys(runs).map((agentId) => [agentId, ms[agentId] / runs[agentId]]));
}

/**
 * Each scenario: a warm-up round at the load the nominal run times give, which also measures
 * the real ones, then `runs` rounds at the load the real ones give (submission order rotated);
 * medians of the per-round figures and ratios.
 */
export async function adaptive({ tasks = envInt('BENCH_ADAPTIVE_TASKS', 1500), runs = envInt('BENCH_ADAPTIVE_RUNS', 3), log = () => {} } = {}) {
  const results = {};
  for (const scenario of SCENARIOS) {
    const warmUp = await runRound(scenario, Math.min(300, tasks), 1, CONTENDERS, 1 / (LOAD * capacity(scenario, nominal(scenario))));
    const runMs = measuredRunMs(warmUp);
    const intervalMs = 1 / (LOAD * capacity(scenario, runMs));
    const entries = Object.fromEntries(CONTENDERS.map((c) => [c.key, { label: c.label, meanMs: [], p50Ms: [], p99Ms: [], runsByAgent: [], learned: null }]));
    const perRound = { roundRobinOverAdaptive: [], leastBusyOverAdaptive: [], adaptiveOverOracle: [] };
    for (let r = 0; r < runs; r++) {
      const round = await runRound(scenario, tasks, 1000 + r, rotate(CONTENDERS, r), intervalMs);
      for (const [key, run] of Object.entries(round)) {
        const entry = entries[key];
        entry.meanMs.push(run.meanMs);
        entry.p50Ms.push(run.p50Ms);
        entry.p99Ms.push(run.p99Ms);
        entry.runsByAgent.push(run.runsByAgent);
        if (run.learned !== null) entry.learned = run.learned;
      }
      perRound.roundRobinOverAdaptive.push(round.roundRobin.meanMs / round.adaptive.meanMs);
      perRound.leastBusyOverAdaptive.push(round.leastBusy.meanMs / round.adaptive.meanMs);
      perRound.adaptiveOverOracle.push(round.adaptive.meanMs / round.oracle.meanMs);
      log(`adaptive ${scenario.key} ${r + 1}/${runs}: ${CONTENDERS.map((c) => `${c.key} ${round[c.key].meanMs.toFixed(2)} ms (p99 ${round[c.key].p99Ms.toFixed(1)})`).join(', ')}`);
    }
    for (const entry of Object.values(entries)) {
      entry.meanMsMedian = median(entry.meanMs);
      entry.p50MsMedian = median(entry.p50Ms);
      entry.p99MsMedian = median(entry.p99Ms);
    }
    results[scenario.key] = {
      label: scenario.label,
      agents: scenario.agents,
      maxConcurrent: scenario.maxConcurrent,
      nominalIntervalMs: 1 / (LOAD * capacity(scenario, nominal(scenario))),
      measuredRunMs: runMs,
      intervalMs,
      contenders: entries,
      perRound,
      ratios: Object.fromEntries(Object.entries(perRound).map(([key, values]) => [key, median(values)])),
    };
  }
  return {
    tasks,
    runs,
    load: LOAD,
    retry: RETRY,
    results,
    goals: { roundRobinOverAdaptive: 1.5, leastBusyOverAdaptive: 1, adaptiveOverOracle: 1.1 },
  };
}

if (isMain(import.meta.url)) {
  const result = await adaptive({ log: (line) => console.error(line) });
  console.log(JSON.stringify(result, null, 2));
}
