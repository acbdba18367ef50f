import type { CapabilitySignature } from '../routing/capability-signature.js';
import { Lane, type QueueNode } from './lane.js';

/** Where lanes get their signatures: the agent directory. */
export interface SignatureIndex {
  /** The signature of a canonical capability key, indexed against every agent. */
  signature(key: string): CapabilitySignature;
  /** Forgets a signature no live task holds (and what was learned of it); `signature(key)` indexes it anew. */
  forgetSignature(signature: CapabilitySignature): void;
}

/** Lanes kept before the first sweep of idle lanes of served sets (see `Lanes`). */
const SWEEP_FLOOR = 4_096;

/**
 * The lanes of a work source, by canonical capability key. A lane of a set no agent serves
 * goes, with its signature, as soon as no live task holds it: any client can name made-up
 * sets, and each one kept would grow the heap for good. A lane of a set an agent serves stays
 * while idle, so the common submit finds it with one Map lookup; but clients can also name
 * subsets of an agent's capabilities (2^n of them), so once the lanes reach a threshold, idle
 * lanes not used since the previous sweep go too. The threshold then doubles what is left
 * (at least `SWEEP_FLOOR`): sweeps cost O(1) amortised per lane made.
 */
export class Lanes<T extends QueueNode> {
  readonly #byKey = new Map<string, Lane<T, CapabilitySignature>>();
  readonly #signatures: SignatureIndex;
  #sweepAt = SWEEP_FLOOR;
  /** Sweeps so far; a lane records the one current when it was last used. */
  #epoch = 0;

  constructor(signatures: SignatureIndex) {
    this.#signatures = signatures;
  }

  /** The lane of a key, created (with its signature) on first use or after it was dropped. */
  get(key: string): Lane<T, CapabilitySignature> {
    let lane = this.#byKey.get(key);
    if (lane === undefined) {
      if (this.#byKey.size >= this.#sweepAt) this.#sweep();
      lane = new Lane<T, CapabilitySignature>(this.#signatures.signature(key));
      this.#byKey.set(key, lane);
    }
    lane.usedIn = this.#epoch;
    return lane;
  }

  find(key: string): Lane<T, CapabilitySignature> | undefined {
    return this.#byKey.get(key);
  }

  values(): IterableIterator<Lane<T, CapabilitySignature>> {
    return this.#byKey.values();
  }

  /** Drops the lane and its signature unless a live task holds it or an agent serves its set. */
  prune(lane: Lane<T, CapabilitySignature>): void {
    const signature = lane.key;
    if (lane.holders > 0 || lane.size > 0 || signature.agents.length > 0 || this.#byKey.get(signature.key) !== lane) return;
    this.#byKey.delete(signature.key);
    this.#signatures.forgetSignature(signature);
  }

  /** Drops the idle lanes not used since the previous sweep, whoever serves them. */
  #sweep(): void {
    const previous = this.#epoch++;
    for (const lane of this.#byKey.values()) {
      if (lane.holders > 0 || lane.size > 0 || lane.usedIn >= previous) continue;
      this.#byKey.delete(lane.key.key);
      this.#signatures.forgetSignature(lane.key);
    }
    this.#sweepAt = Math.max(SWEEP_FLOOR, 2 * this.#byKey.size);
  }
}
