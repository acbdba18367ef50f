import { z } from 'zod';
import { count, ms } from '../util/schema.js';

/** Options of a circuit breaker. All durations in ms. */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. @default 5 */
  failureThreshold?: number;
  /** Successes in half-open state that close it. @default 2 */
  successThreshold?: number;
  /** Time open before probes are let through. Doubles on each consecutive trip. @default 30000 */
  resetTimeout?: number;
  /** Longest open time however often it trips. @default 300000 */
  maxResetTimeout?: number;
  /** Probes running at once while half-open. @default 1 */
  halfOpenMaxConcurrent?: number;
}

export type ResolvedBreakerOptions = Required<CircuitBreakerOptions>;

export const BREAKER_DEFAULTS: ResolvedBreakerOptions = {
  failureThreshold: 5,
  successThreshold: 2,
  resetTimeout: 30_000,
  maxResetTimeout: 300_000,
  halfOpenMaxConcurrent: 1,
};

export const circuitBreakerSchema = z.strictObject({
  failureThreshold: count(1).optional(),
  successThreshold: count(1).optional(),
  resetTimeout: ms('open time before a probe').optional(),
  maxResetTimeout: ms('longest open time').optional(),
  halfOpenMaxConcurrent: count(1).optional(),
});
