import { AgentNotFoundError } from '../errors.js';
import { resolveOptions, type OrchestratorOptions } from '../options.js';
import type { AuditEvent, AuditQuery } from '../persistence/store.js';
import type { TaskObservable } from '../streaming/task-observable.js';
import type { Unsubscribe } from '../util/emitter.js';
import type { AgentInfo, AgentSpec, DeadLetter, EventStreamOptions, OrchestratorEvents, OrchestratorStreamItem, TaskQuery, TaskSpec, TypedTaskSpec } from '../types.js';
import { parseRequeueOptions, parseShutdownOptions, parseStartOptions, parseStreamOptions, parseSubmitOptions, requireFunction, requireId } from './arguments.js';
import { Engine } from './engine.js';
import type { OrchestratorStats, TaskDetails, TaskInfo } from './stats.js';

/** Options of `start()`. */
export interface StartOptions {
  /**
   * SQLite only: queue again the tasks left unfinished in the file by processes that closed it or
   * stopped heartbeating (never those of a process still open on it). False opens the store without taking them (an
   * inspection tool); dead letters are loaded either way. No effect on the memory store (nothing
   * outlives the process) nor on PostgreSQL, where start() recovers nothing: a dead node's tasks
   * go back to the queue when their leases expire, re-queued by any live node. @default true
   */
  recover?: boolean;
}

/** Options of `requeueDeadLetter()`. */
export interface RequeueOptions {
  /** Keep the task queued when no agent could serve it yet (another process will), instead of failing it. @default false */
  waitForAgent?: boolean;
}

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
   * This orchestrator's id: the prefix of the task ids it generates and, on PostgreSQL, its node
   * id in the cluster (unique even for several orchestrators in one process).
   */
  get nodeId(): string {
    return this.#engine.nodeId;
  }

  /**
   * Opens the store and starts dispatching. SQLite: the dead letters are loaded and, unless
   * `recover: false`, the tasks dead processes left unfinished are queued again first (they wait
   * for a capable agent). PostgreSQL: creates or migrates the schema, joins the cluster and starts
   * claiming queued tasks for this node's agents; nothing is recovered at start (see
   * `StartOptions.recover`). Tasks submitted before `start()` wait in the queue. Idempotent.
   * @throws StoreError when the store cannot be opened (a corrupt, locked or newer database, a
   * PostgreSQL server that refuses the connection, `better-sqlite3` or `pg` missing)
   */
  start(options?: StartOptions): Promise<void> {
    let parsed: { recover: boolean };
    try {
      parsed = parseStartOptions(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#engine.start(parsed.recover);
  }

  /**
   * Stops accepting tasks. Graceful: waits up to `timeout` for queued and running tasks, then
   * cancels the rest. Forced: cancels everything now (running handlers see their signal abort).
   * Afterwards no timer or listener of the orchestrator remains. Idempotent.
   */
  shutdown(options?: ShutdownOptions): Promise<void> {
    let parsed: { graceful: boolean; timeout: number };
    try {
      parsed = parseShutdownOptions(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#engine.shutdown(parsed.graceful, parsed.timeout);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  /**
   * Registers an agent; queued tasks it can serve may start at once. A handler typed with its
   * payload, result and progress state (`Task<P>`, `TaskContext<S>`) is accepted as it is;
   * `defineAgent` also carries those types to the tasks submitted for it.
   * @throws InvalidAgentError, DuplicateAgentError
   */
  registerAgent<P = unknown, R = unknown, S = unknown>(spec: AgentSpec<P, R, S>): AgentInfo {
    return this.#engine.registerAgent(spec as AgentSpec);
  }

  /** Removes an agent. Its running tasks finish; queued tasks go to other agents or fail with `NoCapableAgentError`. */
  unregisterAgent(agentId: string): void {
    this.#engine.unregisterAgent(agentId);
  }

  getAgent(agentId: string): AgentInfo | undefined {
    return this.#engine.getAgent(requireId(agentId, 'agentId'));
  }

  listAgents(): AgentInfo[] {
    return this.#engine.listAgents();
  }

  /** An agent's load, counters, circuit state and rate-limit state. @throws AgentNotFoundError */
  getAgentState(agentId: string): AgentInfo {
    const info = this.#engine.getAgent(requireId(agentId, 'agentId'));
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
  submit<P, R, S>(spec: TypedTaskSpec<P, R, S>): TaskObservable<R, S>;
  submit<R = unknown, S = unknown>(spec: TaskSpec): TaskObservable<R, S>;
  submit(spec: TaskSpec): TaskObservable {
    return this.#engine.submit(spec);
  }

  /** Like `submit`, but waits for room when the queue is full (backpressure). Rejects with `AbortedError` if `signal` aborts first. */
  submitAsync<P, R, S>(spec: TypedTaskSpec<P, R, S>, options?: { signal?: AbortSignal }): Promise<TaskObservable<R, S>>;
  submitAsync<R = unknown, S = unknown>(spec: TaskSpec, options?: { signal?: AbortSignal }): Promise<TaskObservable<R, S>>;
  submitAsync(spec: TaskSpec, options?: { signal?: AbortSignal }): Promise<TaskObservable> {
    let signal: AbortSignal | undefined;
    try {
      signal = parseSubmitOptions(options).signal;
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#engine.submitAsync(spec, signal);
  }

  /**
   * Cancels a queued, retrying or running task: it stops here at once (a running handler sees its
   * signal abort). Resolves with false if the task is not live. On PostgreSQL, any task of the
   * cluster: one queued (or waiting for a retry) in the table is cancelled there before this
   * resolves; one running on another node is aborted there when that node hears of it (at once,
   * at the latest within its next heartbeat), and true means it was queued or running.
   * Rejects with InvalidArgumentError when `taskId` is not a non-empty string, or `reason` not a string.
   */
  cancel(taskId: string, reason = 'cancelled by caller'): Promise<boolean> {
    try {
      return Promise.resolve(this.#engine.cancel(taskId, reason));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Saves a checkpoint for a live or dead-lettered task; its next run gets it as `ctx.resumeState`. Resolves once the store committed it; rejects with TaskNotFoundError for an unknown task. */
  checkpoint(taskId: string, state: unknown): Promise<void> {
    try {
      return this.#engine.checkpointTask(requireId(taskId, 'taskId'), state);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The latest checkpoint of a task, or null. Checkpoints of completed tasks are released. */
  resumeFromCheckpoint<S = unknown>(taskId: string): S | null {
    return this.#engine.resumeFromCheckpoint(requireId(taskId, 'taskId')) as S | null;
  }

  /** Tasks whose attempts ran out, oldest first. */
  deadLetters(): Promise<DeadLetter[]> {
    return this.#engine.deadLetters();
  }

  /** Submits a dead-lettered task again with the same id and a fresh attempt count. Rejects with TaskNotFoundError. */
  requeueDeadLetter<R = unknown, S = unknown>(taskId: string, options?: RequeueOptions): Promise<TaskObservable<R, S>> {
    let parsed: { waitForAgent: boolean };
    try {
      parsed = parseRequeueOptions(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#engine.requeueDeadLetter(taskId, parsed.waitForAgent) as Promise<TaskObservable<R, S>>;
  }

  /** A task's state: live, or finished within `streaming.retainCompletedMs`; else undefined. */
  getTask(taskId: string): TaskInfo | undefined {
    return this.#engine.getTask(requireId(taskId, 'taskId'));
  }

  /**
   * A task with its payload, result or error and latest progress: a live or retained one, or
   * (with a durable store) one found in the store, however long ago it ran. Undefined when unknown.
   */
  async findTask(taskId: string): Promise<TaskDetails | undefined> {
    return this.#engine.findTask(taskId);
  }

  /**
   * Tasks, newest first: live and retained ones, then (with a durable store) stored ones.
   * Rejects with InvalidArgumentError naming a bad field of `query`.
   */
  async listTasks(query: TaskQuery = {}): Promise<TaskInfo[]> {
    return this.#engine.listTasks(query);
  }

  /**
   * The observable of a live task, or of one finished within `streaming.retainCompletedMs`
   * (a late subscriber then gets its final snapshot and result); else undefined.
   */
  observe<R = unknown, S = unknown>(taskId: string): TaskObservable<R, S> | undefined {
    return this.#engine.observe(requireId(taskId, 'taskId')) as TaskObservable<R, S> | undefined;
  }

  /**
   * Every orchestrator event with a global sequence, as an async iterable, for dashboards and
   * logs. From the first call on, the last `streaming.eventHistory` events are held, so a consumer
   * can resume with `fromSequence` (the sequence after the last one it saw). A consumer more than
   * `streaming.backpressureThreshold` events behind gets a `stream:gap` item in place of the
   * events it missed. Ends after `orchestrator:shutdown`, or when `signal` aborts.
   */
  events(options?: EventStreamOptions): AsyncIterableIterator<OrchestratorStreamItem> {
    return this.#engine.streamEvents(parseStreamOptions(options));
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
  async history(taskId: string): Promise<AuditEvent[]> {
    return this.#engine.history(taskId);
  }

  /**
   * Pages through the whole audit trail: entries after `since` (an entry's `seq`), at most `limit`
   * (1..10000, default 100), of one `type` if given. Rejects with InvalidArgumentError naming a bad field.
   */
  async audit(query: AuditQuery = {}): Promise<AuditEvent[]> {
    return this.#engine.audit(query);
  }

  /**
   * Starts a run of a workflow made by `defineWorkflow` on this orchestrator: the same as
   * `runWorkflow(this, workflow, input, options)` (the workflow starts itself, so this class
   * depends on no workflow code). Returns the run's live view at once.
   */
  runWorkflow<I, O, Run>(workflow: { start(orchestrator: ParallelOrchestrator, input: I, options?: O): Run }, input: I, options?: O): Run {
    return workflow.start(this, input, options);
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
    requireId(event, 'event');
    requireFunction(listener, 'listener');
    return this.#engine.events.on(event, listener);
  }

  once<K extends keyof OrchestratorEvents>(event: K, listener: (payload: OrchestratorEvents[K]) => void): Unsubscribe {
    requireId(event, 'event');
    requireFunction(listener, 'listener');
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
