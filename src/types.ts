import type { Operation } from 'fast-json-patch';
import type { AgentRole, CircuitState, TaskPriority, TaskStatus } from './enums.js';

/** One RFC 6902 JSON Patch operation (apply with `fast-json-patch`'s `applyPatch` or any RFC 6902 library). */
export type JsonPatchOperation = Operation;

/** Retry policy: attempt `n` (n ≥ 2) waits `min(maxDelay, initialDelay · factor^(n-2))`, less up to `jitter` of it. */
export interface RetryPolicy {
  /** Total attempts including the first. `1` disables retries. @default 3 */
  maxAttempts: number;
  /** Delay before the second attempt, in ms. @default 100 */
  initialDelay: number;
  /** Growth of the delay per attempt. @default 2 */
  factor: number;
  /** Upper bound of a delay, in ms. @default 30000 */
  maxDelay: number;
  /** Fraction (0..1) of each delay that is randomised away, so retries of many tasks spread out. @default 0.2 */
  jitter: number;
}

/** What `submit()` takes. Only `type` is required. */
export interface TaskSpec<P = unknown> {
  /** A name for the kind of work, shown in events and stats. */
  type: string;
  /** Your own id; must be unique among live tasks. @default a generated id */
  id?: string;
  /** `TaskPriority.CRITICAL` (0) .. `TaskPriority.BACKGROUND` (4). @default taskQueue.defaultPriority */
  priority?: TaskPriority;
  /** Every one of these must be among the agent's capabilities. @default [] (any agent) */
  capabilities?: readonly string[];
  /** Handed to the handler as `task.payload`. */
  payload?: P;
  /** Run-time limit in ms, counted from the moment the task starts. 0 = none. @default taskQueue.defaultTimeout */
  timeout?: number;
  /** Overrides fields of `taskQueue.retry` for this task. */
  retry?: Partial<RetryPolicy>;
  /** Free-form data carried with the task and its events. */
  metadata?: Record<string, unknown>;
  /** Prefer agents of this role when several can serve the task. */
  preferredRole?: AgentRole;
  /** Keep the task queued when no registered agent could serve it, instead of failing it. @default false */
  waitForAgent?: boolean;
  /**
   * A more urgent task may take this one's slot while it runs (see docs/preemption.md): its
   * signal aborts with `PreemptedError`, and it goes back to the front of its priority lane,
   * resuming from its latest checkpoint. Preempted `preemption.maxPerTask` times without a
   * checkpoint in between, it is not preempted again until it checkpoints.
   * @default taskQueue.preemptibleFrom decides, else false
   */
  preemptible?: boolean;
}

/** The task as a handler sees it. */
export interface Task<P = unknown> {
  readonly id: string;
  readonly type: string;
  readonly payload: P;
  readonly priority: TaskPriority;
  readonly capabilities: readonly string[];
  readonly metadata: Readonly<Record<string, unknown>>;
  /** 1 for the first run, 2 for the first retry, … */
  readonly attempt: number;
}

/** The second argument of a handler. */
export interface TaskContext<S = unknown> {
  /** Aborted when the task times out, is cancelled, or the orchestrator is shut down. */
  readonly signal: AbortSignal;
  /** Streams a progress state to the task's subscribers (`delta` events). */
  progress(state: S): void;
  /** Saves a state that a retried or recovered run receives as `resumeState`. */
  checkpoint(state: S): Promise<void>;
  /** The latest checkpoint of this task, when it is being retried or recovered; else `undefined`. */
  readonly resumeState: S | undefined;
  /** 1 for the first run, 2 for the first retry, … */
  readonly attempt: number;
  readonly agentId: string;
  readonly workerId: string;
}

/** An agent's work: an async function of the task (payload `P`) and its context (progress state `S`), returning `R`. */
export type AgentHandler<P = unknown, R = unknown, S = unknown> = (task: Task<P>, ctx: TaskContext<S>) => R | Promise<R>;

declare const resultType: unique symbol;
declare const stateType: unique symbol;

/**
 * A task spec that carries the result (`R`) and progress state (`S`) types of the agent it was
 * made for (by `defineAgent(...).task()`), so `submit()` returns a `TaskObservable<R, S>`.
 * The two type-only members never exist at run time.
 */
export interface TypedTaskSpec<P = unknown, R = unknown, S = unknown> extends TaskSpec<P> {
  readonly [resultType]?: R;
  readonly [stateType]?: S;
}

/** What `registerAgent()` takes. `P`, `R`, `S`: payload, result and progress state of its handler. */
export interface AgentSpec<P = unknown, R = unknown, S = unknown> {
  /** Unique id of the agent. */
  agentId: string;
  /** One of `AgentRole`. */
  role: AgentRole;
  /** What the agent can do; a task is routed here when all its capabilities are in this list. */
  capabilities: readonly string[];
  /** Tasks this agent runs at once. @default 1 */
  maxConcurrent?: number;
  /** The work, run in-process: for I/O-bound work (LLM calls, HTTP, databases). Give this or `module`. */
  handler?: AgentHandler<P, R, S>;
  /**
   * A module (file path or file: URL) whose default export is the handler, run in worker threads:
   * for CPU-bound work, and the only work that can be stopped when stuck. Payloads and results
   * are structured-cloned. Give this or `handler`.
   */
  module?: string | URL;
  /** At most `max` task starts per `perMs` ms; tasks over the rate wait in the queue. */
  rateLimit?: { max: number; perMs: number };
}

/** An agent definition made by `defineAgent`: register it as it is, and make its tasks with `task()`. */
export interface TypedAgent<P = unknown, R = unknown, S = unknown> extends AgentSpec<P, R, S> {
  /**
   * A task for this agent's kind of work, typed: `payload` must be a `P`, and `submit()` returns a
   * `TaskObservable<R, S>`. `capabilities` default to the agent's (any agent with all of them may run it).
   */
  task(spec: Omit<TaskSpec<P>, 'capabilities'> & { capabilities?: readonly string[] }): TypedTaskSpec<P, R, S>;
}

/** A registered agent's public view. */
export interface AgentInfo {
  readonly agentId: string;
  readonly role: AgentRole;
  readonly capabilities: readonly string[];
  readonly maxConcurrent: number;
  /** 'inline' for a `handler`, 'thread' for a `module`. */
  readonly execution: 'inline' | 'thread';
  readonly active: number;
  readonly completed: number;
  readonly failed: number;
  readonly circuitState: CircuitState;
  /** Consecutive trips of its circuit since it last closed. */
  readonly circuitTrips: number;
  /** True while held open by `isolateAgent`. */
  readonly isolated: boolean;
  readonly rateLimit: { max: number; perMs: number } | null;
  /** True while its rate limit keeps it from starting tasks. */
  readonly rateLimited: boolean;
  /**
   * With `assignmentStrategy: 'adaptive'`: what routing learned of this agent, one entry per task
   * type and set of required capabilities it ran tasks of (empty with the other strategies).
   */
  readonly learned: readonly LearnedFigures[];
}

/** The adaptive strategy's figures for one agent on one class of tasks: a type requiring one set of capabilities (decaying means: see docs/routing.md). */
export interface LearnedFigures {
  /** The tasks' required capabilities (sorted, distinct). */
  readonly capabilities: readonly string[];
  /** The tasks' type; null for the types past the first 256 of these capabilities, learned together. */
  readonly type: string | null;
  /** Mean run time of its attempts, failed and timed-out ones included (ms). */
  readonly meanMs: number;
  /** Share of its attempts that succeeded, 0..1. */
  readonly successRate: number;
  /** Attempts learned from (successes, failures, timeouts; a cancelled run teaches nothing). */
  readonly samples: number;
}

/** Payload of the `start` event. */
export interface StartEvent {
  type: 'start';
  taskId: string;
  agentId: string;
  workerId: string;
  attempt: number;
  timestamp: number;
}

/** Sequence (gap-free per task, from 1) and producing agent of a progress update. */
export interface UpdateMetadata {
  sequence: number;
  agentId: string;
}

/**
 * Payload of the `delta` event: one progress update, with `streaming.enableDeltaCompression` on
 * (the default). Applying `delta` to the state of the previous update gives this one; the first
 * update's delta replaces the whole document (path '').
 */
export interface DeltaEvent<S = unknown> {
  type: 'delta';
  timestamp: number;
  /** The state passed to `ctx.progress` (the object itself, not a copy). */
  data: S;
  /** RFC 6902 JSON Patch from the previous state to this one. Read-only: it is shared by every subscriber. */
  delta: JsonPatchOperation[];
  metadata: UpdateMetadata;
}

/** Payload of the `update` event: one progress update with `streaming.enableDeltaCompression: false`. */
export interface UpdateEvent<S = unknown> {
  type: 'update';
  timestamp: number;
  /** The state passed to `ctx.progress` (the object itself, not a copy). */
  data: S;
  metadata: UpdateMetadata;
}

/**
 * Payload of the `snapshot` event: the full state after update `metadata.sequence`, every
 * `streaming.snapshotInterval` updates, first in a replay, and in place of updates dropped for a
 * slow subscriber. `data` is a JSON copy taken at that update.
 */
export interface SnapshotEvent<S = unknown> {
  type: 'snapshot';
  timestamp: number;
  data: S;
  metadata: UpdateMetadata;
}

/** Any progress event: what a subscriber applies to rebuild the state. */
export type ProgressEvent<S = unknown> = DeltaEvent<S> | UpdateEvent<S> | SnapshotEvent<S>;

/** Payload of the `complete` event (and the value of `result()`). */
export interface CompleteEvent<R = unknown> {
  type: 'complete';
  taskId: string;
  result: R;
  /** Run time of the successful attempt, in ms. */
  duration: number;
  /** Progress updates streamed over all attempts. */
  updateCount: number;
  agentId: string;
  workerId: string;
  attempts: number;
}

/** Payload of the `error` event: the task failed for good. */
export interface ErrorEvent {
  type: 'error';
  taskId: string;
  error: Error;
  code: string;
  attempts: number;
}

/** Payload of the `retry` event: an attempt failed and another is scheduled. */
export interface RetryEvent {
  type: 'retry';
  taskId: string;
  /** The attempt that will run next. */
  attempt: number;
  /** Wait before it, in ms. */
  delay: number;
  error: Error;
}

/** Payload of the `preempted` event: the run gave its slot to a more urgent task; the task is queued again. */
export interface PreemptedEvent {
  type: 'preempted';
  taskId: string;
  /** The task that took the slot. */
  by: string;
  agentId: string;
  /** Times this task has been preempted so far, counted in memory by the process that runs it (from 0 after a recovery or a takeover). */
  preemptions: number;
}

/** Payload of the `cancelled` event. */
export interface CancelledEvent {
  type: 'cancelled';
  taskId: string;
  reason: string;
}

/** Events of a `TaskObservable`. */
export interface TaskEvents<R = unknown, S = unknown> {
  start: StartEvent;
  /**
   * A progress update. A listener added after updates were streamed first receives the latest
   * snapshot (a `SnapshotEvent`) and the deltas after it, then live deltas.
   */
  delta: DeltaEvent<S> | SnapshotEvent<S>;
  /** A progress update with delta compression off; late listeners get a replay as for `delta`. */
  update: UpdateEvent<S> | SnapshotEvent<S>;
  snapshot: SnapshotEvent<S>;
  complete: CompleteEvent<R>;
  error: ErrorEvent;
  retry: RetryEvent;
  preempted: PreemptedEvent;
  cancelled: CancelledEvent;
}

/** Any event a `TaskObservable` yields when iterated. */
export type TaskEvent<R = unknown, S = unknown> = TaskEvents<R, S>[keyof TaskEvents];

/** Options of `TaskObservable.subscribe`. */
export interface SubscribeOptions {
  /**
   * Replay from this sequence: the latest snapshot at or before it (or the oldest state still
   * held), then every update after that snapshot. A value past the current sequence replays
   * nothing. @default the current sequence (the latest snapshot and the updates after it)
   */
  fromSequence?: number;
  /** Updates the subscriber may fall behind by before conflation. @default streaming.backpressureThreshold */
  bufferSize?: number;
}

/** A task whose attempts ran out. */
export interface DeadLetter {
  readonly taskId: string;
  readonly type: string;
  readonly spec: TaskSpec;
  readonly error: Error;
  readonly code: string;
  readonly attempts: number;
  readonly failedAt: number;
}

/** Events of the orchestrator. */
export interface OrchestratorEvents {
  'orchestrator:started': { timestamp: number };
  'orchestrator:shutdown': { graceful: boolean; cancelled: number; timestamp: number };
  'task:submitted': { taskId: string; type: string; priority: TaskPriority };
  'task:started': { taskId: string; type: string; agentId: string; workerId: string; attempt: number };
  /** `delta` is the JSON Patch from the previous state (absent with delta compression off). */
  'task:progress': { taskId: string; agentId: string; sequence: number; data: unknown; delta?: JsonPatchOperation[] };
  'task:retry': { taskId: string; attempt: number; delay: number; error: Error };
  /** A running task gave its slot to the more urgent task `by`; it is queued again at the front of its lane. On PostgreSQL, also on the nodes that watch the task. */
  'task:preempted': { taskId: string; by: string; agentId: string };
  'task:completed': { taskId: string; type: string; agentId: string; workerId: string; duration: number; attempts: number; result: unknown };
  'task:failed': { taskId: string; type: string; error: Error; code: string; attempts: number; status: TaskStatus };
  'task:cancelled': { taskId: string; reason: string };
  'task:dead-letter': { taskId: string; error: Error; attempts: number };
  /**
   * Shared store only: this node's claim on a task was taken over by another node (its lease
   * expired, say while the node was frozen): the run here was abandoned, or its late outcome
   * discarded. The other node's outcome is the one recorded.
   */
  'task:claim-lost': { taskId: string; agentId: string | null; reason: string };
  'agent:registered': { agentId: string; role: AgentRole; capabilities: readonly string[] };
  'agent:unregistered': { agentId: string };
  /**
   * A worker kept a task past its timeout or cancellation plus `workerPool.stuckGrace`: an
   * in-process slot is reclaimed, a thread is terminated (and replaced).
   */
  'worker:stuck': { workerId: string; taskId: string; agentId: string };
  /** A worker thread died (uncaught error, `process.exit`, out of memory) or was terminated as stuck. */
  'worker:failed': { workerId: string; error: Error; taskId: string | undefined };
  /** A new thread took the place of one that failed. */
  'worker:replaced': { workerId: string; replacementId: string };
  /** An agent's circuit breaker changed state. */
  'agent:circuit-state': { agentId: string; from: CircuitState; to: CircuitState };
  /** A buffered subscriber fell behind: `dropped` queued updates were replaced by one snapshot. */
  'backpressure:conflated': { taskId: string; dropped: number };
  /**
   * A commit to a durable store failed (a lock held by another connection, a full disk). The
   * writes stay queued and the commit is retried with a growing delay; nothing is lost unless
   * the process dies before a retry succeeds.
   */
  'store:error': { error: Error };
  /** A listener threw; the engine went on. */
  'listener:error': { event: string; error: unknown };
}

/** One item of `orchestrator.events()`: an orchestrator event with its global sequence. */
export type OrchestratorStreamItem = {
  [K in keyof OrchestratorEvents]: { sequence: number; timestamp: number; event: K; data: OrchestratorEvents[K] };
}[keyof OrchestratorEvents] | StreamGap;

/**
 * In `orchestrator.events()`: events `from`..`to` are missing here, because the consumer fell
 * more than `streaming.backpressureThreshold` behind or asked to replay past `streaming.eventHistory`.
 */
export interface StreamGap {
  sequence: number;
  timestamp: number;
  event: 'stream:gap';
  data: { from: number; to: number; dropped: number };
}

/** Options of `orchestrator.events()`. */
export interface EventStreamOptions {
  /** Replay held events from this global sequence on. @default only new events */
  fromSequence?: number;
  /** Ends the iteration. */
  signal?: AbortSignal;
}

/** The query of `listTasks()`. */
export interface TaskQuery {
  /** Only tasks in this status (or one of these). */
  status?: TaskStatus | readonly TaskStatus[];
  /** Only tasks of this type. */
  type?: string;
  /** Most tasks returned (1..10000). @default 100 */
  limit?: number;
}
