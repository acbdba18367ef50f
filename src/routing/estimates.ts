import type { CapabilitySignature } from './capability-signature.js';

/**
 * What the adaptive strategy has learned of one agent on one class of tasks (a task type among
 * the tasks of one capability signature): decaying means of its run time and of its success. Outcomes are weighted by how recent
 * they are in the class's sequence of outcomes, not in wall-clock time, so the same half-life
 * suits 2 ms and 20 s tasks.
 */
export class Estimate {
  /**
   * The decayed count of outcomes behind the figures, times 2^((clock − base) / halfLife) as of
   * the last update: dividing by the class's current factor (`ClassEstimates.growth`) gives the
   * weight now, one multiplication per candidate rather than a power. 0 = nothing learned yet.
   */
  scaledWeight = 0;
  /** Mean run time of its attempts, failed ones included (ms). */
  meanMs = 0;
  /** Share of its attempts that succeeded (0..1). */
  successRate = 1;
  /** Outcomes learned from, ever (shown, not used). */
  samples = 0;

  constructor(
    readonly signature: CapabilitySignature,
    readonly type: string | null,
  ) {}
}

/** Task types learned apart per signature; later ones share one class, so that memory stays bounded whatever types users make up. */
export const MAX_TYPES_PER_SIGNATURE = 256;

/** Rebase after this many half-lives, long before 2^(clock − base) could overflow. */
const REBASE_HALF_LIVES = 64;

/**
 * The learning of one class (a task type on one signature; `type` null: the types past
 * `MAX_TYPES_PER_SIGNATURE`, learned together): its candidates' estimates (aligned with
 * `signature.agents`), the class's clock, and its mean run time over all agents.
 */
export class ClassEstimates {
  readonly byAgent: Estimate[] = [];
  /**
   * Outcomes per capable agent so far: each outcome moves it by 1 / (capable agents), so an
   * agent with an even share of the work sees one tick per outcome of its own, however many
   * agents share the class. Weights halve every `halfLife` ticks.
   */
  clock = 0;
  /** The clock reading weights are scaled against (see `Estimate.scaledWeight`). */
  base = 0;
  /** 2^((clock − base) / halfLife): a weight now is its scaled weight divided by this. */
  growth = 1;
  /** Mean run time over all agents (ms): what a failure costs on top of its own run (see `expectedMs`). */
  meanMs = 0;
  weight = 0;

  constructor(
    readonly halfLife: number,
    readonly type: string | null,
  ) {}

  /** Learns one outcome of `estimate`'s agent: a success or a failure (timeouts included) after `durationMs`, among `candidates` capable agents. */
  learn(estimate: Estimate, ok: boolean, durationMs: number, candidates: number): void {
    const tick = 1 / candidates;
    this.clock += tick;
    if (this.clock - this.base > REBASE_HALF_LIVES * this.halfLife) this.#rebase();
    this.growth = 2 ** ((this.clock - this.base) / this.halfLife);
    const w = estimate.scaledWeight / this.growth + 1;
    estimate.meanMs += (durationMs - estimate.meanMs) / w;
    estimate.successRate += ((ok ? 1 : 0) - estimate.successRate) / w;
    estimate.scaledWeight = w * this.growth;
    estimate.samples++;
    this.weight = this.weight * 2 ** (-tick / this.halfLife) + 1;
    this.meanMs += (durationMs - this.meanMs) / this.weight;
  }

  #rebase(): void {
    const growth = 2 ** ((this.clock - this.base) / this.halfLife);
    for (const estimate of this.byAgent) estimate.scaledWeight /= growth;
    this.base = this.clock;
  }
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
export function expectedMs(estimate: Estimate, classes: ClassEstimates, active: number, maxConcurrent: number): number {
  const perSuccess = estimate.meanMs + (1 - estimate.successRate) * classes.meanMs;
  if (active === 0) {
    const w = estimate.scaledWeight / classes.growth;
    return (w * perSuccess) / (w * estimate.successRate + 1);
  }
  const load = 1 + active / maxConcurrent;
  if (estimate.scaledWeight === 0) return load * classes.meanMs;
  return estimate.successRate === 0 ? Infinity : (load * perSuccess) / estimate.successRate;
}
