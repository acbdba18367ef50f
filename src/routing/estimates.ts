import type { CapabilitySignature } from './capability-signature.js';

/**
 * What the adaptive strategy has learned of one agent on one capability signature (one class of
 * tasks): decaying means of its run time and of its success, each outcome weighted by how recent
 * it is in the class's sequence of outcomes (not by wall-clock time, so the same half-life suits
 * 2 ms and 20 s tasks).
 */
export class Estimate {
  /** Decayed count of the outcomes behind the figures, as of outcome `stamp`; 0 = nothing learned yet. */
  weight = 0;
  /** Mean run time of its attempts, failed ones included (ms). */
  meanMs = 0;
  /** Share of its attempts that succeeded (0..1). */
  successRate = 1;
  /** The class's outcome count at this agent's last outcome. */
  stamp = 0;
  /** Outcomes learned from, ever (shown, not used). */
  samples = 0;

  constructor(readonly signature: CapabilitySignature) {}
}

/** The learning of one signature: its candidates' estimates (aligned with `signature.agents`) and the class's own mean. */
export class ClassEstimates {
  readonly byAgent: Estimate[] = [];
  /** Outcomes learned in this class so far: the clock estimates decay by. */
  outcomes = 0;
  /** Mean run time over all agents (ms): what a failure costs on top of its own run (see `expectedMs`). */
  meanMs = 0;
  weight = 0;
}

/**
 * `1 / (half-life in outcomes of the class)`: a figure counts half once `halfLife` outcomes per
 * capable agent have followed it, so an agent with an even share of the work forgets at the
 * same pace however many agents share the class.
 */
export function decayRate(halfLife: number, candidates: number): number {
  return 1 / (halfLife * candidates);
}

/**
 * Expected ms until a task of the class started on this agent now has a successful result;
 * lower is better. With mean attempt time μ, success rate p and failure cost F (the class's
 * mean run time), attempts until a success are geometric: 1/p attempts, (1 − p)/p of them
 * failures, so E = (μ + (1 − p)·F) / p. F prices the retry a failure causes (at least one more
 * typical run; the task's backoff comes on top), without which an agent that fails at once
 * would look fastest. Load u = active / maxConcurrent scales it by (1 + u): an agent's slots
 * often share one upstream, and a slot taken now is one the next task cannot have.
 *
 * An idle agent's μ and p are blended with an optimistic prior worth one outcome (a 0 ms
 * success): E = w·(μ + (1 − p)·F) / (w·p + 1) for weight w. The weight decays as the class's
 * other outcomes pass, so an agent left unused drifts back to looking fast and is tried again:
 * exploration without randomness, rarer the slower the agent was (its weight must decay by
 * about the ratio of its time to the best one's), and a new agent (w = 0) is tried first. An
 * agent with runs in flight is being tried already and gets no optimism until they end (one
 * task, not a slot-full, goes to an agent on trial); with nothing learned yet it counts as a
 * typical run of the class.
 */
export function expectedMs(estimate: Estimate, classes: ClassEstimates, active: number, maxConcurrent: number, rate: number): number {
  const w = estimate.weight === 0 ? 0 : estimate.weight * 2 ** ((estimate.stamp - classes.outcomes) * rate);
  const perSuccess = estimate.meanMs + (1 - estimate.successRate) * classes.meanMs;
  if (active === 0) return (w * perSuccess) / (w * estimate.successRate + 1);
  const load = 1 + active / maxConcurrent;
  return w === 0 ? load * classes.meanMs : (load * perSuccess) / estimate.successRate;
}

/** Learns one outcome of `estimate`'s agent: a success or a failure (timeouts included) after `durationMs`. */
export function learn(classes: ClassEstimates, estimate: Estimate, ok: boolean, durationMs: number, rate: number): void {
  const outcome = ++classes.outcomes;
  const w = estimate.weight * 2 ** ((estimate.stamp - outcome) * rate) + 1;
  estimate.meanMs += (durationMs - estimate.meanMs) / w;
  estimate.successRate += ((ok ? 1 : 0) - estimate.successRate) / w;
  estimate.weight = w;
  estimate.stamp = outcome;
  estimate.samples++;
  classes.weight = classes.weight * 2 ** -rate + 1;
  classes.meanMs += (durationMs - classes.meanMs) / classes.weight;
}
