/** A mistake in how porch was called (a flag, a value, the agents file): one line on stderr, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Exit codes of porch. */
export const EXIT = {
  ok: 0,
  /** A task failed, a task was not found, the store failed, … */
  failed: 1,
  /** A bad flag, value or agents file. */
  usage: 2,
  /** Stopped by SIGINT (128 + 2). */
  interrupted: 130,
} as const;
