import type { Agent } from './agent.js';
import type { ClassEstimates } from './estimates.js';

/**
 * One distinct set of required capabilities, with the agents able to serve it.
 * Tasks sharing a signature share routing work: the candidate list is computed once,
 * when the signature is first seen or an agent (un)registers, never per task.
 */
export class CapabilitySignature {
  readonly agents: Agent[] = [];
  /** Where the next round-robin (and least-busy or adaptive tie-break) scan starts. */
  cursor = 0;
  /** Agents in `agents` that run in worker threads: payloads of such tasks must be cloneable. */
  threadAgents = 0;
  /** What the adaptive strategy learned of each agent in `agents`, per task type (null with the other strategies). */
  learning: Map<string, ClassEstimates> | null = null;

  constructor(
    readonly key: string,
    readonly capabilities: readonly string[],
  ) {}
}

const SEPARATOR = '\u0000';

/** Canonical key of a capability list: order and duplicates do not matter. */
export function signatureKey(capabilities: readonly string[]): string {
  if (capabilities.length === 0) return '';
  if (capabilities.length === 1) return capabilities[0]!;
  return [...new Set(capabilities)].sort().join(SEPARATOR);
}

export function capabilitiesOfKey(key: string): readonly string[] {
  return Object.freeze(key === '' ? [] : key.split(SEPARATOR));
}
