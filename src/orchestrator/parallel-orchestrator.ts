import { AgentNotFoundError } from '../errors.js';
import { resolveOptions, type OrchestratorOptions } from '../options.js';
import type { AuditEvent, AuditQuery } from '../persistence/store.js';
import type { TaskObservable } from '../streaming/task-observable.js';
import type { Unsubscribe } from '../util/emitter.js';
import type { AgentInfo, AgentSpec, DeadLetter, EventStreamOptions, OrchestratorEvents, OrchestratorStreamItem, TaskSpec } from '../types.js';
import { Engine } from './engine.js';
import type { OrchestratorStats, TaskInfo } from './stats.js';

/** Options of `shutdown()`. */
export interface ShutdownOptions {
  /** Let queued and running tasks finish first (up to `timeout`). @default true */
  graceful?: boolean;
  /** Longest graceful wait in ms; what is left is then cancelled. @default 30000 */
  timeout?: number;
}

/**
 * Runs tasks on registered agents: a priority queue feeds a bounded pool of execution
 * slots, routing each task to an agent with all its capabilities.
 *
 * @example
 * const orchestrator = createParallelOrchestrator({ workerPool: { maxWorkers: 4 } });
 * await orchestrator.start();
 * orchestrator.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: ['x'], handler: async (task) => task.payload });
 * const { result } = await orchestrator.submit({ type: 'echo', capabilities: ['x'], payload: 42 }).result();
 * await orchestrator.shutdown();
 */
export class ParallelOrchestrator {
  readonly #engine: Engine;

  /** @throws InvalidOptionsError naming the first invalid option. */
  constructor(options?: OrchestratorOptions) {
    this.#engine = new Engine(resolveOptions(options));
  }

  /**
   * Opens the store and starts dispatching. With a durable store, tasks a previous process left
   * unfinished are queued again first (they wait for a capable agent). Tasks submitted before
   * `start()` wait in the queue. Idempotent.
   * @throws StoreError when the store cannot be opened (a corrupt, locked or newer database)
   */
  start(): Promise<void> {
    return this.#engine.start();
  }

  /**
   * Stops accepting tasks. Graceful: waits up to `timeout` for queued and running tasks, then
   * cancels the rest. Forced: cancels everything now (running handlers see their signal abort).
   * Afterwards no timer or listener of the orchestrator remains. Idempotent.
   */
  shutdown(options: ShutdownOptions = {}): Promise<void> {
    return this.#engine.shutdown(options.graceful ?? true, options.timeout ?? 30_000);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  /**
   * Registers an agent; queued tasks it can serve may start at once.
   * @throws InvalidAgentError, DuplicateAgentError
   */
  registerAgent(spec: AgentSpec): AgentInfo {
    return this.#engine.registerAgent(spec);
  }

  /** Removes an agent. Its running tasks finish; queued tasks go to other agents or fail with `NoCapableAgentError`. */
  unregisterAgent(agentId: string): void {
    this.#engine.unregisterAgent(agentId);
  }

  getAgent(agentId: string): AgentInfo | undefined {
    return this.#engine.getAgent(agentId);
  }

  listAgents(): AgentInfo[] {
    return this.#engine.listAgents();
  }

  /** An agent's load, counters, circuit state and rate-limit state. @throws AgentNotFoundError */
  getAgentState(agentId: string): AgentInfo {
    const info = this.#engine.getAgent(agentId);
    if (info === undefined) throw new AgentNotFoundError(agentId);
    return info;
  }

  /** Closes an agent's circuit now and forgets its failures. @throws AgentNotFoundError */
  resetCircuit(agentId: string): void {
    this.#engine.resetCircuit(agentId);
  }

  /** Opens an agent's circuit and holds it open (no new tasks) until `resetCircuit`. @throws AgentNotFoundError */
  isolateAgent(agentId: string): void {
    this.#engine.isolateAgent(agentId);
  }

  /**
   * Queues a task and returns its observable at once; the task never starts inside this call,
   * so listeners added right after it miss nothing.
   * @throws InvalidTaskError naming the field, QueueFullError, DuplicateTaskError, OrchestratorShutdownError
   */
  submit<R = unknown, S = unknown>(spec: TaskSpec): TaskObservable<R, S> {
    return this.#engine.submit(spec) as TaskObservable<R, S>;
  }

  /** Like `submit`, but waits for room when the queue is full (backpressure). Rejects with `AbortedError` if `signal` aborts first. */
  submitAsync<R = unknown, S = unknown>(spec: TaskSpec, options: { signal?: AbortSignal } = {}): Promise<TaskObservable<R, S>> {
    return this.#engine.submitAsync(spec, options.signal) as Promise<TaskObservable<R, S>>;
  }

  /** Cancels a queued, retrying or running task. Returns false if the task is not live. */
  cancel(taskId: string, reason = 'cancelled by caller'): boolean {
    return this.#engine.cancel(taskId, reason);
  }

  /** Saves a checkpoint for a live or dead-lettered task; its next run gets it as `ctx.resumeState`. Resolves once the store committed it; rejects with TaskNotFoundError for an unknown task. */
  checkpoint(taskId: string, state: unknown): Promise<void> {
    return this.#engine.checkpointTask(taskId, state);
  }

  /** The latest checkpoint of a task, or null. Checkpoints of completed tasks are released. */
  resumeFromCheckpoint<S = unknown>(taskId: string): S | null {
    return this.#engine.resumeFromCheckpoint(taskId) as S | null;
  }

  /** Tasks whose attempts ran out, oldest first. */
  deadLetters(): DeadLetter[] {
    return this.#engine.deadLetters();
  }

  /** Submits a dead-lettered task again with the same id and a fresh attempt count. @throws TaskNotFoundError */
  requeueDeadLetter<R = unknown, S = unknown>(taskId: string): TaskObservable<R, S> {
    return this.#engine.requeueDeadLetter(taskId) as TaskObservable<R, S>;
  }

  /** A task's state: live, or finished within `streaming.retainCompletedMs`; else undefined. */
  getTask(taskId: string): TaskInfo | undefined {
    return this.#engine.getTask(taskId);
  }

  /**
   * The observable of a live task, or of one finished within `streaming.retainCompletedMs`
   * (a late subscriber then gets its final snapshot and result); else undefined.
   */
  observe<R = unknown, S = unknown>(taskId: string): TaskObservable<R, S> | undefined {
    return this.#engine.observe(taskId) as TaskObservable<R, S> | undefined;
  }

  /**
   * Every orchestrator event with a global sequence, as an async iterable, for dashboards and
   * logs. From the first call on, the last `streaming.eventHistory` events are held, so a consumer
   * can resume with `fromSequence` (the sequence after the last one it saw). A consumer more than
   * `streaming.backpressureThreshold` events behind gets a `stream:gap` item in place of the
   * events it missed. Ends after `orchestrator:shutdown`, or when `signal` aborts.
   */
  events(options: EventStreamOptions = {}): AsyncIterableIterator<OrchestratorStreamItem> {
    return this.#engine.streamEvents(options);
  }

  /**
   * Resolves once every write so far (submitted tasks, transitions, checkpoints, audit entries)
   * is committed to the store: after `await flush()`, a crash loses none of them. The memory
   * store resolves at once. Rejects with StoreError if a commit failed.
   */
  flush(): Promise<void> {
    return this.#engine.flush();
  }

  /** The audit trail of one task, oldest first (submitted, started, checkpoints, retries, its end, ...). */
  history(taskId: string): AuditEvent[] {
    return this.#engine.history(taskId);
  }

  /** Pages through the whole audit trail: entries after `since` (an entry's `seq`), at most `limit`, of one `type` if given. */
  audit(query: AuditQuery = {}): AuditEvent[] {
    return this.#engine.audit(query);
  }

  getStats(): OrchestratorStats {
    return this.#engine.getStats();
  }

  /** Resolves once no task is queued, running or waiting for a retry. */
  onIdle(): Promise<void> {
    return this.#engine.onIdle();
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof OrchestratorEvents>(event: K, listener: (payload: OrchestratorEvents[K]) => void): Unsubscribe {
    return this.#engine.events.on(event, listener);
  }

  once<K extends keyof OrchestratorEvents>(event: K, listener: (payload: OrchestratorEvents[K]) => void): Unsubscribe {
    return this.#engine.events.once(event, listener);
  }

  off<K extends keyof OrchestratorEvents>(event: K, listener: (payload: OrchestratorEvents[K]) => void): void {
    this.#engine.events.off(event, listener);
  }
}

/** Creates an orchestrator. @throws InvalidOptionsError naming the first invalid option. */
export function createParallelOrchestrator(options?: OrchestratorOptions): ParallelOrchestrator {
  return new ParallelOrchestrator(options);
}
