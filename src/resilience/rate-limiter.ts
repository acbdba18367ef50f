/** At most `max` task starts per `perMs` ms. */
export interface RateLimit {
  max: number;
  perMs: number;
}

/**
 * A token bucket refilled continuously: `max` tokens, one per start, `max / perMs` back per ms.
 * Tasks over the rate are never dropped: the agent just stops admitting until a token is due.
 */
export class TokenBucket {
  #tokens: number;
  #updatedAt: number;
  readonly #ratePerMs: number;

  constructor(readonly limit: RateLimit, private readonly now: () => number) {
    this.#tokens = limit.max;
    this.#updatedAt = now();
    this.#ratePerMs = limit.max / limit.perMs;
  }

  /** Takes a token if one is there. */
  tryTake(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  get hasToken(): boolean {
    this.#refill();
    return this.#tokens >= 1;
  }

  /** ms until the next token. */
  get msUntilToken(): number {
    this.#refill();
    return this.#tokens >= 1 ? 0 : Math.ceil((1 - this.#tokens) / this.#ratePerMs);
  }

  #refill(): void {
    const now = this.now();
    this.#tokens = Math.min(this.limit.max, this.#tokens + (now - this.#updatedAt) * this.#ratePerMs);
    this.#updatedAt = now;
  }
}

