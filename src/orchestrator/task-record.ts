import type { AsyncResource } from 'node:async_hooks';
import { TaskStatus, type AgentRole, type TaskPriority } from '../enums.js';
import { errorCode } from '../errors.js';
import type { Lane } from '../queue/lane.js';
import type { LaneNode } from '../queue/task-queue.js';
import type { DeadlineBucket, DeadlineNode } from '../resilience/deadlines.js';
import type { Agent } from '../routing/agent.js';
import type { CapabilitySignature } from '../routing/capability-signature.js';
import type { PersistableTask, TaskRow } from '../persistence/store.js';
import type { ProgressStream } from '../streaming/progress-stream.js';
import type { TaskTelemetry } from '../telemetry/task-telemetry.js';
import { TaskObservable } from '../streaming/task-observable.js';
import type { Emitter } from '../util/emitter.js';
import type { ThreadWorker } from '../workers/thread-worker.js';
import { serializeError } from '../workers/protocol.js';
import type { InlineWorker } from '../workers/worker-pool.js';
import type { RetryPolicy, StartEvent, Task, TaskContext, TaskEvents, TaskSpec } from '../types.js';

/** The per-task settings most tasks take from the defaults; one shared object for all of those. */
export interface TaskOptions {
  readonly timeout: number;
  readonly retry: RetryPolicy;
  readonly preferredRole: AgentRole | undefined;
  readonly waitForAgent: boolean;
  /** The spec's `preemptible`; undefined leaves it to `taskQueue.preemptibleFrom`. */
  readonly preemptible: boolean | undefined;
}

/** Defaults for the fields a task spec may omit. */
export interface TaskDefaults {
  readonly priority: TaskPriority;
  readonly options: TaskOptions;
  /** `options` with `waitForAgent: true`, shared too: a common way to submit ahead of agents. */
  readonly waitingOptions: TaskOptions;
  /** Tasks at this priority or below (a larger number) are preemptible unless they say otherwise; Infinity for none. */
  readonly preemptibleFrom: number;
}

/** The record's host, reachable only from this module. */
let hostOf: (record: TaskRecord) => RunHost;

const NO_CAPABILITIES: readonly string[] = Object.freeze([]);
const NO_METADATA: Readonly<Record<string, unknown>> = Object.freeze({});
export { NO_CAPABILITIES };

/** What a task and its runs call back into; a narrow object of the engine's, private to the record. */
export interface RunHost {
  /** The id of a task submitted without one. */
  generatedId(seq: number): string;
  /** The defaults tasks were created with (a stored row keeps only what differs from them). */
  readonly taskDefaults: TaskDefaults;
  progress(run: TaskRun, state: unknown): void;
  checkpoint(run: TaskRun, state: unknown): Promise<void>;
  onRunDeadline(run: TaskRun): void;
  reportListenerError(error: unknown, event: PropertyKey): void;
  /** `streaming.backpressureThreshold`. */
  readonly bufferLimit: number;
  reportConflated(record: TaskRecord, dropped: number): void;
}

/** Agent and worker of an attempt that ran in another process. */
export interface RemoteRun {
  agentId: string;
  workerId: string;
  nodeId: string;
}

/**
 * The fields of a task that most tasks never set, apart: a queued task carries one pointer for
 * them (48 bytes less per task of the in-memory engine, and less for each scavenge to copy).
 */
class TaskExtras {
  resultJson: string | undefined = undefined;
  payloadJson: string | null | undefined = undefined;
  remote: RemoteRun | null = null;
  traceContext: Record<string, string> | null = null;
  telemetry: TaskTelemetry | null = null;
  preemptions = 0;
  preemptionsSinceCheckpoint = 0;
  outcomeAudited = false;
  claims = 0;
}

/**
 * The engine's record of one task, from submit to its final state. It is also the queue node
 * (intrusive links) and the source its `TaskObservable` reads, so a queued task is one object
 * plus its observable. The engine drops it when the task ends; the observable may keep it.
 */
export class TaskRecord extends TaskObservable implements LaneNode<TaskRecord, CapabilitySignature>, PersistableTask {
  static {
    hostOf = (record) => record.#host;
  }

  slot = 0;
  level: number;
  enqueuedAt = 0;
  /**
   * When the task last became ready to run (engine clock, ms), for the wait-time metric; -1 when
   * no metrics are recorded or this process did not see it queued. A field, not telemetry state:
   * an object per task would outlive the young generation of a long queue and cost its GC.
   */
  readyAt = -1;
  status: TaskStatus = TaskStatus.QUEUED;
  attempt = 0;
  /** The agent chosen by routing for the next run, then the agent of the current or last run. */
  agent: Agent | null = null;
  /** The current attempt; null once it ended, so a finished record (old-generation garbage) holds no young objects alive. */
  run: TaskRun | null = null;
  /** Worker and run time of the last attempt, kept for the `complete` event. */
  worker: InlineWorker | ThreadWorker<TaskRun> | null = null;
  duration = 0;
  events: Emitter<TaskEvents<unknown, unknown>> | null = null;
  /** Created by the first progress update; kept after the task ends until the retention releases it. */
  stream: ProgressStream | null = null;
  updateCount = 0;
  /** The result once completed; the last error once failed, retrying or timed out; the reason (a string) once cancelled. */
  outcome: unknown = undefined;
  /** What only durable stores, clusters, telemetry and preemption set; null until one does. */
  #extras: TaskExtras | null = null;
  /** Caller-chosen id, or the generated one once asked for (generated lazily: most are never read). */
  #id: string | undefined;
  // Private, so that no holder of the task's observable can reach into the engine.
  readonly #host: RunHost;
  /** The submitter's async context (AsyncLocalStorage stores, tracing): in-process handlers run in it. */
  readonly scope: AsyncResource | null;
  readonly type: string;
  readonly payload: unknown;
  readonly priority: TaskPriority;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly options: TaskOptions;

  /** `spec` must have passed `validateTaskSpec`. */
  constructor(
    host: RunHost,
    spec: TaskSpec,
    defaults: TaskDefaults,
    readonly lane: Lane<TaskRecord, CapabilitySignature>,
    readonly seq: number,
    scope: AsyncResource | null,
  ) {
    super();
    this.#host = host;
    this.scope = scope;
    this.#id = spec.id;
    this.type = spec.type;
    this.payload = spec.payload;
    this.priority = spec.priority ?? defaults.priority;
    this.level = -1;
    this.metadata = spec.metadata ?? NO_METADATA;
    const base = defaults.options;
    const onlyDefaults = spec.timeout === undefined && spec.retry === undefined && spec.preferredRole === undefined && spec.preemptible === undefined;
    this.options =
      onlyDefaults && spec.waitForAgent === undefined
        ? base
        : onlyDefaults && spec.waitForAgent === true
          ? defaults.waitingOptions
          : {
            timeout: spec.timeout ?? base.timeout,
            retry: spec.retry === undefined ? base.retry : { ...base.retry, ...spec.retry },
            preferredRole: spec.preferredRole,
            waitForAgent: spec.waitForAgent ?? base.waitForAgent,
            preemptible: spec.preemptible,
          };
  }

  /** For the audit trail: the sequence a generated id is made from, -1 for a caller-chosen id. */
  get generatedSeq(): number {
    return this.#id === undefined ? this.seq : -1;
  }

  // Not cached: a young string stored into this (by then old) record would survive every scavenge.
  override get id(): string {
    return this.#id ?? this.#host.generatedId(this.seq);
  }

  /** Linked into the queue. (`level` is -1 while it is not: one field less per queued task.) */
  get inQueue(): boolean {
    return this.level >= 0;
  }

  get timeout(): number {
    return this.options.timeout;
  }

  get retry(): RetryPolicy {
    return this.options.retry;
  }

  get preferredRole(): AgentRole | undefined {
    return this.options.preferredRole;
  }

  get waitForAgent(): boolean {
    return this.options.waitForAgent;
  }

  /** Whether a more urgent task may take this one's slot while it runs. */
  get preemptible(): boolean {
    return this.options.preemptible ?? this.priority >= this.#host.taskDefaults.preemptibleFrom;
  }

  get capabilities(): readonly string[] {
    return this.lane.key.capabilities;
  }

  /** The worker of the current or last attempt. */
  get workerId(): string | null {
    return this.worker?.workerId ?? this.remote?.workerId ?? null;
  }

  // The rarely set fields, through `#extras` (a value other than the default makes it).

  #writableExtras(): TaskExtras {
    return (this.#extras ??= new TaskExtras());
  }

  /** The result as JSON, when a durable store keeps it (encoded once, when the task completed). */
  get resultJson(): string | undefined {
    return this.#extras?.resultJson;
  }

  set resultJson(json: string | undefined) {
    if (json !== undefined || this.#extras !== null) this.#writableExtras().resultJson = json;
  }

  /** The payload as JSON, from the check at submit on a durable store, until its row is first encoded (no second stringify). */
  get payloadJson(): string | null | undefined {
    return this.#extras?.payloadJson;
  }

  set payloadJson(json: string | null | undefined) {
    if (json !== undefined || this.#extras !== null) this.#writableExtras().payloadJson = json;
  }

  /** Agent and worker of the last attempt when it ran in another process (shared store). */
  get remote(): RemoteRun | null {
    return this.#extras?.remote ?? null;
  }

  set remote(remote: RemoteRun | null) {
    if (remote !== null || this.#extras !== null) this.#writableExtras().remote = remote;
  }

  /** The submitter's tracing context, carried with the task to another process (set by telemetry). */
  get traceContext(): Record<string, string> | null {
    return this.#extras?.traceContext ?? null;
  }

  set traceContext(context: Record<string, string> | null) {
    if (context !== null || this.#extras !== null) this.#writableExtras().traceContext = context;
  }

  /** Claims of the task by this process (shared store): an outcome refused after a newer claim is that claim's business. */
  get claims(): number {
    return this.#extras?.claims ?? 0;
  }

  set claims(count: number) {
    this.#writableExtras().claims = count;
  }

  /** What tracing keeps of the task between transitions (its parent context, running span); null while it keeps nothing. */
  get telemetry(): TaskTelemetry | null {
    return this.#extras?.telemetry ?? null;
  }

  set telemetry(state: TaskTelemetry | null) {
    if (state !== null || this.#extras !== null) this.#writableExtras().telemetry = state;
  }

  /** Times a more urgent task took this one's slot. */
  get preemptions(): number {
    return this.#extras?.preemptions ?? 0;
  }

  set preemptions(count: number) {
    if (count !== 0 || this.#extras !== null) this.#writableExtras().preemptions = count;
  }

  /** Preemptions since the task last checkpointed: what `preemption.maxPerTask` bounds (work lost, not work paused). */
  get preemptionsSinceCheckpoint(): number {
    return this.#extras?.preemptionsSinceCheckpoint ?? 0;
  }

  set preemptionsSinceCheckpoint(count: number) {
    if (count !== 0 || this.#extras !== null) this.#writableExtras().preemptionsSinceCheckpoint = count;
  }

  /** On PostgreSQL: the statement recording the outcome carried its terminal audit entries (the journal writes none). */
  get outcomeAudited(): boolean {
    return this.#extras?.outcomeAudited ?? false;
  }

  set outcomeAudited(audited: boolean) {
    if (audited || this.#extras !== null) this.#writableExtras().outcomeAudited = audited;
  }


  terminalEvent(): TaskEvents<unknown, unknown>['complete' | 'error' | 'cancelled'] | null {
    switch (this.status) {
      case TaskStatus.COMPLETED:
        return {
          type: 'complete',
          taskId: this.id,
          result: this.outcome,
          duration: this.duration,
          updateCount: this.updateCount,
          agentId: this.agent?.agentId ?? this.remote?.agentId ?? '',
          workerId: this.worker?.workerId ?? this.remote?.workerId ?? '',
          attempts: this.attempt,
        };
      case TaskStatus.FAILED:
      case TaskStatus.TIMEOUT: {
        const error = this.outcome as Error;
        return { type: 'error', taskId: this.id, error, code: errorCode(error), attempts: this.attempt };
      }
      case TaskStatus.CANCELLED:
        return { type: 'cancelled', taskId: this.id, reason: this.outcome as string };
      default:
        return null;
    }
  }

  startEvent(): StartEvent | null {
    const run = this.run;
    if (this.status !== TaskStatus.RUNNING || run === null) return null;
    const timestamp = Date.now() - (performance.now() - run.startedAt);
    return { type: 'start', taskId: this.id, agentId: run.agent.agentId, workerId: run.worker.workerId, attempt: run.attempt, timestamp };
  }

  get bufferLimit(): number {
    return this.#host.bufferLimit;
  }

  reportConflated(dropped: number): void {
    this.#host.reportConflated(this, dropped);
  }

  reportListenerError(error: unknown, event: PropertyKey): void {
    this.#host.reportListenerError(error, event);
  }

  /** Called by the retention when the task is no longer findable: late subscribers then get only its final event. */
  release(): void {
    this.stream = null;
  }

  /** The task as a durable store keeps it (taken when the store writes; `submittedAt` is kept from the first write). */
  toRow(): TaskRow {
    const timestamp = Date.now();
    // Most tasks share the default options: their rows store none (smaller rows, faster commits),
    // and a recovered task then takes the defaults of the process that recovers it.
    const defaults = this.#host.taskDefaults;
    let options: Record<string, unknown>;
    if (this.options === defaults.options) options = {};
    else if (this.options === defaults.waitingOptions) options = { waitForAgent: true };
    else {
      options = { timeout: this.timeout, retry: this.retry, waitForAgent: this.waitForAgent };
      if (this.preferredRole !== undefined) options.preferredRole = this.preferredRole;
      if (this.options.preemptible !== undefined) options.preemptible = this.options.preemptible;
    }
    return {
      id: this.id,
      type: this.type,
      priority: this.priority,
      capabilities: this.capabilities,
      payload: this.payload,
      payloadJson: this.#takePayloadJson(),
      metadata: this.metadata,
      options,
      status: this.status,
      attempt: this.attempt,
      agentId: this.agent?.agentId ?? null,
      submittedAt: timestamp,
      updatedAt: timestamp,
      ...(this.status === TaskStatus.COMPLETED ? { result: this.outcome, resultJson: this.resultJson } : {}),
      error:
        this.status === TaskStatus.CANCELLED
          ? { name: 'TaskCancelledError', message: this.outcome as string, stack: undefined, props: { code: 'TASK_CANCELLED' } }
          : this.outcome instanceof Error
            ? serializeError(this.outcome)
            : null,
    };
  }

  #takePayloadJson(): string | null | undefined {
    const json = this.payloadJson;
    this.payloadJson = undefined;
    return json;
  }

  /** The task as it was submitted, for dead letters and requeueing. */
  toSpec(): TaskSpec {
    return {
      id: this.id,
      type: this.type,
      priority: this.priority,
      capabilities: this.capabilities,
      payload: this.payload,
      timeout: this.timeout,
      retry: this.retry,
      metadata: this.metadata,
      ...(this.preferredRole === undefined ? {} : { preferredRole: this.preferredRole }),
      waitForAgent: this.waitForAgent,
      ...(this.options.preemptible === undefined ? {} : { preemptible: this.options.preemptible }),
    };
  }
}

/**
 * One attempt of a task: the handler's context, its worker, and its deadline. A run is
 * `finished` once the attempt has an outcome (result, error, timeout or cancel) and `settled`
 * once the handler itself returned; between the two, a late result is discarded.
 */
export class TaskRun implements TaskContext, DeadlineNode {
  /** The job's seq in its thread (thread agents only). */
  threadSeq = 0;
  /** The breaker's ticket when this run is a half-open probe, else 0. */
  probeTicket = 0;
  /** Set when the attempt ended but the handler still holds its worker (see HealthMonitor). */
  overdueSince = 0;
  deadlineAt = 0;
  deadlineNext: DeadlineNode | null = null;
  deadlinePrev: DeadlineNode | null = null;
  deadlineBucket: DeadlineBucket | null = null;
  finished = false;
  settled = false;
  /** Worker and agent capacity given back (at settle, or reclaimed from a stuck handler). */
  released = false;
  duration = 0;
  /** Links of the executor's list of runs whose handler has not returned. */
  unsettledPrev: TaskRun | null = null;
  unsettledNext: TaskRun | null = null;
  /** The more urgent task this run gives its slot to, once preempted; null otherwise. */
  preemptedBy: TaskRecord | null = null;
  /** Resolves once the start of this run is committed, when its handler must wait for that (a recovered task); else null. */
  startCommitted: Promise<void> | null = null;
  readonly task: Task;
  #controller: AbortController | null = null;
  #abortReason: Error | null = null;

  constructor(
    readonly record: TaskRecord,
    readonly agent: Agent,
    readonly worker: InlineWorker | ThreadWorker<TaskRun>,
    readonly attempt: number,
    readonly resumeState: unknown,
    readonly startedAt: number,
  ) {
    this.task = {
      id: record.id,
      type: record.type,
      payload: record.payload,
      priority: record.priority,
      capabilities: record.capabilities,
      metadata: record.metadata,
      attempt,
    };
  }

  // Created on first use: most handlers never read their signal, and an AbortController per task is costly.
  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#abortReason !== null) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  get agentId(): string {
    return this.agent.agentId;
  }

  get workerId(): string {
    return this.worker.workerId;
  }

  abort(reason: Error): void {
    this.#abortReason = reason;
    this.#controller?.abort(reason);
  }

  progress(state: unknown): void {
    hostOf(this.record).progress(this, state);
  }

  checkpoint(state: unknown): Promise<void> {
    return hostOf(this.record).checkpoint(this, state);
  }

  onDeadline(): void {
    hostOf(this.record).onRunDeadline(this);
  }
}
