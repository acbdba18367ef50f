import { TaskStatus } from '../enums.js';
import { NoCapableAgentError, TaskCancelledError, errorCode, isRetryable } from '../errors.js';
import { retryDelay } from '../queue/backoff.js';
import type { WorkSource } from '../queue/work-source.js';
import type { DeadLetter } from '../types.js';
import type { Checkpoints } from './checkpoints.js';
import type { EventSink } from './event-sink.js';
import type { TaskRecord, TaskRun } from './task-record.js';
import type { TaskTable } from './task-table.js';

/**
 * Told of every transition of a task, in order, after its status changed: event fan-out, the
 * journal (store rows and audit trail), counters; later telemetry or a database notifier.
 * One method per transition, positional arguments: a transition allocates nothing for its sinks.
 * The work source has the task before sinks run, so a listener that cancels it finds it there.
 */
export interface TransitionSink {
  submitted(record: TaskRecord): void;
  /** Queued again at start() after a previous process left it unfinished. */
  recovered(record: TaskRecord, previousStatus: TaskStatus, resumed: boolean): void;
  started(record: TaskRecord, run: TaskRun): void;
  completed(record: TaskRecord, run: TaskRun): void;
  /** An attempt failed or timed out (`status`); `retrying` or `failed` follows. `run` is null for a task that never started. */
  attemptFailed(record: TaskRecord, run: TaskRun | null, error: Error, status: TaskStatus): void;
  retrying(record: TaskRecord, error: Error, delay: number): void;
  /** A retry delay ran out, or a thread handed back a job it never started: queued again. */
  requeued(record: TaskRecord): void;
  failed(record: TaskRecord, error: Error, status: TaskStatus, deadLetter: DeadLetter): void;
  /** `keepInStore`: a forced shutdown on a durable store: the task ends in this process only. */
  cancelled(record: TaskRecord, reason: string, keepInStore: boolean): void;
  /** The run gave its slot to the more urgent task `by`; the task is queued again (its attempt not counted). */
  preempted(record: TaskRecord, run: TaskRun, by: TaskRecord): void;
}

/** How the lifecycle stops a running attempt it cancels. */
export interface RunControl {
  /** Ends the attempt now (its handler is aborted and watched for being stuck); its outcome no longer counts. */
  abandon(run: TaskRun, reason: Error): void;
}

/**
 * The task state machine: the only code that sets a task's status and outcome. At every
 * transition the work source is told first, then the sinks, then the task table.
 *
 *   submitted / recovered ─▶ queued ──start──▶ running ──complete──▶ completed
 *                              ▲ │                │ ├─ attempt failed, none left ─▶ failed | timeout (dead letter)
 *                              │ │                │ ├─ attempt failed, retry ─▶ retrying ─(delay)─▶ queued
 *                              │ │                │ ├─ preempted (a more urgent task took the slot) ─▶ queued, at the front
 *                              │ │                │ └─ handed back unstarted (a thread died) ─▶ queued
 *                              │ └────────────────┴─ cancel (also from retrying) ─▶ cancelled
 */
export class TaskLifecycle {
  #source!: WorkSource<TaskRecord>;
  #runs!: RunControl;

  constructor(
    readonly table: TaskTable,
    readonly sinks: readonly TransitionSink[],
    /** The sink of events (among `sinks`), told directly of transitions made by other processes. */
    readonly events: EventSink,
    readonly checkpoints: Checkpoints,
    /** True once retries may no longer be scheduled (the engine stopped). */
    readonly stopped: () => boolean,
    readonly clock: () => number,
    /** Told when an outcome of this process is discarded because another took the task over. */
    readonly onClaimLost: (record: TaskRecord, reason: string) => void,
  ) {}

  /** Wired after construction: the source and the executor are built with this lifecycle as their host. */
  connect(source: WorkSource<TaskRecord>, runs: RunControl): void {
    this.#source = source;
    this.#runs = runs;
  }

  submit(record: TaskRecord, callerChosenId: boolean): void {
    this.table.add(record, callerChosenId);
    this.#source.offer(record, 0);
    for (let i = 0, sinks = this.sinks; i < sinks.length; i++) sinks[i]!.submitted(record);
  }

  /** A task a previous process left unfinished; `record.attempt` holds the attempts it started. */
  recover(record: TaskRecord, previousStatus: TaskStatus, resumed: boolean, crashedOnLastAttempt: Error | null): void {
    this.table.add(record, true);
    for (let i = 0, sinks = this.sinks; i < sinks.length; i++) sinks[i]!.recovered(record, previousStatus, resumed);
    // The run the crash cut short used up the last attempt: it may be what crashes the process.
    if (crashedOnLastAttempt !== null) this.fail(record, crashedOnLastAttempt, TaskStatus.FAILED);
    else this.#source.offer(record, 0);
  }

  start(record: TaskRecord, run: TaskRun): void {
    record.status = TaskStatus.RUNNING;
    record.run = run;
    record.worker = run.worker;
    for (let i = 0, sinks = this.sinks; i < sinks.length; i++) sinks[i]!.started(record, run);
  }

  complete(record: TaskRecord, run: TaskRun, result: unknown): void {
    record.status = TaskStatus.COMPLETED;
    record.outcome = result;
    record.duration = run.duration;
    const settled = this.#source.settle(record, COMPLETED);
    if (settled === true) this.#completed(record, run);
    else this.#completedWhenSettled(settled, record, run);
  }

  // Closures live in their own methods: a closure in a branch of a hot method would make V8
  // allocate its captured variables on every call, taken or not.
  #completedWhenSettled(settled: false | Promise<boolean>, record: TaskRecord, run: TaskRun): void {
    this.#whenSettled(settled, record, () => this.#completed(record, run));
  }

  #completed(record: TaskRecord, run: TaskRun): void {
    for (let i = 0, sinks = this.sinks; i < sinks.length; i++) sinks[i]!.completed(record, run);
    this.#finish(record, run.startedAt + run.duration);
  }

  /** A shared source answers once the outcome is committed; false means another process holds the task now. */
  #whenSettled(settled: false | Promise<boolean>, record: TaskRecord, recorded: () => void): void {
    if (settled === false) {
      this.#claimLost(record);
      return;
    }
    // Refused after this process claimed the task again (its lease expired while the outcome
    // waited to be written): the newer claim carries on, running or with its own outcome on the way.
    const claim = record.claims;
    void settled.then((ok) => {
      if (ok) recorded();
      else if (record.claims === claim) this.#claimLost(record);
    });
  }

  /** An attempt failed (`status` FAILED) or timed out (TIMEOUT): retried while attempts are left, else failed. */
  attemptFailed(record: TaskRecord, run: TaskRun | null, error: Error, status: TaskStatus): void {
    for (let i = 0, sinks = this.sinks; i < sinks.length; i++) sinks[i]!.attemptFailed(record, run, error, status);
    if (isRetryable(error) && record.attempt < record.retry.maxAttempts && !this.stopped()) {
      const delay = retryDelay(record.retry, record.attempt + 1);
      record.status = TaskStatus.RETRYING;
      record.outcome = error;
      record.run = null;
      this.#source.offer(record, delay);
      for (let i = 0, sinks = this.sinks; i < sinks.length; i++) sinks[i]!.retrying(record, error, delay);
    } else {
      this.fail(record, error, status);
    }
  }

  /** The task fails for good and becomes a dead letter. */
  fail(record: TaskRecord, error: Error, status: TaskStatus): void {
    record.status = status;
    record.outcome = error;
    const deadLetter: DeadLetter = { taskId: record.id, type: record.type, spec: record.toSpec(), error, code: errorCode(error), attempts: record.attempt, failedAt: Date.now() };
    const settled = this.#source.settle(record, { kind: 'failed', deadLetter });
    if (settled === true) this.#failed(record, error, status, deadLetter);
    else this.#failedWhenSettled(settled, record, error, status, deadLetter);
  }

  #failedWhenSettled(settled: false | Promise<boolean>, record: TaskRecord, error: Error, status: TaskStatus, deadLetter: DeadLetter): void {
    this.#whenSettled(settled, record, () => this.#failed(record, error, status, deadLetter));
  }

  #failed(record: TaskRecord, error: Error, status: TaskStatus, deadLetter: DeadLetter): void {
    for (let i = 0, sinks = this.sinks; i < sinks.length; i++) sinks[i]!.failed(record, error, status, deadLetter);
    this.#finish(record, this.clock());
  }

  /** Cancels a queued, retrying or running task; false when it is in none of those states. */
  cancel(record: TaskRecord, reason: string, keepInStore: boolean): boolean {
    switch (record.status) {
      case TaskStatus.QUEUED:
      case TaskStatus.RETRYING:
        this.#source.withdraw(record, keepInStore);
        break;
      case TaskStatus.RUNNING:
        // No run here: it runs in another process (shared store), and this process only watches it.
        if (record.run === null) this.#source.withdraw(record, keepInStore);
        else this.#runs.abandon(record.run, new TaskCancelledError(record.id, reason));
        break;
      default:
        return false;
    }
    record.status = TaskStatus.CANCELLED;
    // The reason, not an error: building one (a stack capture) per task cancelled at shutdown is costly.
    record.outcome = reason;
    // Cancelled here at once; a shared source records it when it can (a lost claim then changes nothing here).
    if (!keepInStore) void this.#source.settle(record, CANCELLED);
    for (let i = 0, sinks = this.sinks; i < sinks.length; i++) sinks[i]!.cancelled(record, reason, keepInStore);
    this.#finish(record, this.clock(), keepInStore);
    return true;
  }

  /** The run gave its slot to a more urgent task: queued again ahead of its level, its attempt not counted. */
  preempted(record: TaskRecord, run: TaskRun, by: TaskRecord): void {
    record.attempt--;
    record.preemptions++;
    record.preemptionsSinceCheckpoint++;
    record.run = null;
    record.status = TaskStatus.QUEUED;
    this.#source.returnToFront(record);
    for (let i = 0, sinks = this.sinks; i < sinks.length; i++) sinks[i]!.preempted(record, run, by);
  }

  /** A thread handed back a job it never started: queued again where it was (ahead of its level), the attempt not counted. */
  handBack(record: TaskRecord): void {
    record.attempt--;
    record.run = null;
    record.status = TaskStatus.QUEUED;
    this.#source.returnToFront(record);
    for (let i = 0, sinks = this.sinks; i < sinks.length; i++) sinks[i]!.requeued(record);
  }

  // Verdicts of the work source

  unservable(record: TaskRecord): void {
    if (record.status !== TaskStatus.QUEUED && record.status !== TaskStatus.RETRYING) return;
    this.fail(record, new NoCapableAgentError(record.id, record.capabilities), TaskStatus.FAILED);
  }

  requeued(record: TaskRecord): void {
    record.status = TaskStatus.QUEUED;
    for (let i = 0, sinks = this.sinks; i < sinks.length; i++) sinks[i]!.requeued(record);
  }

  /**
   * The task left this process without ending (handed back to a shared store): no final event,
   * and it is no longer live here.
   */
  release(record: TaskRecord): void {
    if (record.run !== null) record.run = null;
    this.checkpoints.stopTracking(record);
    this.table.finished(record, this.clock());
    record.events?.removeAll();
  }

  /** This process's claim on the task was lost: another process took it over; what this one did is discarded. */
  #claimLost(record: TaskRecord): void {
    this.lose(record, 'the claim of this process was taken over by another; its outcome was discarded');
  }

  /**
   * The task is no longer this process's: said in an event. A task submitted here stays live,
   * queued as far as this process knows, and follows the process that took it over to its end;
   * any other leaves without a final event here.
   */
  lose(record: TaskRecord, reason: string): void {
    this.onClaimLost(record, reason);
    // Claimed here again meanwhile (the lost claim's outcome was still being written): it carries on under the new claim.
    if (this.#source.holds(record)) return;
    if (!this.#source.watches(record)) {
      this.release(record);
      return;
    }
    record.run = null;
    record.status = TaskStatus.QUEUED;
    record.outcome = undefined;
    this.checkpoints.stopTracking(record);
  }

  // Transitions made by another process, of tasks this one watches: events only (that process
  // journaled and counted them).

  remoteStarted(record: TaskRecord, agentId: string, workerId: string, attempt: number, nodeId: string): void {
    record.status = TaskStatus.RUNNING;
    record.attempt = attempt;
    this.#runsElsewhere(record, { agentId, workerId, nodeId });
    this.events.startedAs(record, agentId, workerId, attempt);
  }

  remoteRetrying(record: TaskRecord, attempt: number, delay: number, error: Error): void {
    record.status = TaskStatus.RETRYING;
    record.attempt = attempt - 1;
    record.outcome = error;
    this.events.retrying(record, error, delay);
  }

  remoteRequeued(record: TaskRecord, attempt: number): void {
    record.status = TaskStatus.QUEUED;
    record.attempt = attempt;
  }

  remotePreempted(record: TaskRecord, attempt: number, by: string, agentId: string, preemptions: number): void {
    record.status = TaskStatus.QUEUED;
    record.attempt = attempt;
    record.preemptions = preemptions;
    this.events.preemptedAs(record, by, agentId);
  }

  /** The task ended in another process or in the table; false when it had ended here already. */
  remoteEnded(record: TaskRecord, status: TaskStatus, outcome: unknown, end: { attempts: number; agentId: string | null; workerId: string | null; duration: number }): boolean {
    if (isEnded(record)) return false;
    record.status = status;
    record.outcome = outcome;
    record.attempt = end.attempts;
    record.duration = end.duration;
    if (end.agentId !== null) this.#runsElsewhere(record, { agentId: end.agentId, workerId: end.workerId ?? record.remote?.workerId ?? '', nodeId: record.remote?.nodeId ?? '' });
    if (status === TaskStatus.COMPLETED) this.events.completedAs(record, record.remote?.agentId ?? '', record.remote?.workerId ?? '', end.duration);
    else if (status === TaskStatus.CANCELLED) this.events.cancelled(record, outcome as string);
    else this.events.failedAs(record, outcome as Error, status);
    this.release(record);
    return true;
  }

  /** The latest run is another process's: its agent and worker are the task's now (not a run here whose claim was lost). */
  #runsElsewhere(record: TaskRecord, remote: NonNullable<TaskRecord['remote']>): void {
    record.remote = remote;
    record.agent = null;
    record.worker = null;
  }

  #finish(record: TaskRecord, finishedAt: number, keepInStore = false): void {
    record.run = null;
    // A completed or cancelled task will not run again; a failed one may be requeued from the dead letters.
    if (record.status === TaskStatus.COMPLETED || record.status === TaskStatus.CANCELLED) this.checkpoints.release(record, keepInStore);
    else this.checkpoints.stopTracking(record);
    this.table.finished(record, finishedAt);
    record.events?.removeAll();
  }
}

const COMPLETED = { kind: 'completed' } as const;
const CANCELLED = { kind: 'cancelled' } as const;

/** Ended here: its outcome is set (and maybe still being written), and no later transition applies. */
export function isEnded(record: TaskRecord): boolean {
  return record.status !== TaskStatus.QUEUED && record.status !== TaskStatus.RETRYING && record.status !== TaskStatus.RUNNING;
}
