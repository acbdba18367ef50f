import { PRIORITY_LEVELS } from '../enums.js';

/** What the queue needs of an item: intrusive links, so queueing allocates nothing. */
export interface QueueNode {
  next: this | null;
  prev: this | null;
  /** Current level (0 = CRITICAL); aging lowers it. The owner may use -1 for "not queued". */
  level: number;
  /** Submission order, for FIFO across lanes. */
  seq: number;
  /** When the item entered its current level (ms, monotonic). */
  enqueuedAt: number;
}

/**
 * The queued items of one capability signature: one FIFO per priority level, as doubly linked
 * lists through the items themselves. Enqueue, dequeue and removal are O(1); `mask` has bit L
 * set while level L is non-empty, so the best level is one bit operation away.
 */
export class Lane<T extends QueueNode, K = unknown> {
  readonly #heads: (T | null)[] = new Array<T | null>(PRIORITY_LEVELS).fill(null);
  readonly #tails: (T | null)[] = new Array<T | null>(PRIORITY_LEVELS).fill(null);
  mask = 0;
  size = 0;
  /** Position in the queue's list of non-empty lanes, or -1. */
  activeIndex = -1;

  constructor(readonly key: K) {}

  /** Lowest non-empty level, or -1 when empty. */
  get bestLevel(): number {
    const mask = this.mask;
    return mask === 0 ? -1 : 31 - Math.clz32(mask & -mask);
  }

  head(level: number): T | null {
    return this.#heads[level]!;
  }

  push(node: T): void {
    const level = node.level;
    const tail = this.#tails[level]!;
    node.next = null;
    node.prev = tail;
    if (tail === null) {
      this.#heads[level] = node;
      this.mask |= 1 << level;
    } else tail.next = node;
    this.#tails[level] = node;
    this.size++;
  }

  remove(node: T): void {
    const level = node.level;
    const { prev, next } = node;
    if (prev === null) this.#heads[level] = next;
    else prev.next = next;
    if (next === null) this.#tails[level] = prev;
    else next.prev = prev;
    if (this.#heads[level] === null) this.mask &= ~(1 << level);
    node.next = null;
    node.prev = null;
    this.size--;
  }
}
