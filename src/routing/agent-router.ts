import type { AgentRole, AssignmentStrategy } from '../enums.js';
import type { RoutingStrategy } from '../options.js';
import type { Agent } from './agent.js';
import { CapabilitySignature, capabilitiesOfKey } from './capability-signature.js';
import { ClassEstimates, Estimate, MAX_TYPES_PER_SIGNATURE, expectedMs } from './estimates.js';

/**
 * Agent registry and capability index. A routing decision scans only the agents of one
 * signature (those whose capabilities include all the task's), never the whole registry.
 */
export class AgentRouter {
  readonly #agents = new Map<string, Agent>();
  readonly #signatures = new Map<string, CapabilitySignature>();
  readonly #strategy: AssignmentStrategy;
  readonly #halfLife: number;
  decisions = 0;

  constructor(strategy: RoutingStrategy) {
    this.#strategy = strategy.name;
    this.#halfLife = strategy.halfLife;
  }

  get size(): number {
    return this.#agents.size;
  }

  get(agentId: string): Agent | undefined {
    return this.#agents.get(agentId);
  }

  agents(): IterableIterator<Agent> {
    return this.#agents.values();
  }

  /** Adds the agent to the candidate list of every known signature it serves. */
  register(agent: Agent): void {
    this.#agents.set(agent.agentId, agent);
    for (const signature of this.#signatures.values()) {
      if (agent.serves(signature.capabilities)) this.#add(signature, agent);
    }
  }

  #add(signature: CapabilitySignature, agent: Agent): void {
    signature.agents.push(agent);
    if (agent.execution.kind === 'thread') signature.threadAgents++;
    if (signature.learning !== null) for (const learning of signature.learning.values()) this.#addEstimate(signature, learning, agent);
  }

  #addEstimate(signature: CapabilitySignature, learning: ClassEstimates, agent: Agent): void {
    const estimate = new Estimate(signature, learning.type);
    learning.byAgent.push(estimate);
    agent.estimates.set(learning, estimate);
  }

  /** Removes the agent everywhere; returns the signatures that lost it. */
  unregister(agent: Agent): CapabilitySignature[] {
    this.#agents.delete(agent.agentId);
    agent.admitting = false;
    const touched: CapabilitySignature[] = [];
    for (const signature of this.#signatures.values()) {
      const index = signature.agents.indexOf(agent);
      if (index >= 0) {
        signature.agents.splice(index, 1);
        if (signature.learning !== null) for (const learning of signature.learning.values()) learning.byAgent.splice(index, 1);
        if (agent.execution.kind === 'thread') signature.threadAgents--;
        touched.push(signature);
      }
    }
    return touched;
  }

  /** The signature for a canonical key, created (and indexed against all agents) on first use. */
  signature(key: string): CapabilitySignature {
    let signature = this.#signatures.get(key);
    if (signature === undefined) {
      signature = new CapabilitySignature(key, capabilitiesOfKey(key));
      if (this.#strategy === 'adaptive') signature.learning = new Map();
      for (const agent of this.#agents.values()) if (agent.serves(signature.capabilities)) this.#add(signature, agent);
      this.#signatures.set(key, signature);
    }
    return signature;
  }

  /** Forgets a signature no live task holds, with what its agents learned of it. */
  forget(signature: CapabilitySignature): void {
    if (this.#signatures.get(signature.key) !== signature) return;
    this.#signatures.delete(signature.key);
    if (signature.learning !== null) for (const agent of signature.agents) for (const learning of signature.learning.values()) agent.estimates.delete(learning);
  }

  /**
   * Picks an available agent for a task of this signature, or null when every capable agent is
   * at `maxConcurrent`, not admitting, or of a kind with no free worker (`inlineOk`, `threadOk`).
   * A preferred role wins when one of that role is free.
   */
  select(signature: CapabilitySignature, type: string, preferredRole: AgentRole | undefined, inlineOk: boolean, threadOk: boolean): Agent | null {
    const agents = signature.agents;
    if (agents.length === 0) return null;
    this.decisions++;
    const learning = signature.learning === null ? null : this.#class(signature, signature.learning, type);
    if (preferredRole !== undefined) {
      const preferred = this.#pick(signature, learning, agents, preferredRole, inlineOk, threadOk);
      if (preferred !== null) return preferred;
    }
    return this.#pick(signature, learning, agents, undefined, inlineOk, threadOk);
  }

  /** Learns a judged run of `agent` on a task of `signature` and `type` (adaptive only; a run of an agent since unregistered teaches nothing). */
  learn(agent: Agent, signature: CapabilitySignature, type: string, ok: boolean, durationMs: number): void {
    if (signature.learning === null || !agent.registered) return;
    const learning = this.#class(signature, signature.learning, type);
    const estimate = agent.estimates.get(learning);
    if (estimate !== undefined) learning.learn(estimate, ok, durationMs, signature.agents.length);
  }

  /** The class of `type` on `signature`, created with an estimate per candidate on first use. */
  #class(signature: CapabilitySignature, classes: Map<string, ClassEstimates>, type: string): ClassEstimates {
    let learning = classes.get(type) ?? classes.get(OTHER_TYPES);
    if (learning === undefined) {
      const own = classes.size < MAX_TYPES_PER_SIGNATURE - 1;
      learning = new ClassEstimates(this.#halfLife, own ? type : null);
      classes.set(own ? type : OTHER_TYPES, learning);
      for (const agent of signature.agents) this.#addEstimate(signature, learning, agent);
    }
    return learning;
  }

  /** True when `select` would find an agent (asked without moving any cursor). */
  canServe(signature: CapabilitySignature, inlineOk: boolean, threadOk: boolean): boolean {
    const agents = signature.agents;
    for (let i = 0; i < agents.length; i++) if (eligible(agents[i]!, undefined, inlineOk, threadOk)) return true;
    return false;
  }

  #pick(signature: CapabilitySignature, learning: ClassEstimates | null, agents: Agent[], role: AgentRole | undefined, inlineOk: boolean, threadOk: boolean): Agent | null {
    const n = agents.length;
    switch (this.#strategy) {
      case 'least-busy': {
        // Scan from a rotating start so ties spread over equally loaded agents.
        const start = signature.cursor % n;
        let best: Agent | null = null;
        let bestLoad = Infinity;
        for (let i = 0; i < n; i++) {
          const agent = agents[(start + i) % n]!;
          if (!eligible(agent, role, inlineOk, threadOk)) continue;
          const load = agent.active / agent.maxConcurrent;
          if (load < bestLoad) {
            best = agent;
            bestLoad = load;
            if (load === 0) break;
          }
        }
        if (best !== null) signature.cursor = start + 1;
        return best;
      }
      case 'round-robin':
        return this.#firstAvailableFrom(signature, agents, signature.cursor % n, role, inlineOk, threadOk);
      case 'random':
        return this.#firstAvailableFrom(signature, agents, Math.floor(Math.random() * n), role, inlineOk, threadOk);
      case 'adaptive':
        return this.#fastest(signature, learning!, agents, role, inlineOk, threadOk);
    }
  }

  /** The available agent expected to deliver a successful result soonest (see `expectedMs`); ties go to the first from a rotating start. */
  #fastest(signature: CapabilitySignature, learning: ClassEstimates, agents: Agent[], role: AgentRole | undefined, inlineOk: boolean, threadOk: boolean): Agent | null {
    const n = agents.length;
    const estimates = learning.byAgent;
    const start = signature.cursor % n;
    let best: Agent | null = null;
    let bestMs = Infinity;
    for (let i = 0; i < n; i++) {
      const index = (start + i) % n;
      const agent = agents[index]!;
      if (!eligible(agent, role, inlineOk, threadOk)) continue;
      const ms = expectedMs(estimates[index]!, learning, agent.active, agent.maxConcurrent);
      // A busy agent that never succeeded scores Infinity: still better than none.
      if (ms < bestMs || best === null) {
        best = agent;
        bestMs = ms;
        if (ms === 0) break;
      }
    }
    if (best !== null) signature.cursor = start + 1;
    return best;
  }

  #firstAvailableFrom(signature: CapabilitySignature, agents: Agent[], start: number, role: AgentRole | undefined, inlineOk: boolean, threadOk: boolean): Agent | null {
    const n = agents.length;
    for (let i = 0; i < n; i++) {
      const index = (start + i) % n;
      const agent = agents[index]!;
      if (!eligible(agent, role, inlineOk, threadOk)) continue;
      signature.cursor = index + 1;
      return agent;
    }
    return null;
  }
}

/** The key of the class that types past `MAX_TYPES_PER_SIGNATURE` share (no task type is empty). */
const OTHER_TYPES = '';

function eligible(agent: Agent, role: AgentRole | undefined, inlineOk: boolean, threadOk: boolean): boolean {
  return (
    agent.admitting &&
    agent.active < agent.maxConcurrent &&
    (agent.execution.kind === 'inline' ? inlineOk : threadOk) &&
    (role === undefined || agent.role === role)
  );
}
