/** How a subscriber's buffer sheds load. */
export interface BufferPolicy<E> {
  /** Droppable events it may hold before it conflates. */
  readonly limit: number;
  /** Events that conflation may drop (progress updates); the others are always delivered. */
  droppable(event: E): boolean;
  /** The one event that stands in for `dropped` (a fresh snapshot, a gap marker). */
  conflate(dropped: E[]): E;
  /** Ends the subscription after this event is delivered. */
  isLast(event: E): boolean;
  onListenerError(error: unknown): void;
}

type Listener<E> = (event: E) => void | PromiseLike<unknown>;

/**
 * A subscriber's bounded buffer between a producer that never waits and a consumer at its own
 * pace: either a listener (called at once while it keeps up; an async listener is awaited before
 * the next event) or an async iterator (pulls). When more than `limit` droppable events wait,
 * they are replaced by one `conflate` event, so a slow or stalled consumer costs bounded memory
 * and still converges. Hand-written: stream libraries (Node streams, RxJS) either block the
 * producer or drop blindly; conflating to a snapshot is ours.
 */
export class Subscriber<E> implements AsyncIterableIterator<E> {
  #queue: E[] = [];
  #head = 0;
  #droppable = 0;
  /** Preloaded events at the head of the queue: not counted against the limit, never conflated. */
  #preloaded = 0;
  #listener: Listener<E> | null = null;
  #delivering = false;
  #waiter: ((result: IteratorResult<E>) => void) | null = null;
  #ended = false;
  #closed = false;
  #onClose: (() => void) | null = null;

  constructor(readonly policy: BufferPolicy<E>) {}

  /** Events waiting for the consumer. */
  get buffered(): number {
    return this.#queue.length - this.#head;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Called once when the subscription ends (last event consumed, or closed by the consumer). */
  onClose(callback: () => void): void {
    this.#onClose = callback;
  }

  /** Delivers to `listener` from now on (push mode). */
  listen(listener: Listener<E>): void {
    this.#listener = listener;
    this.#drain();
  }

  push(event: E): void {
    if (this.#ended || this.#closed) return;
    if (this.policy.isLast(event)) this.#ended = true;
    if (this.#waiter !== null) {
      const wake = this.#waiter;
      this.#waiter = null;
      wake({ value: event, done: false });
      if (this.#ended) this.#close();
      return;
    }
    if (this.policy.droppable(event)) {
      if (this.#droppable >= this.policy.limit) {
        this.#conflate(event);
        this.#drain();
        return;
      }
      this.#droppable++;
    }
    this.#queue.push(event);
    this.#drain();
  }

  /**
   * Queues a replay ahead of live events. It is held in full (its size is bounded by what the
   * producer retains), so a consumer that has not read yet still gets all of it.
   */
  preload(events: readonly E[]): void {
    for (const event of events) {
      if (this.#ended || this.#closed) return;
      if (this.policy.isLast(event)) this.#ended = true;
      this.#queue.push(event);
      this.#preloaded++;
    }
    this.#drain();
  }

  /** No more events will come: the subscription ends once what is queued was consumed. */
  end(): void {
    this.#ended = true;
    if (this.buffered === 0) {
      if (this.#waiter !== null) {
        const wake = this.#waiter;
        this.#waiter = null;
        wake({ value: undefined, done: true });
      }
      this.#close();
    }
  }

  /** Ends the subscription without waiting for more events. */
  close(): void {
    this.#ended = true;
    this.#queue = [];
    this.#head = 0;
    this.#droppable = 0;
    this.#preloaded = 0;
    if (this.#waiter !== null) {
      const wake = this.#waiter;
      this.#waiter = null;
      wake({ value: undefined, done: true });
    }
    this.#close();
  }

  next(): Promise<IteratorResult<E>> {
    const event = this.#take();
    if (event !== undefined) {
      if (this.#ended && this.buffered === 0) this.#close();
      return Promise.resolve({ value: event, done: false });
    }
    if (this.#ended || this.#closed) {
      this.#close();
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve) => (this.#waiter = resolve));
  }

  return(): Promise<IteratorResult<E>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #take(): E | undefined {
    if (this.#head === this.#queue.length) return undefined;
    const event = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as E;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.#preloaded > 0) this.#preloaded--;
    else if (this.policy.droppable(event)) this.#droppable--;
    return event;
  }

  #conflate(incoming: E): void {
    const kept: E[] = this.#queue.slice(this.#head, this.#head + this.#preloaded);
    const dropped: E[] = [];
    for (let i = this.#head + this.#preloaded; i < this.#queue.length; i++) {
      const event = this.#queue[i]!;
      (this.policy.droppable(event) ? dropped : kept).push(event);
    }
    dropped.push(incoming);
    const replacement = this.policy.conflate(dropped);
    kept.push(replacement);
    this.#queue = kept;
    this.#head = 0;
    this.#droppable = this.policy.droppable(replacement) ? 1 : 0;
  }

  #drain(): void {
    const listener = this.#listener;
    if (listener === null || this.#delivering) return;
    this.#delivering = true;
    for (;;) {
      const event = this.#take();
      if (event === undefined) break;
      let pending: PromiseLike<unknown> | void = undefined;
      try {
        pending = listener(event);
      } catch (error) {
        this.policy.onListenerError(error);
      }
      if (pending !== undefined && pending !== null && typeof pending.then === 'function') {
        pending.then(
          () => this.#resume(),
          (error: unknown) => {
            this.policy.onListenerError(error);
            this.#resume();
          },
        );
        return;
      }
    }
    this.#delivering = false;
    if (this.#ended) this.#close();
  }

  #resume(): void {
    this.#delivering = false;
    if (this.buffered === 0 && this.#ended) this.#close();
    else this.#drain();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener = null;
    const onClose = this.#onClose;
    this.#onClose = null;
    onClose?.();
  }
}
