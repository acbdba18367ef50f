/**
 * Group commit for one kind of write: items pushed while a batch is in flight wait and go in the
 * next one, so batches grow with load and a lone item goes at once (on the next turn of the
 * event loop, with whatever else that turn pushed). At most one batch is in flight, and batches
 * commit in order. Each item's promise settles with its batch.
 */
export class Batcher<I, R = void> {
  #pending: I[] = [];
  #waiters: { resolve: (value: R) => void; reject: (error: unknown) => void }[] = [];
  #inFlight: Promise<void> | null = null;
  /** The items of the batch in flight. */
  #writing: I[] = [];
  #scheduled = false;

  constructor(
    /** Writes a batch; returns one result per item, in order. */
    readonly write: (items: I[]) => Promise<R[]>,
    readonly maxBatch: number,
  ) {}

  get size(): number {
    return this.#pending.length;
  }

  get busy(): boolean {
    return this.#inFlight !== null || this.#pending.length > 0;
  }

  push(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#pending.push(item);
      this.#waiters.push({ resolve, reject });
      this.#schedule();
    });
  }

  /** True while `item` waits to be written. */
  has(item: I): boolean {
    return this.#pending.includes(item);
  }

  /** Resolves once `item` no longer waits and is not being written (written or failed). */
  async written(item: I): Promise<void> {
    while (this.#pending.includes(item) || this.#writing.includes(item)) {
      if (this.#inFlight === null) this.#flush();
      await this.#inFlight;
    }
  }

  /** Drops a pending (not yet written) item; false when it already went. */
  remove(matches: (item: I) => boolean, result: R): boolean {
    const index = this.#pending.findIndex(matches);
    if (index < 0) return false;
    this.#pending.splice(index, 1);
    this.#waiters.splice(index, 1)[0]!.resolve(result);
    return true;
  }

  /** Resolves once everything pushed so far is written (or failed). */
  async drain(): Promise<void> {
    while (this.#inFlight !== null || this.#pending.length > 0) {
      if (this.#inFlight === null) this.#flush();
      await this.#inFlight;
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight !== null) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#inFlight === null) this.#flush();
    });
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const items = this.#pending.splice(0, this.maxBatch);
    const waiters = this.#waiters.splice(0, items.length);
    this.#writing = items;
    this.#inFlight = this.write(items).then(
      (results) => {
        for (let i = 0; i < waiters.length; i++) waiters[i]!.resolve(results[i]!);
      },
      (error: unknown) => {
        for (const waiter of waiters) waiter.reject(error);
      },
    ).finally(() => {
      this.#inFlight = null;
      this.#writing = [];
      if (this.#pending.length > 0) this.#flush();
    });
  }
}
