import type { RetryPolicy } from '../types.js';

/** Delay before `nextAttempt` (≥ 2): exponential, capped, with up to `jitter` of it randomised away. */
export function retryDelay(policy: RetryPolicy, nextAttempt: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxDelay, policy.initialDelay * policy.factor ** (nextAttempt - 2));
  return Math.round(base * (1 - policy.jitter * random()));
}
