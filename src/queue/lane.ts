import { PRIORITY_LEVELS } from '../enums.js';

/** What the queue needs of an item. */
export interface QueueNode {
  /** Position in its level's FIFO (absolute: stays valid when the FIFO compacts). */
  slot: number;
  /** Current level (0 = CRITICAL); aging lowers it. The owner may use -1 for "not queued". */
  level: number;
  /** Submission order, for FIFO across lanes. */
  seq: number;
  /** When the item entered its current level (ms, monotonic). */
  enqueuedAt: number;
}

/**
 * One priority level of a lane: a FIFO in an array. Removing an item leaves a hole (null) that
 * taking skips; the array is compacted when holes pile up at its front. Dequeueing then reads
 * one array slot, where a linked list through the items would touch the next item too (a cache
 * miss per task when 100,000s are queued).
 */
class Fifo<T extends QueueNode> {
  items: (T | null)[] = [];
  /** Index in `items` of the first slot not yet taken. */
  start = 0;
  /** Absolute position of `items[0]`. */
  base = 0;
  live = 0;

  push(node: T): void {
    node.slot = this.base + this.items.length;
    this.items.push(node);
    this.live++;
  }

  /** Ahead of every queued item (a preempted task going back). Slots are absolute, so the others keep theirs. */
  pushFront(node: T): void {
    if (this.start > 0) {
      this.items[--this.start] = node;
    } else {
      this.items.unshift(node);
      this.base--;
    }
    node.slot = this.base + this.start;
    this.live++;
  }

  head(): T | null {
    if (this.live === 0) return null;
    const items = this.items;
    let start = this.start;
    while (items[start] === null) start++;
    this.start = start;
    return items[start]!;
  }

  remove(node: T): void {
    const items = this.items;
    const index = node.slot - this.base;
    items[index] = null;
    if (--this.live === 0) {
      this.base += items.length;
      this.items = [];
      this.start = 0;
    } else if (index === this.start) {
      this.start++;
      if (this.start >= 1024 && this.start * 2 >= items.length) {
        this.items = items.slice(this.start);
        this.base += this.start;
        this.start = 0;
      }
    } else if (items.length - this.start >= 2048 && this.live * 2 < items.length - this.start) {
      // Holes left by removals behind a head that stays (cancels, aging) outnumber the items.
      this.#compact();
    }
  }

  /** Rewrites the FIFO without holes; slots move to a fresh range, so stale ones never match. */
  #compact(): void {
    const items = this.items;
    const base = this.base + items.length;
    const kept: T[] = [];
    for (let i = this.start; i < items.length; i++) {
      const node = items[i];
      if (node === null || node === undefined) continue;
      node.slot = base + kept.length;
      kept.push(node);
    }
    this.items = kept;
    this.base = base;
    this.start = 0;
  }
}

/**
 * The queued items of one capability signature: one FIFO per priority level. Enqueue, dequeue
 * and removal are O(1) (amortised); `mask` has bit L set while level L is non-empty, so the
 * best level is one bit operation away.
 */
export class Lane<T extends QueueNode, K = unknown> {
  readonly #levels: Fifo<T>[] = Array.from({ length: PRIORITY_LEVELS }, () => new Fifo<T>());
  mask = 0;
  size = 0;
  /** Position in the queue's list of non-empty lanes, or -1. */
  activeIndex = -1;
  /** Live tasks of this lane (queued, running, retrying): while any is, the lane is kept (see `Lanes`). */
  holders = 0;
  /** The sweep epoch of its last use (see `Lanes`). */
  usedIn = 0;

  constructor(readonly key: K) {}

  /** Lowest non-empty level, or -1 when empty. */
  get bestLevel(): number {
    const mask = this.mask;
    return mask === 0 ? -1 : 31 - Math.clz32(mask & -mask);
  }

  head(level: number): T | null {
    return this.#levels[level]!.head();
  }

  push(node: T): void {
    const level = node.level;
    this.#levels[level]!.push(node);
    this.mask |= 1 << level;
    this.size++;
  }

  pushFront(node: T): void {
    const level = node.level;
    this.#levels[level]!.pushFront(node);
    this.mask |= 1 << level;
    this.size++;
  }

  /** Every queued item, most urgent level first (a copy: the caller may remove items meanwhile). */
  tasks(): T[] {
    const out: T[] = [];
    for (const fifo of this.#levels) {
      for (let i = fifo.start; i < fifo.items.length; i++) {
        const node = fifo.items[i];
        if (node !== null && node !== undefined) out.push(node);
      }
    }
    return out;
  }

  remove(node: T): void {
    const level = node.level;
    const fifo = this.#levels[level]!;
    fifo.remove(node);
    if (fifo.live === 0) this.mask &= ~(1 << level);
    this.size--;
  }
}
