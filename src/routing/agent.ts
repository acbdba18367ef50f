import type { AgentRole } from '../enums.js';
import type { AgentHandler, AgentInfo } from '../types.js';

/** A registered agent and its live load. */
export class Agent {
  readonly capabilitySet: ReadonlySet<string>;
  /** Tasks running on this agent now. */
  active = 0;
  completed = 0;
  failed = 0;
  /**
   * False while something other than load keeps the agent from taking new tasks
   * (unregistered, circuit open, rate limit spent). Kept as one flag so routing reads one field.
   */
  admitting = true;

  constructor(
    readonly agentId: string,
    readonly role: AgentRole,
    readonly capabilities: readonly string[],
    readonly maxConcurrent: number,
    readonly handler: AgentHandler,
  ) {
    this.capabilitySet = new Set(capabilities);
  }

  get available(): boolean {
    return this.admitting && this.active < this.maxConcurrent;
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
      active: this.active,
      completed: this.completed,
      failed: this.failed,
    };
  }
}
