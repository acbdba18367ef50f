import { CircuitState } from '../enums.js';
import { InvalidArgumentError, InvalidOptionsError, OrchestratorError } from '../errors.js';
import { BREAKER_DEFAULTS, circuitBreakerSchema, type CircuitBreakerOptions, type ResolvedBreakerOptions } from './breaker-options.js';
import { describeIssue } from '../util/validation.js';

/** A state change of a breaker. */
export interface CircuitTransition {
  from: CircuitState;
  to: CircuitState;
}

/** The default clock: monotonic ms. */
const monotonic = (): number => performance.now();

/**
 * One circuit breaker.
 *
 *   closed ──(failureThreshold consecutive failures)──▶ open
 *   open ──(resetTimeout · 2^(trips-1), capped)──▶ half-open
 *   half-open ──(successThreshold successes)──▶ closed      (trip count reset)
 *   half-open ──(one failure)──▶ open                        (trip count + 1)
 *   any ──isolate()──▶ open, held until reset()
 *
 * The open time is measured by `now` (injectable, so tests drive it); the timer only prompts
 * `check()`, which half-opens when that clock says the time is up.
 *
 * It does not run calls itself: `admits` is read before starting work and `onSuccess` /
 * `onFailure` after, so the orchestrator's router can skip an open agent without calling it.
 * (cockatiel's breaker only wraps calls in `execute()`, closes on one success and admits one
 * probe; opossum is callback-per-call as well. Neither exposes a routing-time check.)
 */
export class CircuitBreaker {
  #state: CircuitState = CircuitState.CLOSED;
  #failures = 0;
  #successes = 0;
  #probes = 0;
  /** Numbers the half-open periods, so a probe's verdict is matched to its own period. */
  #halfOpenPeriod = 0;
  #trips = 0;
  #isolated = false;
  /** When an open circuit may half-open, by `#now`. */
  #openUntil = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #options: ResolvedBreakerOptions;
  readonly #onChange: (transition: CircuitTransition) => void;
  readonly #now: () => number;

  constructor(options: ResolvedBreakerOptions, onChange: (transition: CircuitTransition) => void, now: () => number = monotonic) {
    this.#options = options;
    this.#onChange = onChange;
    this.#now = now;
  }

  get state(): CircuitState {
    return this.#state;
  }

  get isolated(): boolean {
    return this.#isolated;
  }

  /** Consecutive trips since it last closed. */
  get trips(): number {
    return this.#trips;
  }

  /** True when a new call may start now. */
  get admits(): boolean {
    return this.#state === CircuitState.CLOSED || (this.#state === CircuitState.HALF_OPEN && this.#probes < this.#options.halfOpenMaxConcurrent);
  }

  /**
   * Records that a call started. Returns its ticket, to hand back with its verdict: a probe's
   * ticket names the half-open period it belongs to, so that a call started before the circuit
   * opened (or in an earlier half-open period) neither frees a probe place nor counts as a probe.
   */
  onStart(): number {
    if (this.#state !== CircuitState.HALF_OPEN) return 0;
    this.#probes++;
    return this.#halfOpenPeriod;
  }

  /** True when the verdict of a call with `ticket` is a verdict of the current half-open period. */
  #isProbe(ticket: number): boolean {
    return ticket === this.#halfOpenPeriod;
  }

  onSuccess(ticket: number): void {
    if (this.#state === CircuitState.CLOSED) {
      this.#failures = 0;
    } else if (this.#state === CircuitState.HALF_OPEN && this.#isProbe(ticket)) {
      this.#probes = Math.max(0, this.#probes - 1);
      if (++this.#successes >= this.#options.successThreshold) {
        this.#trips = 0;
        this.#move(CircuitState.CLOSED);
      }
    }
  }

  /** A started call ended with no verdict (cancelled): frees its half-open probe place. */
  onAbandon(ticket: number): void {
    if (this.#state === CircuitState.HALF_OPEN && this.#isProbe(ticket)) this.#probes = Math.max(0, this.#probes - 1);
  }

  onFailure(ticket: number): void {
    if (this.#state === CircuitState.CLOSED) {
      if (++this.#failures >= this.#options.failureThreshold) this.#open();
    } else if (this.#state === CircuitState.HALF_OPEN && this.#isProbe(ticket)) {
      this.#probes = Math.max(0, this.#probes - 1);
      this.#open();
    }
  }

  /** Opens the circuit and holds it open until `reset()`. */
  isolate(): void {
    this.#isolated = true;
    this.#clearTimer();
    if (this.#state !== CircuitState.OPEN) this.#move(CircuitState.OPEN);
  }

  /** Closes the circuit now and forgets past failures and trips. */
  reset(): void {
    this.#isolated = false;
    this.#trips = 0;
    this.#clearTimer();
    if (this.#state !== CircuitState.CLOSED) this.#move(CircuitState.CLOSED);
  }

  /** Half-opens an open circuit whose open time is up by the clock (not if isolated). */
  check(): void {
    if (this.#state !== CircuitState.OPEN || this.#isolated || this.#now() < this.#openUntil) return;
    this.#clearTimer();
    this.#halfOpenPeriod++;
    this.#move(CircuitState.HALF_OPEN);
  }

  /** Stops the reset timer (at shutdown). */
  dispose(): void {
    this.#clearTimer();
  }

  #open(): void {
    this.#trips++;
    const { resetTimeout, maxResetTimeout } = this.#options;
    const wait = Math.min(maxResetTimeout, resetTimeout * 2 ** (this.#trips - 1));
    this.#openUntil = this.#now() + wait;
    this.#move(CircuitState.OPEN);
    this.#arm(wait);
  }

  // A timer may fire a little early by the clock: re-arm until the open time is really up.
  #arm(wait: number): void {
    this.#clearTimer();
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#isolated) return;
      const left = this.#openUntil - this.#now();
      if (left > 0) this.#arm(Math.max(1, Math.ceil(left)));
      else this.check();
    }, wait);
    // An open circuit alone does not keep the process alive.
    this.#timer.unref();
  }

  #move(to: CircuitState): void {
    const from = this.#state;
    this.#state = to;
    this.#failures = 0;
    this.#successes = 0;
    this.#probes = 0;
    this.#onChange({ from, to });
  }

  #clearTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

/** Thrown by a standalone breaker's `execute` while its circuit is open. */
export class BrokenCircuitError extends OrchestratorError {
  override readonly name = 'BrokenCircuitError';
  constructor() {
    super('CIRCUIT_OPEN', 'the circuit is open: calls are refused until it half-opens');
  }
}

/** A standalone breaker around async calls. */
export interface StandaloneCircuitBreaker {
  readonly state: CircuitState;
  /** Runs `fn` if the circuit admits a call. @throws BrokenCircuitError when it does not. */
  execute<T>(fn: () => T | Promise<T>): Promise<T>;
  /** Listens to state changes; returns a function that removes the listener. */
  onStateChange(listener: (transition: CircuitTransition) => void): () => void;
  isolate(): void;
  reset(): void;
  /** Clears its timer. */
  dispose(): void;
}

/** Validates breaker options and fills defaults. @throws InvalidOptionsError naming the field. */
export function resolveBreakerOptions(options: CircuitBreakerOptions = {}): ResolvedBreakerOptions {
  const path = 'circuitBreaker';
  const checked = circuitBreakerSchema.safeParse(options);
  if (!checked.success) {
    const { field, detail } = describeIssue(checked.error, options, path);
    throw new InvalidOptionsError(field, detail);
  }
  const resolved = { ...BREAKER_DEFAULTS, ...stripUndefined(options) };
  if (options.maxResetTimeout === undefined) resolved.maxResetTimeout = Math.max(resolved.maxResetTimeout, resolved.resetTimeout);
  if (resolved.maxResetTimeout < resolved.resetTimeout) {
    throw new InvalidOptionsError(`${path}.maxResetTimeout`, `must be ≥ ${path}.resetTimeout (received ${resolved.maxResetTimeout})`);
  }
  return resolved;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Creates a breaker for use outside the orchestrator.
 * @example
 * const breaker = createCircuitBreaker({ failureThreshold: 3, resetTimeout: 1000 });
 * const body = await breaker.execute(() => fetch(url).then((r) => r.text()));
 * @throws InvalidOptionsError naming the field
 */
export function createCircuitBreaker(options?: CircuitBreakerOptions): StandaloneCircuitBreaker {
  return standaloneBreaker(resolveBreakerOptions(options), monotonic);
}

/** `createCircuitBreaker` on a given clock (tests drive the open time with it). */
export function standaloneBreaker(options: ResolvedBreakerOptions, now: () => number): StandaloneCircuitBreaker {
  const listeners = new Set<(transition: CircuitTransition) => void>();
  const breaker = new CircuitBreaker(
    options,
    (transition) => {
      for (const listener of listeners) listener(transition);
    },
    now,
  );
  return {
    get state() {
      return breaker.state;
    },
    async execute<T>(fn: () => T | Promise<T>): Promise<T> {
      // Half-open as soon as the time is up, even if the timer has not run yet.
      breaker.check();
      if (!breaker.admits) throw new BrokenCircuitError();
      const ticket = breaker.onStart();
      try {
        const value = await fn();
        breaker.onSuccess(ticket);
        return value;
      } catch (error) {
        breaker.onFailure(ticket);
        throw error;
      }
    },
    onStateChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    isolate: () => breaker.isolate(),
    reset: () => breaker.reset(),
    dispose: () => breaker.dispose(),
  };
}

/**
 * Wraps an async function in a new circuit breaker.
 * @example
 * const guardedFetch = withCircuitBreaker((url: string) => fetch(url), { failureThreshold: 3 });
 * @throws InvalidArgumentError when `fn` is not a function, InvalidOptionsError naming a bad option
 */
export function withCircuitBreaker<A extends unknown[], T>(
  fn: (...args: A) => T | Promise<T>,
  options?: CircuitBreakerOptions,
): ((...args: A) => Promise<T>) & { breaker: StandaloneCircuitBreaker } {
  if (typeof fn !== 'function') throw new InvalidArgumentError('fn', `must be a function (received ${fn === null ? 'null' : typeof fn})`);
  const breaker = createCircuitBreaker(options);
  return Object.assign((...args: A) => breaker.execute(() => fn(...args)), { breaker });
}
