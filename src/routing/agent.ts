import type { AgentRole, CircuitState } from '../enums.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';
import type { RateLimit, StartRateLimiter } from '../resilience/rate-limiter.js';
import type { AgentHandler, AgentInfo, LearnedFigures } from '../types.js';
import type { ClassEstimates, Estimate } from './estimates.js';

/** How an agent's work runs: an in-process async handler, or a module in worker threads. */
export type AgentExecution = { kind: 'inline'; handler: AgentHandler } | { kind: 'thread'; module: string };

/** A registered agent and its live load. */
export class Agent {
  readonly capabilitySet: ReadonlySet<string>;
  /** Tasks running on this agent now (and on earlier registrations of its id: see `successor`). */
  active = 0;
  /**
   * The registration of the same id made after this one was removed while its runs went on:
   * those runs count against the successor's `maxConcurrent` too, until they end.
   */
  successor: Agent | null = null;
  completed = 0;
  failed = 0;
  /**
   * False while something other than load keeps the agent from taking new tasks (unregistered,
   * circuit open, rate limit spent). One flag, so a routing decision reads one field.
   */
  admitting = true;
  registered = true;
  /** Rate limit: false while no start is allowed; `rateTimer` turns it back on when one is due. */
  mayStart = true;
  rateTimer: NodeJS.Timeout | null = null;
  /** With the adaptive strategy: what was learned of this agent per class (signature and type) it serves. */
  readonly estimates = new Map<ClassEstimates, Estimate>();

  constructor(
    readonly agentId: string,
    readonly role: AgentRole,
    readonly capabilities: readonly string[],
    readonly maxConcurrent: number,
    readonly execution: AgentExecution,
    readonly breaker: CircuitBreaker | null,
    readonly limiter: StartRateLimiter | null,
  ) {
    this.capabilitySet = new Set(capabilities);
  }

  refreshAdmission(): void {
    this.admitting = this.registered && this.mayStart && (this.breaker === null || this.breaker.admits);
  }

  serves(capabilities: readonly string[]): boolean {
    for (const capability of capabilities) if (!this.capabilitySet.has(capability)) return false;
    return true;
  }

  info(): AgentInfo {
    return {
      agentId: this.agentId,
      role: this.role,
      capabilities: this.capabilities,
      maxConcurrent: this.maxConcurrent,
      execution: this.execution.kind,
      active: this.active,
      completed: this.completed,
      failed: this.failed,
      circuitState: (this.breaker?.state ?? 'closed') as CircuitState,
      circuitTrips: this.breaker?.trips ?? 0,
      isolated: this.breaker?.isolated ?? false,
      rateLimit: this.limiter?.limit ?? null,
      rateLimited: !this.mayStart,
      learned: this.#learned(),
    };
  }

  #learned(): LearnedFigures[] {
    const learned: LearnedFigures[] = [];
    for (const e of this.estimates.values()) {
      if (e.samples > 0) learned.push({ capabilities: e.signature.capabilities, type: e.type, meanMs: e.meanMs, successRate: e.successRate, samples: e.samples });
    }
    return learned;
  }
}

export type { RateLimit };
