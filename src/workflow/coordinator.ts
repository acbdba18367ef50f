import { CompensationTimeoutError, DuplicateTaskError, TaskCancelledError, TaskTimeoutError } from '../errors.js';
import type { ParallelOrchestrator, TaskContext, TaskObservable, TaskSpec } from '../index.js';
import type { StepPlan, WorkflowPlan } from './plan.js';
import type { RunChannel } from './run.js';
import type { CompensationContext, RollbackReason, StepContext, StepOutcome, WorkflowErrorInfo, WorkflowEvents, WorkflowResult } from './types.js';
import { backoff, codeOf, errorFromInfo, errorInfo, functionRetryPolicy, hasCode, isRecord, isShutdownReason, LazyAbort, sleep, toError } from './util.js';

/*
 * One run of a workflow, executed inside its coordinator task's handler.
 *
 * Step states: WAITING → RUNNING → COMPLETED | FAILED | CANCELLED. A step starts when its last
 * dependency completes; a task step is a task `<runId>/<step>` whose outcome arrives through the
 * orchestrator's task events (the host routes them here), a function step runs here.
 *
 * Run phases: running → (stop: a step failed, or cancel) → the live steps are cancelled and
 * awaited → rolling back (compensations in reverse completion order) → result. The coordinator's
 * checkpoint holds the completed steps and their results (saved at most every
 * `checkpointInterval` ms while running) and the rollback's progress (saved after every
 * compensation). A resumed coordinator (a retry, a recovered task, another node) restores it and
 * looks up every task step it would start (`findTask`): a live one is re-attached, a completed
 * one's result taken, so no completed task step runs twice. Function steps and compensations
 * that were in flight run again (at least once).
 */

const WAITING = 0;
const RUNNING = 1;
const COMPLETED = 2;
const FAILED = 3;
const CANCELLED = 4;

const LIVE_STATUSES = new Set(['queued', 'running', 'retrying']);
/** How often a step running on another node (not observable here) is looked up. */
const POLL_MS = 1_000;

/** The payload of a coordinator task. */
export interface CoordinatorPayload {
  workflowId: string;
  fingerprint: string;
  input: unknown;
  /** Distinguishes this run from an earlier one with the same id (its step tasks carry it). */
  incarnation: string;
  startedAt: number;
  priority: number;
}

/** The coordinator's checkpoint. */
export interface CoordinatorState {
  v: 1;
  phase: 'running' | 'rolling-back';
  /** Completed steps and their results, in completion order. */
  done: [string, unknown][];
  stop: { reason: RollbackReason; failedStep: string | null; error: WorkflowErrorInfo | null } | null;
  compensated: string[];
  compensationFailures: { step: string; error: WorkflowErrorInfo }[];
}

export interface CoordinatorHost {
  readonly orchestrator: ParallelOrchestrator;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: Error };

interface Failure {
  index: number;
  error: Error;
  code: string;
  attempts: number;
}

export class Coordinator {
  readonly #host: CoordinatorHost;
  readonly #plan: WorkflowPlan;
  readonly #channel: RunChannel;
  readonly #runId: string;
  readonly #payload: CoordinatorPayload;
  readonly #ctx: TaskContext<CoordinatorState>;
  readonly #resuming: boolean;
  /** Task ids of the steps, made once each. */
  readonly #taskIds: (string | undefined)[];
  /**
   * The metadata of every task step of this run (one object: the step is in the task id), on a
   * durable store only: there a resumed run uses it to tell its own step tasks from those of an
   * earlier run with the same id. A spec with metadata misses the engine's fast validation path
   * (a zod parse: ~10 µs a task), and with the memory store no earlier run's tasks outlive it.
   */
  readonly #metadata: Record<string, unknown> | undefined;

  readonly #state: Uint8Array;
  readonly #waiting: Int32Array;
  readonly #attempts: Int32Array;
  readonly #results: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  readonly #order: number[] = [];
  /** `[name, result]` of the completed steps in completion order: the checkpoint's `done`, kept as it grows. */
  readonly #done: [string, unknown][] = [];
  /**
   * The store survives the process. Otherwise nothing is saved: a checkpoint would only help a
   * coordinator retried after its own failure, and costs a JSON copy of every result per save.
   */
  readonly #durable: boolean;
  #completed = 0;
  /** Steps in state RUNNING. */
  #liveCount = 0;
  /** The observables of running task steps (their outcome arrives through them). */
  readonly #observables: (TaskObservable | undefined)[];
  /** 1 once a step's start, progress and retry events are forwarded (only while someone listens). */
  readonly #detailed: Uint8Array;
  readonly #controllers = new Map<number, LazyAbort>();

  #stop: CoordinatorState['stop'] = null;
  /** Failures reported but not yet acted on (they are handled on a microtask; see #failed). */
  #failures: Failure[] = [];
  /** The orchestrator refuses new tasks (shutting down): start nothing more. */
  #draining = false;
  #aborted = false;
  #abortReason: unknown = undefined;
  #finished = false;
  #rollingBack = false;
  readonly #compensated: string[] = [];
  readonly #compensationFailures: { step: string; error: WorkflowErrorInfo }[] = [];
  readonly #compensatedSet = new Set<string>();
  /** Aborted when the run stops, is aborted or ends: ends retry waits and waits for queue room. */
  readonly #stopped = new AbortController();
  /** Aborted when the coordinator is aborted or ends: ends polls. */
  readonly #ended = new AbortController();
  #compensation: AbortController | null = null;

  #idle: { resolve: () => void; reject: (error: unknown) => void } | null = null;
  #graceTimer: NodeJS.Timeout | null = null;

  // Throttled checkpoints.
  #dirty = false;
  #saving: Promise<void> | null = null;
  #saveTimer: NodeJS.Timeout | null = null;
  #lastSave = 0;

  constructor(host: CoordinatorHost, plan: WorkflowPlan, channel: RunChannel, runId: string, payload: CoordinatorPayload, ctx: TaskContext<CoordinatorState>) {
    this.#host = host;
    this.#plan = plan;
    this.#channel = channel;
    this.#runId = runId;
    this.#payload = payload;
    this.#ctx = ctx;
    this.#resuming = ctx.attempt > 1 || ctx.resumeState !== undefined;
    this.#durable = host.orchestrator.getStats().store !== 'memory';
    const n = plan.steps.length;
    this.#taskIds = new Array<string | undefined>(n);
    this.#observables = new Array<TaskObservable | undefined>(n);
    this.#detailed = new Uint8Array(n);
    this.#metadata = this.#durable ? Object.freeze({ workflowId: plan.id, workflowRunId: runId, workflowIncarnation: payload.incarnation }) : undefined;
    this.#state = new Uint8Array(n);
    this.#waiting = new Int32Array(n);
    this.#attempts = new Int32Array(n);
    for (let i = 0; i < n; i++) this.#waiting[i] = plan.steps[i]!.deps.length;
  }

  /** The running steps now (a list, so that the caller may change their states). */
  #runningSteps(): number[] {
    const out: number[] = [];
    if (this.#liveCount === 0) return out;
    for (let i = 0; i < this.#state.length; i++) if (this.#state[i] === RUNNING) out.push(i);
    return out;
  }

  get #orchestrator(): ParallelOrchestrator {
    return this.#host.orchestrator;
  }

  #taskId(step: StepPlan): string {
    return (this.#taskIds[step.index] ??= `${this.#runId}/${step.name}`);
  }

  /** Runs the workflow to its result. Throws when the coordinator is aborted (cancelled or shut down). */
  async execute(pendingCancel: string | undefined): Promise<WorkflowResult> {
    const signal = this.#ctx.signal;
    const onAbort = () => this.#onAbort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal.aborted) throw signal.reason;
      const state = this.#ctx.resumeState;
      if (state !== undefined) this.#restore(state);
      this.#channel.status = this.#stop === null ? 'running' : 'rolling-back';
      this.#channel.emit('workflow:started', { type: 'workflow:started', runId: this.#runId, workflowId: this.#plan.id, resumed: this.#resuming, attempt: this.#ctx.attempt });
      if (pendingCancel !== undefined && this.#stop === null) this.cancel(pendingCancel);
      // Someone starts listening to step details: forward them from the steps running now too.
      this.#channel.onListen = (event) => {
        if (event !== 'step:started' && event !== 'step:progress' && event !== 'step:retry' && event !== '*') return;
        for (const i of this.#runningSteps()) {
          const observable = this.#observables[i];
          if (observable !== undefined) this.#followDetails(i, observable);
        }
      };
      const idle = new Promise<void>((resolve, reject) => (this.#idle = { resolve, reject }));
      for (const i of this.#plan.order) if (this.#state[i] === WAITING && this.#waiting[i] === 0) this.#start(i);
      this.#check();
      await idle;
      if (this.#stop !== null) await this.#rollback();
      if (this.#aborted) throw this.#abortReason;
      return this.#result();
    } catch (error) {
      // Preempted: save where the run stands (on every store), so that it resumes from there and
      // takes the results of its task steps, which go on meanwhile, instead of submitting them again.
      if (hasCode(error, 'PREEMPTED')) await this.#ctx.checkpoint(this.#snapshot()).catch(() => {});
      throw error;
    } finally {
      this.#finished = true;
      signal.removeEventListener('abort', onAbort);
      if (!this.#stopped.signal.aborted) this.#stopped.abort();
      if (!this.#ended.signal.aborted) this.#ended.abort();
      if (this.#saveTimer !== null) clearTimeout(this.#saveTimer);
      if (this.#graceTimer !== null) clearTimeout(this.#graceTimer);
      this.#channel.onListen = () => {};
      this.#observables.fill(undefined);
    }
  }

  /** `running` or `rolling-back` (once a stop was decided). */
  get phase(): 'running' | 'rolling-back' {
    return this.#stop === null ? 'running' : 'rolling-back';
  }

  /** A function step's state here (for getWorkflow). */
  stepInfo(name: string): { status: 'pending' | 'running' | StepOutcome; taskId: null; attempts: number } | undefined {
    const i = this.#plan.byName.get(name);
    if (i === undefined) return undefined;
    const states = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;
    const status = this.#state[i] === COMPLETED && this.#compensatedSet.has(name) ? (this.#compensated.includes(name) ? 'compensated' : 'compensation-failed') : states[this.#state[i]!]!;
    return { status, taskId: null, attempts: this.#attempts[i]! };
  }

  /** Asks the run to stop and roll back (status cancelled). False once it stops, rolls back or ended. */
  cancel(reason: string): boolean {
    if (this.#stop !== null || this.#failures.length > 0 || this.#aborted || this.#finished || this.#rollingBack) return false;
    this.#beginStop({ reason: 'cancelled', failedStep: null, error: { name: 'TaskCancelledError', message: reason, code: 'TASK_CANCELLED' } }, reason);
    return true;
  }

  // Restoring a checkpoint.

  #restore(state: CoordinatorState): void {
    if (!isRecord(state) || state.v !== 1 || !Array.isArray(state.done)) return;
    for (const entry of state.done) {
      const i = Array.isArray(entry) && typeof entry[0] === 'string' ? this.#plan.byName.get(entry[0]) : undefined;
      if (i === undefined || this.#state[i] !== WAITING) continue;
      this.#state[i] = COMPLETED;
      this.#results[entry[0]] = entry[1];
      this.#order.push(i);
      this.#done.push([entry[0], entry[1]]);
      this.#completed++;
      for (const d of this.#plan.steps[i]!.dependents) this.#waiting[d]!--;
    }
    if (state.phase === 'rolling-back' && state.stop !== null && isRecord(state.stop)) this.#stop = state.stop;
    for (const step of state.compensated ?? []) {
      this.#compensated.push(step);
      this.#compensatedSet.add(step);
    }
    for (const failure of state.compensationFailures ?? []) {
      this.#compensationFailures.push(failure);
      this.#compensatedSet.add(failure.step);
    }
  }

  // Starting steps.

  #start(i: number): void {
    const step = this.#plan.steps[i]!;
    if (this.#stop !== null || this.#failures.length > 0 || this.#draining || this.#aborted) {
      // A resumed run may find this step started before the crash: look, and cancel it if live.
      if (this.#resuming && step.kind === 'task' && !this.#aborted && !this.#draining) {
        this.#state[i] = RUNNING;
        this.#liveCount++;
        void this.#attach(i);
      }
      return;
    }
    this.#state[i] = RUNNING;
    this.#liveCount++;
    if (step.kind === 'run') void this.#runFunction(i);
    else if (this.#resuming) void this.#attach(i);
    else this.#submit(i);
  }

  #submit(i: number): void {
    const step = this.#plan.steps[i]!;
    const definition = step.definition;
    const taskId = this.#taskId(step);
    let payload: unknown;
    try {
      payload = definition.input !== undefined ? definition.input(this.#results, this.#payload.input) : this.#defaultPayload(step);
    } catch (error) {
      this.#failed(i, toError(error), 0);
      return;
    }
    const spec: TaskSpec = {
      id: taskId,
      type: definition.type ?? step.name,
      priority: (definition.priority ?? this.#payload.priority) as TaskSpec['priority'],
      capabilities: definition.capabilities!,
      payload,
    };
    if (this.#metadata !== undefined) spec.metadata = this.#metadata;
    if (definition.timeout !== undefined) spec.timeout = definition.timeout;
    if (definition.retry !== undefined) spec.retry = definition.retry;
    if (definition.preferredRole !== undefined) spec.preferredRole = definition.preferredRole;
    if (definition.waitForAgent !== undefined) spec.waitForAgent = definition.waitForAgent;
    let observable: TaskObservable;
    try {
      observable = this.#orchestrator.submit(spec);
    } catch (error) {
      this.#submitFailed(i, spec, error);
      return;
    }
    this.#follow(i, observable);
  }

  #submitFailed(i: number, spec: TaskSpec, error: unknown): void {
    if (this.#state[i] !== RUNNING) return;
    if (hasCode(error, 'QUEUE_FULL')) {
      // Backpressure: wait for room (ended by a stop or an abort).
      this.#orchestrator.submitAsync(spec, { signal: this.#stopped.signal }).then(
        (observable) => {
          this.#follow(i, observable);
          // Queued just as the run stopped: it is a live step to cancel like the others.
          if (this.#stop !== null) void this.#orchestrator.cancel(spec.id!, this.#stopMessage()).catch(() => false);
        },
        (later: unknown) => (hasCode(later, 'ABORTED') ? this.#withdraw(i) : this.#submitFailed(i, spec, later)),
      );
      return;
    }
    if (hasCode(error, 'SHUTDOWN')) {
      // The orchestrator is shutting down: start nothing more; the abort (or the end of the live steps) follows.
      this.#draining = true;
      this.#withdraw(i);
      return;
    }
    if (hasCode(error, 'DUPLICATE_TASK')) {
      // Already live: another coordinator of this run (a node thought dead), or a leftover.
      void this.#attach(i);
      return;
    }
    this.#failed(i, toError(error), 0);
  }

  /** The step did not start after all: back to waiting. */
  #withdraw(i: number): void {
    if (this.#state[i] !== RUNNING) return;
    this.#observables[i] = undefined;
    this.#state[i] = WAITING;
    this.#liveCount--;
    this.#check();
  }

  #defaultPayload(step: StepPlan): { input: unknown; results: Record<string, unknown> } {
    // No prototype: objects whose keys differ from one to the next are ~20x cheaper to build so in V8.
    const results = Object.create(null) as Record<string, unknown>;
    for (const d of step.deps) {
      const name = this.#plan.steps[d]!.name;
      setKey(results, name, this.#results[name]);
    }
    return { input: this.#payload.input, results };
  }

  /**
   * Finds the step's task (resumed runs): a live one of this run is awaited (and cancelled when
   * the run stops), a finished one taken as it ended, a missing one submitted.
   */
  async #attach(i: number): Promise<void> {
    const step = this.#plan.steps[i]!;
    const taskId = this.#taskId(step);
    let details: Awaited<ReturnType<ParallelOrchestrator['findTask']>>;
    try {
      details = await this.#orchestrator.findTask(taskId);
    } catch (error) {
      this.#failed(i, toError(error), 0);
      return;
    }
    // A task event may have settled it meanwhile.
    if (this.#state[i] !== RUNNING) return;
    // (Without metadata, memory store: no task of an earlier run with this id can be found here.)
    const ours = details !== undefined && (this.#metadata === undefined || (isRecord(details.metadata) && details.metadata.workflowIncarnation === this.#payload.incarnation));
    const stopping = this.#stop !== null || this.#failures.length > 0 || this.#aborted;
    if (details === undefined || !ours) {
      if (details !== undefined && LIVE_STATUSES.has(details.status)) {
        this.#failed(i, new DuplicateTaskError(taskId), 0);
      } else if (stopping || this.#draining) {
        this.#withdraw(i);
      } else {
        this.#submit(i);
      }
      return;
    }
    this.#attempts[i] = details.attempt;
    switch (details.status) {
      case 'completed':
        this.#stepCompleted(i, details.result, details.attempt, null, true);
        return;
      case 'cancelled':
        this.#stepCancelled(i, details.error?.message ?? 'cancelled');
        return;
      case 'failed':
      case 'timeout':
        this.#stepFailed(i, errorFromInfo(details.error, `step ${step.name} failed`), details.error?.code ?? 'TASK_FAILED', details.attempt);
        return;
      default: {
        // Live: follow it (an observable of a task that ended meanwhile still gives its end).
        const observable = this.#orchestrator.observe(taskId);
        if (observable !== undefined) this.#follow(i, observable);
        // (While a failure waits to be handled, #beginStop cancels it with the other live steps.)
        if (this.#stop !== null) void this.#orchestrator.cancel(taskId, this.#stopMessage()).catch(() => {});
        // Running where this process cannot observe it (another node): look it up now and then.
        if (observable === undefined) void this.#poll(i, taskId);
      }
    }
  }

  async #poll(i: number, taskId: string): Promise<void> {
    while (this.#state[i] === RUNNING && !this.#finished) {
      await sleep(POLL_MS, this.#ended.signal);
      if (this.#ended.signal.aborted) return;
      const details = await this.#orchestrator.findTask(taskId).catch(() => undefined);
      if (this.#state[i] !== RUNNING || details === undefined) continue;
      if (details.status === 'completed') this.#stepCompleted(i, details.result, details.attempt, null, true);
      else if (details.status === 'cancelled') this.#stepCancelled(i, details.error?.message ?? 'cancelled');
      else if (!LIVE_STATUSES.has(details.status)) this.#stepFailed(i, errorFromInfo(details.error, 'failed'), details.error?.code ?? 'TASK_FAILED', details.attempt);
      else if (this.#stop !== null) await this.#orchestrator.cancel(taskId, this.#stopMessage()).catch(() => false);
    }
  }

  // Task events, routed here by the host (synchronously, inside the engine's transition).

  /** Takes a task step's outcome (and, while someone listens, its details) from its observable. */
  #follow(i: number, observable: TaskObservable): void {
    this.#observables[i] = observable;
    // The listeners are never removed: once the step settled they find it no longer running.
    observable.on('complete', (event) => this.#stepCompleted(i, event.result, event.attempts, event.duration, false));
    observable.on('error', (event) => this.#stepFailed(i, event.error, event.code, event.attempts));
    observable.on('cancelled', (event) => this.#stepCancelled(i, event.reason));
    if (this.#channel.has('step:started') || this.#channel.has('step:progress') || this.#channel.has('step:retry')) this.#followDetails(i, observable);
  }

  #followDetails(i: number, observable: TaskObservable): void {
    if (this.#detailed[i] === 1) return;
    this.#detailed[i] = 1;
    const name = this.#plan.steps[i]!.name;
    observable.on('start', (event) => {
      if (this.#state[i] !== RUNNING || this.#finished) return;
      this.#attempts[i] = event.attempt;
      if (this.#channel.has('step:started')) this.#channel.emit('step:started', { type: 'step:started', runId: this.#runId, step: name, taskId: event.taskId, agentId: event.agentId, attempt: event.attempt });
    });
    const progress = (event: { data: unknown; metadata: { sequence: number }; delta?: WorkflowEvents['step:progress']['delta'] }) => {
      if (this.#state[i] !== RUNNING || this.#finished || !this.#channel.has('step:progress')) return;
      const payload: WorkflowEvents['step:progress'] = { type: 'step:progress', runId: this.#runId, step: name, taskId: observable.taskId, sequence: event.metadata.sequence, data: event.data };
      if (event.delta !== undefined) payload.delta = event.delta;
      this.#channel.emit('step:progress', payload);
    };
    observable.on('delta', progress);
    observable.on('update', progress);
    observable.on('retry', (event) => {
      if (this.#state[i] !== RUNNING || this.#finished || !this.#channel.has('step:retry')) return;
      this.#channel.emit('step:retry', { type: 'step:retry', runId: this.#runId, step: name, attempt: event.attempt, delay: event.delay, error: event.error });
    });
  }

  // Step outcomes.

  #stepCompleted(i: number, result: unknown, attempts: number, duration: number | null, resumed: boolean): void {
    // (#finished: a listener left on a step's observable by an earlier attempt of this coordinator.)
    if (this.#state[i] !== RUNNING || this.#finished) return;
    const step = this.#plan.steps[i]!;
    this.#observables[i] = undefined;
    this.#liveCount--;
    this.#state[i] = COMPLETED;
    this.#attempts[i] = attempts;
    this.#results[step.name] = result;
    this.#order.push(i);
    this.#done.push([step.name, this.#durable ? storable(result) : result]);
    this.#completed++;
    if (this.#channel.has('step:completed')) {
      this.#channel.emit('step:completed', { type: 'step:completed', runId: this.#runId, step: step.name, result, attempts, duration, resumed });
    }
    this.#scheduleSave();
    for (const d of step.dependents) if (--this.#waiting[d]! === 0) this.#start(d);
    this.#check();
  }

  #stepFailed(i: number, error: Error, code: string, attempts: number): void {
    if (this.#state[i] !== RUNNING || this.#finished) return;
    this.#observables[i] = undefined;
    this.#liveCount--;
    this.#state[i] = FAILED;
    this.#attempts[i] = attempts;
    this.#failures.push({ index: i, error, code, attempts });
    // Acted on after the engine's current transition: a forced shutdown cancels every task in one
    // synchronous loop, and by the next microtask this coordinator knows it is being shut down.
    if (this.#failures.length === 1) queueMicrotask(() => this.#handleFailures());
  }

  #failed(i: number, error: Error, attempts: number): void {
    this.#stepFailed(i, error, codeOf(error), attempts);
  }

  #stepCancelled(i: number, reason: string): void {
    if (this.#state[i] !== RUNNING || this.#finished) return;
    const step = this.#plan.steps[i]!;
    if (this.#stop === null && !this.#aborted && !isShutdownReason(reason)) {
      // Cancelled by someone else than this run: a failure of the step.
      this.#failed(i, new TaskCancelledError(this.#taskId(step), reason), this.#attempts[i]!);
      return;
    }
    this.#observables[i] = undefined;
    this.#liveCount--;
    if (this.#stop === null) {
      // Shut down: the step stays for the next start() (durable store); this coordinator stops too.
      this.#state[i] = WAITING;
      this.#draining = true;
    } else {
      this.#state[i] = CANCELLED;
      this.#channel.emit('step:cancelled', { type: 'step:cancelled', runId: this.#runId, step: step.name, reason });
    }
    this.#check();
  }

  #handleFailures(): void {
    const failures = this.#failures;
    this.#failures = [];
    if (this.#aborted) return this.#check();
    for (const failure of failures) {
      this.#channel.emit('step:failed', {
        type: 'step:failed',
        runId: this.#runId,
        step: this.#plan.steps[failure.index]!.name,
        error: failure.error,
        code: failure.code,
        attempts: failure.attempts,
      });
    }
    if (this.#stop === null) {
      // The first failure in dependency order is the run's.
      const first = failures.reduce((a, b) => (this.#plan.rank[b.index]! < this.#plan.rank[a.index]! ? b : a));
      const name = this.#plan.steps[first.index]!.name;
      this.#beginStop({ reason: 'failed', failedStep: name, error: { name: first.error.name, message: first.error.message, code: first.code } }, `workflow run ${this.#runId} failed: step ${name} failed`);
    } else {
      this.#check();
    }
  }

  #stopMessage(): string {
    const stop = this.#stop;
    return stop?.reason === 'failed' ? `workflow run ${this.#runId} failed: step ${stop.failedStep} failed` : `workflow run ${this.#runId} was cancelled`;
  }

  /** No new steps start; live ones are cancelled; once they ended, the rollback runs. */
  #beginStop(stop: NonNullable<CoordinatorState['stop']>, message: string): void {
    this.#stop = stop;
    if (!this.#stopped.signal.aborted) this.#stopped.abort();
    // Saved now, so a crash from here on resumes into the rollback rather than the run.
    void this.#save().catch(() => {});
    let functionSteps = 0;
    for (const i of this.#runningSteps()) {
      const step = this.#plan.steps[i]!;
      if (step.kind === 'task') {
        void this.#orchestrator.cancel(this.#taskId(step), message).catch(() => false);
      } else {
        functionSteps++;
        this.#controllers.get(i)?.abort(new TaskCancelledError(this.#taskId(step), message));
      }
    }
    if (functionSteps > 0) {
      // Function steps get `cancelGrace` ms to stop (one that completes meanwhile is compensated).
      this.#graceTimer = setTimeout(() => {
        this.#graceTimer = null;
        for (const i of this.#runningSteps()) {
          const step = this.#plan.steps[i]!;
          if (step.kind !== 'run' || this.#state[i] !== RUNNING) continue;
          this.#liveCount--;
          this.#controllers.delete(i);
          this.#state[i] = CANCELLED;
          this.#channel.emit('step:cancelled', { type: 'step:cancelled', runId: this.#runId, step: step.name, reason: `${message} (it did not stop within cancelGrace, ${this.#plan.cancelGrace} ms)` });
        }
        this.#check();
      }, this.#plan.cancelGrace);
    }
    this.#check();
  }

  /** Resolves the wait for the running phase once nothing is live and the run is done or stopping. */
  #check(): void {
    if (this.#idle === null || this.#liveCount > 0 || this.#failures.length > 0) return;
    if (this.#aborted) return;
    if (this.#completed === this.#plan.steps.length || this.#stop !== null) {
      const idle = this.#idle;
      this.#idle = null;
      if (this.#graceTimer !== null) {
        clearTimeout(this.#graceTimer);
        this.#graceTimer = null;
      }
      idle.resolve();
    }
    // Draining (shutting down) with steps left: wait for the abort that ends this coordinator.
  }

  #onAbort(reason: unknown): void {
    if (this.#finished) return;
    this.#aborted = true;
    this.#abortReason = reason;
    if (!this.#stopped.signal.aborted) this.#stopped.abort(reason);
    this.#ended.abort(reason);
    this.#compensation?.abort(reason);
    // A shutdown cancels the task steps itself; a preempted run resumes and takes their results
    // then; a run whose claim was lost is carried on by another node, which follows them now.
    const keepSteps = isShutdownReason(reason) || hasCode(reason, 'PREEMPTED') || hasCode(reason, 'CLAIM_LOST');
    for (const i of this.#runningSteps()) {
      const step = this.#plan.steps[i]!;
      if (step.kind === 'run') this.#controllers.get(i)?.abort(reason);
      // Cancelled by hand (orchestrator.cancel(runId)): stop the steps too.
      else if (!keepSteps) void this.#orchestrator.cancel(this.#taskId(step), `workflow run ${this.#runId} was cancelled`).catch(() => false);
    }
    const idle = this.#idle;
    this.#idle = null;
    idle?.reject(reason);
  }

  // Function steps.

  async #runFunction(i: number): Promise<void> {
    const step = this.#plan.steps[i]!;
    const definition = step.definition;
    const timeout = definition.timeout ?? 0;
    for (let attempt = 1; ; attempt++) {
      const abort = new LazyAbort();
      this.#controllers.set(i, abort);
      this.#attempts[i] = attempt;
      if (this.#channel.has('step:started')) {
        this.#channel.emit('step:started', { type: 'step:started', runId: this.#runId, step: step.name, taskId: null, agentId: null, attempt });
      }
      const ctx = new FunctionStepContext(this, i, step.name, attempt, abort);
      const startedAt = performance.now();
      let outcome: Outcome;
      if (timeout === 0) {
        // The common case, kept light: one await (a synchronous throw is caught here too).
        try {
          outcome = { ok: true, value: await definition.run!(ctx) };
        } catch (thrown) {
          outcome = { ok: false, error: toError(thrown) };
        }
      } else {
        const taskId = this.#taskId(step);
        outcome = await invoke(() => definition.run!(ctx), abort, timeout, () => new TaskTimeoutError(taskId, timeout));
      }
      if (this.#controllers.get(i) === abort) this.#controllers.delete(i);
      // Abandoned after cancelGrace, or the coordinator ended: the outcome is of no use.
      if (this.#state[i] !== RUNNING || this.#finished) return;
      if (outcome.ok) {
        this.#stepCompleted(i, outcome.value, attempt, performance.now() - startedAt, false);
        return;
      }
      if (this.#stop !== null || this.#aborted) {
        if (this.#aborted) {
          this.#liveCount--;
          this.#state[i] = WAITING;
          return;
        }
        this.#liveCount--;
        this.#state[i] = CANCELLED;
        this.#channel.emit('step:cancelled', { type: 'step:cancelled', runId: this.#runId, step: step.name, reason: this.#stopMessage() });
        this.#check();
        return;
      }
      const error = outcome.error;
      const policy = functionRetryPolicy(definition.retry);
      if (attempt < policy.maxAttempts && (error as { retryable?: unknown }).retryable !== false) {
        const delay = backoff(policy, attempt + 1);
        if (this.#channel.has('step:retry')) this.#channel.emit('step:retry', { type: 'step:retry', runId: this.#runId, step: step.name, attempt: attempt + 1, delay, error });
        await sleep(delay, this.#stopped.signal);
        if (this.#state[i] !== RUNNING || this.#finished) return;
        if (this.#stop !== null || this.#aborted || this.#failures.length > 0) {
          // Stopped while waiting for the retry: the step ends here.
          this.#liveCount--;
          this.#state[i] = this.#aborted ? WAITING : CANCELLED;
          if (!this.#aborted) this.#channel.emit('step:cancelled', { type: 'step:cancelled', runId: this.#runId, step: step.name, reason: this.#stopMessage() });
          this.#check();
          return;
        }
        continue;
      }
      this.#stepFailed(i, error, codeOf(error), attempt);
      return;
    }
  }

  /** @internal What a function step's ctx needs of the run. */
  get runId(): string {
    return this.#runId;
  }

  get workflowId(): string {
    return this.#plan.id;
  }

  get input(): unknown {
    return this.#payload.input;
  }

  get results(): Record<string, unknown> {
    return this.#results;
  }

  /** A function step's `ctx.progress`. */
  functionProgress(i: number, abort: LazyAbort, data: unknown, sequence: number): void {
    if (abort.aborted || this.#state[i] !== RUNNING || !this.#channel.has('step:progress')) return;
    this.#channel.emit('step:progress', { type: 'step:progress', runId: this.#runId, step: this.#plan.steps[i]!.name, taskId: null, sequence, data });
  }

  // Rollback.

  async #rollback(): Promise<void> {
    this.#rollingBack = true;
    this.#channel.status = 'rolling-back';
    const stop = this.#stop!;
    const queue: number[] = [];
    for (let k = this.#order.length - 1; k >= 0; k--) {
      const i = this.#order[k]!;
      const step = this.#plan.steps[i]!;
      if (step.definition.compensate !== undefined && !this.#compensatedSet.has(step.name)) queue.push(i);
    }
    this.#channel.emit('rollback:started', { type: 'rollback:started', runId: this.#runId, reason: stop.reason, failedStep: stop.failedStep, steps: queue.map((i) => this.#plan.steps[i]!.name) });
    await this.#saveNow();
    for (const i of queue) {
      if (this.#aborted) throw this.#abortReason;
      const step = this.#plan.steps[i]!;
      this.#channel.emit('compensation:started', { type: 'compensation:started', runId: this.#runId, step: step.name });
      const startedAt = performance.now();
      const outcome = await this.#compensate(step, stop);
      if (this.#aborted) throw this.#abortReason;
      this.#compensatedSet.add(step.name);
      if (outcome.ok) {
        this.#compensated.push(step.name);
        this.#channel.emit('compensation:completed', { type: 'compensation:completed', runId: this.#runId, step: step.name, duration: performance.now() - startedAt });
      } else {
        this.#compensationFailures.push({ step: step.name, error: errorInfo(outcome.error) });
        this.#channel.emit('compensation:failed', { type: 'compensation:failed', runId: this.#runId, step: step.name, error: outcome.error, code: codeOf(outcome.error) });
      }
      await this.#saveNow();
    }
    this.#channel.emit('rollback:completed', { type: 'rollback:completed', runId: this.#runId, compensated: [...this.#compensated], failures: [...this.#compensationFailures] });
  }

  #compensate(step: StepPlan, stop: NonNullable<CoordinatorState['stop']>): Promise<Outcome> {
    const controller = new AbortController();
    this.#compensation = controller;
    const timeout = step.definition.compensationTimeout ?? this.#plan.compensationTimeout;
    const ctx: CompensationContext = {
      runId: this.#runId,
      workflowId: this.#plan.id,
      step: step.name,
      input: this.#payload.input,
      result: this.#results[step.name],
      results: this.#results,
      reason: stop.reason,
      failedStep: stop.failedStep,
      signal: controller.signal,
    };
    return invoke(() => step.definition.compensate!(ctx), controller, timeout, () => new CompensationTimeoutError(this.#runId, step.name, timeout)).finally(() => {
      if (this.#compensation === controller) this.#compensation = null;
    });
  }

  // Checkpoints.

  #snapshot(): CoordinatorState {
    return {
      v: 1,
      phase: this.#stop === null ? 'running' : 'rolling-back',
      // The live list: the engine copies the state as it takes it.
      done: this.#done,
      stop: this.#stop,
      compensated: [...this.#compensated],
      compensationFailures: [...this.#compensationFailures],
    };
  }

  /** A save soon: at once when the last one is `checkpointInterval` ms old, else when it will be. */
  #scheduleSave(): void {
    if (!this.#durable) return;
    this.#dirty = true;
    if (this.#saving !== null || this.#saveTimer !== null || this.#finished) return;
    const wait = this.#lastSave + this.#plan.checkpointInterval - performance.now();
    if (wait <= 0) {
      void this.#save().catch(() => {});
      return;
    }
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = null;
      void this.#save().catch(() => {});
    }, wait);
  }

  /** Saves the state now (after a save in flight). Rejects when the store refused it. */
  async #save(): Promise<void> {
    if (!this.#durable) return;
    while (this.#saving !== null) await this.#saving.catch(() => {});
    if (this.#finished && !this.#rollingBack) return;
    this.#dirty = false;
    this.#lastSave = performance.now();
    const saving = this.#ctx.checkpoint(this.#snapshot());
    this.#saving = saving;
    try {
      await saving;
    } finally {
      this.#saving = null;
      if (this.#dirty && !this.#finished) this.#scheduleSave();
    }
  }

  /** Rollback progress is saved before the next compensation starts; a failed save fails the coordinator (it is retried and resumes). */
  async #saveNow(): Promise<void> {
    if (this.#aborted) return;
    if (this.#saveTimer !== null) {
      clearTimeout(this.#saveTimer);
      this.#saveTimer = null;
    }
    await this.#save();
  }

  // The result.

  #result(): WorkflowResult {
    const steps: Record<string, StepOutcome> = {};
    const failedCompensations = new Set(this.#compensationFailures.map((f) => f.step));
    const compensated = new Set(this.#compensated);
    const results: Record<string, unknown> = {};
    for (const step of this.#plan.steps) {
      let outcome: StepOutcome;
      switch (this.#state[step.index]) {
        case COMPLETED:
          outcome = compensated.has(step.name) ? 'compensated' : failedCompensations.has(step.name) ? 'compensation-failed' : 'completed';
          setKey(results, step.name, this.#durable ? storable(this.#results[step.name]) : this.#results[step.name]);
          break;
        case FAILED:
          outcome = 'failed';
          break;
        case CANCELLED:
        case RUNNING:
          outcome = 'cancelled';
          break;
        default:
          outcome = 'skipped';
      }
      setKey(steps, step.name, outcome);
    }
    const stop = this.#stop;
    return {
      runId: this.#runId,
      workflowId: this.#plan.id,
      status: stop === null ? 'completed' : stop.reason,
      results,
      failedStep: stop?.failedStep ?? null,
      error: stop?.error ?? null,
      rolledBack: stop !== null && this.#compensationFailures.length === 0,
      compensated: [...this.#compensated],
      compensationFailures: [...this.#compensationFailures],
      steps,
      startedAt: this.#payload.startedAt,
      finishedAt: Date.now(),
    };
  }
}

/** What a function step receives: its signal is made on first use (most steps never read it). */
class FunctionStepContext implements StepContext {
  readonly #coordinator: Coordinator;
  readonly #index: number;
  readonly #abort: LazyAbort;
  #sequence = 0;
  readonly step: string;
  readonly attempt: number;

  constructor(coordinator: Coordinator, index: number, step: string, attempt: number, abort: LazyAbort) {
    this.#coordinator = coordinator;
    this.#index = index;
    this.step = step;
    this.attempt = attempt;
    this.#abort = abort;
  }

  get runId(): string {
    return this.#coordinator.runId;
  }

  get workflowId(): string {
    return this.#coordinator.workflowId;
  }

  get input(): unknown {
    return this.#coordinator.input;
  }

  get results(): Record<string, unknown> {
    return this.#coordinator.results;
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  progress(state: unknown): void {
    this.#coordinator.functionProgress(this.#index, this.#abort, state, ++this.#sequence);
  }
}

/**
 * A result as a durable store can keep it: itself when JSON can encode it, else a note saying
 * why (a BigInt, a cycle): the run's checkpoint and its final result must be JSON.
 */
function storable(result: unknown): unknown {
  try {
    JSON.stringify(result);
    return result;
  } catch (error) {
    return { unserializableResult: error instanceof Error ? error.message : String(error) };
  }
}

/** Sets a key of a plain object; a key named __proto__ becomes an own property too (not the prototype). */
function setKey(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/**
 * Calls `fn` and settles with its outcome, or with `timeoutError()` after `timeout` ms (0 = no
 * limit), aborting `controller` then. A synchronous throw is an outcome like any other.
 */
function invoke(fn: () => unknown, controller: { abort(reason?: unknown): void }, timeout: number, timeoutError: () => Error): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    let timer: NodeJS.Timeout | null = null;
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      if (timer !== null) clearTimeout(timer);
      resolve(outcome);
    };
    if (timeout > 0) {
      timer = setTimeout(() => {
        const error = timeoutError();
        controller.abort(error);
        settle({ ok: false, error });
      }, timeout);
    }
    try {
      Promise.resolve(fn()).then(
        (value) => settle({ ok: true, value }),
        (error: unknown) => settle({ ok: false, error: toError(error) }),
      );
    } catch (error) {
      settle({ ok: false, error: toError(error) });
    }
  });
}
