/** What the retention keeps of a finished task. */
export interface Retained {
  readonly id: string;
  /** Drops what only late subscribers needed (the progress stream). */
  release(): void;
}

/**
 * Finished tasks kept findable by id for `retainMs` (at most `max` of them, oldest evicted
 * first), so a late subscriber or a dashboard still gets a task's result and final state.
 * A ring in finishing order: adding is two array stores. Lookups scan it (newest first), which
 * is fine for their rate (by id, from a caller), while a Map keyed by id would cost every task
 * ~700 ns at a high finishing rate (see LiveTasks).
 */
export class RecentTasks<T extends Retained> {
  readonly #ring: (T | undefined)[];
  readonly #finishedAt: Float64Array;
  #oldest = 0;
  #size = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(
    readonly max: number,
    readonly retainMs: number,
    readonly clock: () => number,
  ) {
    this.#ring = new Array<T | undefined>(retainMs > 0 ? max : 0);
    this.#finishedAt = new Float64Array(this.#ring.length);
  }

  get size(): number {
    return this.#size;
  }

  /** `finishedAt`: the caller's clock reading when it has one (saves a read per task). */
  add(task: T, finishedAt = this.clock()): void {
    const capacity = this.#ring.length;
    if (capacity === 0) {
      task.release();
      return;
    }
    if (this.#size === capacity) this.#evictOldest();
    const slot = (this.#oldest + this.#size) % capacity;
    this.#ring[slot] = task;
    this.#finishedAt[slot] = finishedAt;
    this.#size++;
    if (this.#timer === null) this.#arm();
  }

  get(id: string): T | undefined {
    const capacity = this.#ring.length;
    const oldestAllowed = this.clock() - this.retainMs;
    for (let i = this.#size - 1; i >= 0; i--) {
      const slot = (this.#oldest + i) % capacity;
      if (this.#finishedAt[slot]! < oldestAllowed) return undefined;
      const task = this.#ring[slot]!;
      if (task.id === id) return task;
    }
    return undefined;
  }

  /** The retained tasks, newest first. */
  *values(): IterableIterator<T> {
    const capacity = this.#ring.length;
    const oldestAllowed = this.clock() - this.retainMs;
    for (let i = this.#size - 1; i >= 0; i--) {
      const slot = (this.#oldest + i) % capacity;
      if (this.#finishedAt[slot]! < oldestAllowed) return;
      yield this.#ring[slot]!;
    }
  }

  /** Releases everything held and stops the timer. */
  clear(): void {
    while (this.#size > 0) this.#evictOldest();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #evictOldest(): void {
    const task = this.#ring[this.#oldest]!;
    this.#ring[this.#oldest] = undefined;
    this.#oldest = (this.#oldest + 1) % this.#ring.length;
    this.#size--;
    task.release();
  }

  // One unref'd timer for the oldest entry: nothing is held past retainMs, and the process may exit.
  #arm(): void {
    const wait = this.#finishedAt[this.#oldest]! + this.retainMs - this.clock();
    this.#timer = setTimeout(() => this.#sweep(), Math.max(0, wait) + 1);
    this.#timer.unref();
  }

  #sweep(): void {
    this.#timer = null;
    const oldestAllowed = this.clock() - this.retainMs;
    while (this.#size > 0 && this.#finishedAt[this.#oldest]! < oldestAllowed) this.#evictOldest();
    if (this.#size > 0) this.#arm();
  }
}
