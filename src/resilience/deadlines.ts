/** An entry of the deadline scheduler; intrusive links so arming a deadline allocates nothing. */
export interface DeadlineNode {
  deadlineAt: number;
  deadlineNext: DeadlineNode | null;
  deadlinePrev: DeadlineNode | null;
  deadlineBucket: DeadlineBucket | null;
  onDeadline(): void;
}

export interface DeadlineBucket {
  head: DeadlineNode | null;
  tail: DeadlineNode | null;
}

/**
 * Many deadlines on one timer. Entries are grouped by duration: within a group, deadlines are
 * added in time order, so each group is a FIFO whose head is its earliest. Adding and cancelling
 * are O(1); the single timer is armed for the earliest head. Thousands of running tasks with
 * timeouts thus cost one timer, not thousands of setTimeout calls.
 */
export class DeadlineScheduler {
  readonly #buckets = new Map<number, DeadlineBucket>();
  #timer: NodeJS.Timeout | null = null;
  #armedAt = Infinity;
  #size = 0;

  constructor(private readonly now: () => number) {}

  get size(): number {
    return this.#size;
  }

  add(node: DeadlineNode, durationMs: number): void {
    let bucket = this.#buckets.get(durationMs);
    if (bucket === undefined) {
      bucket = { head: null, tail: null };
      this.#buckets.set(durationMs, bucket);
    }
    node.deadlineAt = this.now() + durationMs;
    node.deadlineBucket = bucket;
    node.deadlineNext = null;
    node.deadlinePrev = bucket.tail;
    if (bucket.tail === null) bucket.head = node;
    else bucket.tail.deadlineNext = node;
    bucket.tail = node;
    this.#size++;
    if (node.deadlineAt < this.#armedAt) this.#arm(node.deadlineAt);
  }

  cancel(node: DeadlineNode): void {
    const bucket = node.deadlineBucket;
    if (bucket === null) return;
    const { deadlinePrev: prev, deadlineNext: next } = node;
    if (prev === null) bucket.head = next;
    else prev.deadlineNext = next;
    if (next === null) bucket.tail = prev;
    else next.deadlinePrev = prev;
    node.deadlineBucket = null;
    node.deadlineNext = null;
    node.deadlinePrev = null;
    if (--this.#size === 0 && this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
      this.#armedAt = Infinity;
    }
  }

  /** Drops every deadline and the timer. */
  clear(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#armedAt = Infinity;
    for (const bucket of this.#buckets.values()) {
      for (let node = bucket.head; node !== null; ) {
        const next = node.deadlineNext;
        node.deadlineBucket = null;
        node.deadlineNext = null;
        node.deadlinePrev = null;
        node = next;
      }
    }
    this.#buckets.clear();
    this.#size = 0;
  }

  #arm(at: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#armedAt = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - this.now()));
  }

  #fire(): void {
    this.#timer = null;
    this.#armedAt = Infinity;
    const now = this.now();
    const due: DeadlineNode[] = [];
    let earliest = Infinity;
    for (const bucket of this.#buckets.values()) {
      while (bucket.head !== null && bucket.head.deadlineAt <= now) {
        const node = bucket.head;
        this.cancel(node);
        due.push(node);
      }
      if (bucket.head !== null && bucket.head.deadlineAt < earliest) earliest = bucket.head.deadlineAt;
    }
    if (earliest !== Infinity && this.#timer === null) this.#arm(earliest);
    for (const node of due) node.onDeadline();
  }
}
