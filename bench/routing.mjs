// Routing: one routing decision (AgentRouter.select) with 100 agents and 50 capability
// signatures, and for one capability all 100 agents share. Uses the compiled internals in
// dist/routing directly: this is a microbenchmark of an internal class, not of the public API.
//
//   node bench/routing.mjs               prints the results as JSON
import { AgentRouter } from '../dist/routing/agent-router.js';
import { Agent } from '../dist/routing/agent.js';
import { signatureKey } from '../dist/routing/capability-signature.js';
import { AgentRole } from '../dist/enums.js';
import { envInt, isMain, median, percentile, rng } from './common.mjs';

const AGENTS = 100;
const CAPABILITY_POOL = 20;
const CAPABILITIES_PER_AGENT = 10;
const SIGNATURES = 50;
const MAX_CONCURRENT = 4;
const ROLES = Object.values(AgentRole);
const INLINE = Object.freeze({ kind: 'inline', handler: async () => 1 });
/** A capability every agent has: its signature has all 100 agents as candidates. */
const SHARED = 'shared';
const HALF_LIFE = 20;
const LEARNED_PER_AGENT = 3;

/**
 * 100 agents with ~10 random capabilities of 20 (and SHARED), and 50 distinct signatures of 1-3
 * capabilities each served by at least one agent. With the adaptive strategy, every agent has
 * learned a few outcomes of each signature it serves (random run times and verdicts, so the
 * figures differ and have aged differently, as in a running orchestrator).
 */
function buildWorld(strategy, next) {
  const capabilities = Array.from({ length: CAPABILITY_POOL }, (_, i) => `cap-${i}`);
  const router = new AgentRouter({ name: strategy, halfLife: HALF_LIFE });
  const agents = [];
  for (let a = 0; a < AGENTS; a++) {
    // Partial Fisher-Yates: a random subset of CAPABILITIES_PER_AGENT capabilities.
    const pool = capabilities.slice();
    for (let i = 0; i < CAPABILITIES_PER_AGENT; i++) {
      const j = i + Math.floor(next() * (pool.length - i));
      [pool[i], pool[j]] = [pool[j], pool[i]];
    }
    const agent = new Agent(`agent-${a}`, ROLES[a % ROLES.length], [...pool.slice(0, CAPABILITIES_PER_AGENT), SHARED], MAX_CONCURRENT, INLINE, null, null);
    router.register(agent);
    agents.push(agent);
  }
  const signatures = [];
  const seen = new Set();
  while (signatures.length < SIGNATURES) {
    const size = 1 + Math.floor(next() * 3);
    const picked = [];
    while (picked.length < size) {
      const capability = capabilities[Math.floor(next() * CAPABILITY_POOL)];
      if (!picked.includes(capability)) picked.push(capability);
    }
    const key = signatureKey(picked);
    if (seen.has(key)) continue;
    if (!agents.some((agent) => agent.serves(picked))) continue;
    seen.add(key);
    signatures.push(router.signature(key));
  }
  const shared = router.signature(SHARED);
  if (strategy === 'adaptive') {
    for (const signature of [...signatures, shared]) {
      for (let k = 0; k < LEARNED_PER_AGENT; k++) {
        for (const agent of signature.agents) router.learn(agent, signature, 'task', next() < 0.9, 1 + next() * 99);
      }
    }
  }
  return { router, agents, signatures, shared };
}

/**
 * Random current loads 0..maxConcurrent (an agent at maxConcurrent is skipped by routing); with
 * `busy`, 1..maxConcurrent, so no agent is idle and least-busy cannot stop early: a full scan.
 */
function shuffleLoads(agents, next, busy) {
  const low = busy ? 1 : 0;
  for (const agent of agents) agent.active = low + Math.floor(next() * (MAX_CONCURRENT + 1 - low));
}

/**
 * One scenario: `batches` timed batches of `batchSize` select() calls (per-call time = batch
 * time / batchSize), loads re-drawn between batches; then `singles` individually timed calls.
 */
function measure({ strategy, preferRole, busy, everyAgent, batches, batchSize, singles, seed }) {
  const next = rng(seed);
  const { router, agents, signatures, shared } = buildWorld(strategy, next);
  // Pre-drawn call sequence: which signature (and preferred role) each call routes.
  const sequence = Array.from({ length: batchSize }, () => (everyAgent ? shared : signatures[Math.floor(next() * signatures.length)]));
  const roles = Array.from({ length: batchSize }, () => (preferRole ? ROLES[Math.floor(next() * ROLES.length)] : undefined));
  let found = 0;
  let calls = 0;
  const perCallNs = new Float64Array(batches);
  for (let b = 0; b < batches; b++) {
    shuffleLoads(agents, next, busy);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batchSize; i++) if (router.select(sequence[i], 'task', roles[i], true, true) !== null) found++;
    const t1 = process.hrtime.bigint();
    perCallNs[b] = Number(t1 - t0) / batchSize;
    calls += batchSize;
  }
  // Single calls, each between two clock reads: includes the clock's own cost (reported beside).
  const singleNs = new Float64Array(singles);
  const clockNs = new Float64Array(singles);
  for (let i = 0; i < singles; i++) {
    if (i % batchSize === 0) shuffleLoads(agents, next, busy);
    const k = i % batchSize;
    const t0 = process.hrtime.bigint();
    router.select(sequence[k], 'task', roles[k], true, true);
    const t1 = process.hrtime.bigint();
    singleNs[i] = Number(t1 - t0);
    const c0 = process.hrtime.bigint();
    const c1 = process.hrtime.bigint();
    clockNs[i] = Number(c1 - c0);
  }
  const candidates = everyAgent ? [shared.agents.length] : signatures.map((s) => s.agents.length);
  return {
    batchP50Us: percentile(perCallNs, 0.5) / 1000,
    batchP99Us: percentile(perCallNs, 0.99) / 1000,
    singleP50Us: percentile(singleNs, 0.5) / 1000,
    singleP99Us: percentile(singleNs, 0.99) / 1000,
    clockP50Us: percentile(clockNs, 0.5) / 1000,
    foundRate: found / calls,
    candidatesMin: Math.min(...candidates),
    candidatesMedian: median(candidates),
    candidatesMax: Math.max(...candidates),
  };
}

export const SCENARIOS = [
  { key: 'leastBusy', label: 'least-busy (default), loads 0..4', strategy: 'least-busy', preferRole: false, busy: false },
  { key: 'leastBusyFullScan', label: 'least-busy, loads 1..4 (no idle agent: full scan)', strategy: 'least-busy', preferRole: false, busy: true },
  { key: 'leastBusyRole', label: 'least-busy + random preferredRole, loads 0..4', strategy: 'least-busy', preferRole: true, busy: false },
  { key: 'roundRobin', label: 'round-robin, loads 0..4', strategy: 'round-robin', preferRole: false, busy: false },
  { key: 'random', label: 'random, loads 0..4', strategy: 'random', preferRole: false, busy: false },
  { key: 'adaptive', label: 'adaptive (trained), loads 0..4', strategy: 'adaptive', preferRole: false, busy: false },
  { key: 'adaptiveRole', label: 'adaptive (trained) + random preferredRole, loads 0..4', strategy: 'adaptive', preferRole: true, busy: false },
  { key: 'leastBusyEveryAgent', label: 'least-busy, loads 1..4, one capability all 100 agents share', strategy: 'least-busy', preferRole: false, busy: true, everyAgent: true },
  { key: 'adaptiveEveryAgent', label: 'adaptive (trained), loads 0..4, one capability all 100 agents share', strategy: 'adaptive', preferRole: false, busy: false, everyAgent: true },
];

/** Each scenario: a warm-up, then `runs` measurements; medians of each run's percentiles. */
export async function routing({
  runs = envInt('BENCH_RUNS', 3),
  batches = envInt('BENCH_ROUTING_BATCHES', 2000),
  batchSize = 1000,
  singles = envInt('BENCH_ROUTING_SINGLES', 200_000),
  log = () => {},
} = {}) {
  const results = {};
  for (const scenario of SCENARIOS) {
    const options = { strategy: scenario.strategy, preferRole: scenario.preferRole, busy: scenario.busy, everyAgent: scenario.everyAgent === true, batchSize };
    measure({ ...options, batches: Math.ceil(batches / 4), singles: Math.ceil(singles / 4), seed: 7 });
    const samples = [];
    for (let r = 0; r < runs; r++) samples.push(measure({ ...options, batches, singles, seed: 1000 + r }));
    const pick = (field) => median(samples.map((s) => s[field]));
    results[scenario.key] = {
      label: scenario.label,
      samples,
      batchP50Us: pick('batchP50Us'),
      batchP99Us: pick('batchP99Us'),
      singleP50Us: pick('singleP50Us'),
      singleP99Us: pick('singleP99Us'),
      clockP50Us: pick('clockP50Us'),
      foundRate: pick('foundRate'),
      candidatesMin: samples[0].candidatesMin,
      candidatesMedian: samples[0].candidatesMedian,
      candidatesMax: samples[0].candidatesMax,
    };
    log(`routing ${scenario.key}: batch p50 ${results[scenario.key].batchP50Us.toFixed(3)} µs, p99 ${results[scenario.key].batchP99Us.toFixed(3)} µs`);
  }
  return {
    agents: AGENTS,
    signatures: SIGNATURES,
    capabilityPool: CAPABILITY_POOL,
    capabilitiesPerAgent: CAPABILITIES_PER_AGENT,
    maxConcurrent: MAX_CONCURRENT,
    halfLife: HALF_LIFE,
    learnedPerAgent: LEARNED_PER_AGENT,
    runs,
    batches,
    batchSize,
    singles,
    results,
    goals: { p99Us: 5 },
  };
}

if (isMain(import.meta.url)) {
  const result = await routing({ log: (line) => console.error(line) });
  console.log(JSON.stringify(result, null, 2));
}
