import { CircuitState, type AgentRole } from '../enums.js';
import { AgentNotFoundError, DuplicateAgentError, InvalidOptionsError } from '../errors.js';
import type { RoutingStrategy } from '../options.js';
import type { SignatureIndex } from '../queue/lanes.js';
import type { Demand } from '../queue/work-source.js';
import { CircuitBreaker } from '../resilience/circuit-breaker.js';
import type { ResolvedBreakerOptions } from '../resilience/breaker-options.js';
import { StartRateLimiter, type RateLimit } from '../resilience/rate-limiter.js';
import type { AgentInfo } from '../types.js';
import { Agent, type AgentExecution } from './agent.js';
import { AgentRouter } from './agent-router.js';
import type { CapabilitySignature } from './capability-signature.js';

/** Whether the pool has a worker for each kind of agent now. */
export interface WorkerCapacity {
  readonly inlineAvailable: boolean;
  readonly threadAvailable: boolean;
}

/** What the directory reports: agent events for listeners and the audit trail, and when dispatch should run. */
export interface AgentDirectoryHost {
  agentRegistered(agent: Agent): void;
  agentUnregistered(agentId: string): void;
  circuitChanged(agentId: string, from: CircuitState, to: CircuitState): void;
  /** An agent became able to take work (registered, circuit closing, rate limit lifted). */
  wake(): void;
}

/** An agent as `registerAgent` validated it. */
export interface AgentDefinition {
  agentId: string;
  role: AgentRole;
  capabilities: readonly string[];
  maxConcurrent: number;
  execution: AgentExecution;
  rateLimit: RateLimit | undefined;
}

/** The outcome of a run, as the agent's breaker counts it. */
export type RunVerdict = 'success' | 'failure' | 'abandoned';

/**
 * The registered agents and their admission: each agent's circuit breaker and rate limit decide
 * whether it takes new work; its load decides whether it has room. Exposes what dispatch can
 * serve (`canServe`, pure) and picks the agent for a task (`select`).
 */
export class AgentDirectory implements Demand, SignatureIndex {
  readonly #router: AgentRouter;
  readonly #breaker: (ResolvedBreakerOptions & { enabled: boolean }) | null;
  readonly #capacity: WorkerCapacity;
  readonly #host: AgentDirectoryHost;
  readonly #clock: () => number;
  /** Agents removed while runs of theirs went on, by id (their runs still count under that id). */
  readonly #departed = new Map<string, Agent>();

  constructor(strategy: RoutingStrategy, breaker: ResolvedBreakerOptions & { enabled: boolean }, capacity: WorkerCapacity, host: AgentDirectoryHost, clock: () => number) {
    this.#router = new AgentRouter(strategy);
    this.#breaker = breaker.enabled ? breaker : null;
    this.#capacity = capacity;
    this.#host = host;
    this.#clock = clock;
  }

  get size(): number {
    return this.#router.size;
  }

  get routingDecisions(): number {
    return this.#router.decisions;
  }

  /** The signature of a canonical capability key, indexed against every agent. */
  signature(key: string): CapabilitySignature {
    return this.#router.signature(key);
  }

  forgetSignature(signature: CapabilitySignature): void {
    this.#router.forget(signature);
  }

  register(definition: AgentDefinition): Agent {
    if (this.#router.get(definition.agentId) !== undefined) throw new DuplicateAgentError(definition.agentId);
    let agent: Agent | null = null;
    const breaker = this.#breaker === null ? null : new CircuitBreaker(this.#breaker, (transition) => this.#onCircuitChange(agent!, transition.from, transition.to), this.#clock);
    const limiter = definition.rateLimit === undefined ? null : new StartRateLimiter(definition.rateLimit, this.#clock);
    agent = new Agent(definition.agentId, definition.role, definition.capabilities, definition.maxConcurrent, definition.execution, breaker, limiter);
    // The id's previous registration still has runs going: they take slots of the id's new limit.
    const previous = this.#departed.get(definition.agentId);
    if (previous !== undefined) {
      this.#departed.delete(definition.agentId);
      previous.successor = agent;
      agent.active = previous.active;
    }
    this.#router.register(agent);
    this.#host.agentRegistered(agent);
    this.#host.wake();
    return agent;
  }

  /** Removes an agent (its running tasks finish); returns the signatures that lost it. */
  unregister(agentId: string): CapabilitySignature[] {
    const agent = this.require(agentId);
    agent.registered = false;
    if (agent.active > 0) this.#departed.set(agentId, agent);
    this.#dispose(agent);
    const touched = this.#router.unregister(agent);
    this.#host.agentUnregistered(agentId);
    return touched;
  }

  get(agentId: string): Agent | undefined {
    return this.#router.get(agentId);
  }

  require(agentId: string): Agent {
    const agent = this.#router.get(agentId);
    if (agent === undefined) throw new AgentNotFoundError(agentId);
    return agent;
  }

  agents(): IterableIterator<Agent> {
    return this.#router.agents();
  }

  list(): AgentInfo[] {
    return Array.from(this.#router.agents(), (agent) => agent.info());
  }

  countByRole(): Partial<Record<AgentRole, number>> {
    const byRole: Partial<Record<AgentRole, number>> = {};
    for (const agent of this.#router.agents()) byRole[agent.role] = (byRole[agent.role] ?? 0) + 1;
    return byRole;
  }

  /** The distinct capability sets of the agents that take work now (circuit not open, rate limit not spent). */
  admittingCapabilitySets(): (readonly string[])[] {
    const sets = new Map<string, readonly string[]>();
    for (const agent of this.#router.agents()) if (agent.admitting) sets.set(agent.capabilities.join('\u0000'), agent.capabilities);
    return [...sets.values()];
  }

  /** Tasks the admitting agents could take on now (their free slots, all together). */
  freeSlots(): number {
    let free = 0;
    for (const agent of this.#router.agents()) if (agent.admitting) free += Math.max(0, agent.maxConcurrent - agent.active);
    return free;
  }

  canServe(signature: CapabilitySignature): boolean {
    const capacity = this.#capacity;
    return this.#router.canServe(signature, capacity.inlineAvailable, capacity.threadAvailable);
  }

  /** The agent for a task of this signature, or null when none can take it now. */
  select(signature: CapabilitySignature, type: string, preferredRole: AgentRole | undefined): Agent | null {
    const capacity = this.#capacity;
    return this.#router.select(signature, type, preferredRole, capacity.inlineAvailable, capacity.threadAvailable);
  }

  /** Counts a run starting on `agent` at `startedAt`; returns the breaker's ticket for the run (non-zero for a half-open probe). */
  runStarted(agent: Agent, startedAt: number): number {
    agent.active++;
    let ticket = 0;
    const breaker = agent.breaker;
    if (breaker !== null && breaker.state !== CircuitState.CLOSED) {
      ticket = breaker.onStart();
      agent.refreshAdmission();
    }
    const limiter = agent.limiter;
    if (limiter !== null && !limiter.recordStart(startedAt)) {
      agent.mayStart = false;
      agent.refreshAdmission();
      this.#armRateTimer(agent, limiter);
    }
    return ticket;
  }

  /** The run gave its agent slot back: on its agent, and on the later registrations of its id. */
  runReleased(agent: Agent): void {
    for (let holder: Agent | null = agent; holder !== null; holder = holder.successor) {
      holder.active--;
      if (holder.active === 0 && this.#departed.get(holder.agentId) === holder) this.#departed.delete(holder.agentId);
    }
  }

  /**
   * The run's verdict, for the agent's counters and breaker, and for what routing learns of the
   * agent: a success or failure (timeouts included) on a task of `signature` after `durationMs`.
   * An abandoned run (cancelled) teaches nothing.
   */
  runJudged(agent: Agent, ticket: number, verdict: 'abandoned'): void;
  runJudged(agent: Agent, ticket: number, verdict: 'success' | 'failure', signature: CapabilitySignature, type: string, durationMs: number): void;
  runJudged(agent: Agent, ticket: number, verdict: RunVerdict, signature?: CapabilitySignature, type = '', durationMs = 0): void {
    const breaker = agent.breaker;
    if (verdict === 'success') agent.completed++;
    else if (verdict === 'failure') agent.failed++;
    if (signature !== undefined) this.#router.learn(agent, signature, type, verdict === 'success', durationMs);
    if (breaker === null) return;
    if (verdict === 'success') breaker.onSuccess(ticket);
    else if (verdict === 'failure') breaker.onFailure(ticket);
    else breaker.onAbandon(ticket);
    // A half-open breaker admits again once a probe ends without closing or reopening it.
    if (breaker.state === CircuitState.HALF_OPEN && !agent.admitting) {
      agent.refreshAdmission();
      if (agent.admitting) this.#host.wake();
    }
  }

  /** Closes an agent's circuit by hand. */
  resetCircuit(agentId: string): void {
    this.require(agentId).breaker?.reset();
    this.#host.wake();
  }

  /** Opens an agent's circuit by hand and holds it open until `resetCircuit`. */
  isolate(agentId: string): void {
    const agent = this.require(agentId);
    if (agent.breaker === null) throw new InvalidOptionsError('circuitBreaker.enabled', 'is false: agents have no circuit breaker to isolate');
    agent.breaker.isolate();
  }

  /** Stops every agent's timers (at shutdown). */
  close(): void {
    for (const agent of this.#router.agents()) this.#dispose(agent);
  }

  #onCircuitChange(agent: Agent, from: CircuitState, to: CircuitState): void {
    agent.refreshAdmission();
    this.#host.circuitChanged(agent.agentId, from, to);
    if (to !== CircuitState.OPEN) this.#host.wake();
  }

  // Timers may fire a little early by the monotonic clock: re-arm until the start is really due.
  #armRateTimer(agent: Agent, limiter: StartRateLimiter): void {
    agent.rateTimer = setTimeout(() => {
      agent.rateTimer = null;
      if (!agent.registered) return;
      if (!limiter.canStart) return this.#armRateTimer(agent, limiter);
      agent.mayStart = true;
      agent.refreshAdmission();
      this.#host.wake();
    }, Math.max(1, Math.ceil(limiter.msUntilStart)));
    agent.rateTimer.unref();
  }

  #dispose(agent: Agent): void {
    agent.breaker?.dispose();
    if (agent.rateTimer !== null) clearTimeout(agent.rateTimer);
    agent.rateTimer = null;
    agent.refreshAdmission();
  }
}
