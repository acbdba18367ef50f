import { InvalidArgumentError, isOrchestratorError } from '../errors.js';
import type { RetryPolicy } from '../index.js';
import type { WorkflowErrorInfo } from './types.js';

/** Turns anything thrown into an Error (the original kept as `cause` when it was not one); never throws. */
export function toError(thrown: unknown): Error {
  try {
    if (thrown instanceof Error) return thrown;
  } catch {
    // A Proxy whose prototype cannot be read: described below.
  }
  let described: string;
  try {
    described = String(thrown);
  } catch {
    described = `a value that cannot be converted to a string (${typeof thrown})`;
  }
  return new Error(typeof thrown === 'string' ? thrown : `non-error thrown: ${described}`, { cause: thrown });
}

/** The code reported for an error: its own string `code`, or TASK_FAILED. */
export function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'TASK_FAILED';
}

/** An error as plain data, the way a run's result keeps it. */
export function errorInfo(thrown: unknown): WorkflowErrorInfo {
  const error = toError(thrown);
  return { name: error.name, message: error.message, code: codeOf(error) };
}

/** An Error rebuilt from its plain form (a step's error read back from the store). */
export function errorFromInfo(info: { name?: string; message?: string; code?: string } | undefined, fallback: string): Error {
  const error = new Error(info?.message ?? fallback);
  if (info?.name !== undefined) error.name = info.name;
  if (info?.code !== undefined) Object.assign(error, { code: info.code });
  return error;
}

export function hasCode(error: unknown, code: string): boolean {
  return isOrchestratorError(error) && error.code === code;
}

// The engine cancels every task at shutdown with a reason that starts so (`TaskCancelledError.reason`).
const SHUTDOWN_REASON = 'the orchestrator shut down';

/** True for the cancellation a shutdown gives running tasks (not a cancel by a caller). */
export function isShutdownReason(reason: unknown): boolean {
  if (typeof reason === 'string') return reason.startsWith(SHUTDOWN_REASON);
  return hasCode(reason, 'TASK_CANCELLED') && typeof (reason as { reason?: unknown }).reason === 'string' && (reason as { reason: string }).reason.startsWith(SHUTDOWN_REASON);
}

/** Retry policy of a function step: one try unless the step sets `retry`. */
export function functionRetryPolicy(retry: Partial<RetryPolicy> | undefined): RetryPolicy {
  return { maxAttempts: 1, initialDelay: 100, factor: 2, maxDelay: 30_000, jitter: 0.2, ...retry };
}

/** Delay before attempt `next` (≥ 2), as the orchestrator computes it. */
export function backoff(policy: RetryPolicy, next: number): number {
  const base = Math.min(policy.maxDelay, policy.initialDelay * policy.factor ** (next - 2));
  return Math.max(0, Math.round(base * (1 - policy.jitter * Math.random())));
}

/** Resolves after `ms`, or at once when `signal` aborts (the timer cleared either way). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * An abort controller made only when its signal is first read (creating one costs more than a
 * whole function step); aborting before that is remembered.
 */
export class LazyAbort {
  #controller: AbortController | null = null;
  #aborted = false;
  #reason: unknown = undefined;

  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

/** @throws InvalidArgumentError (field `runId`) unless `runId` is a non-empty string */
export function requireRunId(runId: unknown): void {
  if (typeof runId !== 'string' || runId.length === 0) throw new InvalidArgumentError('runId', 'must be a non-empty string');
}
