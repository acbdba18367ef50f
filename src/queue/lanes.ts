import type { CapabilitySignature } from '../routing/capability-signature.js';
import { Lane, type QueueNode } from './lane.js';

/** Where lanes get their signatures: the agent directory. */
export interface SignatureIndex {
  /** The signature of a canonical capability key, indexed against every agent. */
  signature(key: string): CapabilitySignature;
  /** Forgets a signature no agent serves (and what was learned of it); `signature(key)` indexes it anew. */
  forgetSignature(signature: CapabilitySignature): void;
}

/**
 * The lanes of a work source, by canonical capability key. A lane stays while a live task
 * holds it or a registered agent serves its set; otherwise it goes, with its signature: any
 * client can name capability sets nobody serves, and each one kept would grow the heap for good.
 * A set an agent serves keeps its lane, so the common submit finds it with one Map lookup.
 */
export class Lanes<T extends QueueNode> {
  readonly #byKey = new Map<string, Lane<T, CapabilitySignature>>();
  readonly #signatures: SignatureIndex;

  constructor(signatures: SignatureIndex) {
    this.#signatures = signatures;
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** The lane of a key, created (with its signature) on first use or after it was dropped. */
  get(key: string): Lane<T, CapabilitySignature> {
    let lane = this.#byKey.get(key);
    if (lane === undefined) {
      lane = new Lane<T, CapabilitySignature>(this.#signatures.signature(key));
      this.#byKey.set(key, lane);
    }
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
}
