/** At most `max` task starts per `perMs` ms. */
export interface RateLimit {
  max: number;
  perMs: number;
}

/**
 * A sliding-window log of start times: a start is allowed when fewer than `max` starts happened
 * in the last `perMs` ms, so no window of `perMs` ever holds more than `max` (a token bucket
 * lets up to 2·max − 1 through across a refill). The log holds only starts inside the window,
 * in a ring that grows as needed, so a huge `max` costs memory only for starts that happen.
 * Tasks over the rate are never dropped: the agent just stops admitting until a start is due.
 */
export class StartRateLimiter {
  #times = new Float64Array(8);
  #oldest = 0;
  #count = 0;

  constructor(readonly limit: RateLimit, private readonly now: () => number) {}

  /**
   * Records a start at `now` (the caller's clock reading, so a start costs no extra one).
   * Returns whether a further start is allowed at `now`.
   */
  recordStart(now: number): boolean {
    this.#expire(now);
    if (this.#count === this.#times.length) this.#grow();
    this.#times[(this.#oldest + this.#count) % this.#times.length] = now;
    this.#count++;
    return this.#count < this.limit.max;
  }

  get canStart(): boolean {
    this.#expire(this.now());
    return this.#count < this.limit.max;
  }

  /** ms until the next start is allowed (0 if it is now). */
  get msUntilStart(): number {
    const now = this.now();
    this.#expire(now);
    return this.#count < this.limit.max ? 0 : this.#times[this.#oldest]! + this.limit.perMs - now;
  }

  #expire(now: number): void {
    const horizon = now - this.limit.perMs;
    const times = this.#times;
    while (this.#count > 0 && times[this.#oldest]! <= horizon) {
      this.#oldest = (this.#oldest + 1) % times.length;
      this.#count--;
    }
  }

  #grow(): void {
    const grown = new Float64Array(Math.min(this.#times.length * 2, Math.max(this.limit.max, this.#times.length + 1)));
    for (let i = 0; i < this.#count; i++) grown[i] = this.#times[(this.#oldest + i) % this.#times.length]!;
    this.#times = grown;
    this.#oldest = 0;
  }
}
