import type { CircuitState, TaskStatus } from '../enums.js';
import { errorCode } from '../errors.js';
import type { AuditEventType, AuditSubject, Store } from '../persistence/store.js';
import type { DeadLetter } from '../types.js';
import { serializeError } from '../workers/protocol.js';
import type { TransitionSink } from './task-lifecycle.js';
import type { TaskRecord, TaskRun } from './task-record.js';

/**
 * What the store is told at each transition: the task's row (durable stores only: the engine
 * itself holds live tasks, so the memory store need not) and an audit entry. One place, so the
 * audit vocabulary stays in one file. Times are the engine's monotonic clock readings (ms)
 * where it has one, turned into epoch ms here, so a transition costs no extra clock read.
 */
export class Journal implements TransitionSink {
  /** True for stores that survive the process: task rows are written. */
  readonly durable: boolean;
  /**
   * Recovered tasks not started yet: their start is committed before their handler runs, so a
   * task that crashes the process again has that attempt counted, and its attempts run out.
   */
  readonly #recoveredUnstarted = new Set<TaskRecord>();

  constructor(
    readonly store: Store,
    readonly auditEnabled: boolean,
  ) {
    this.durable = store.durable;
  }

  submitted(record: TaskRecord): void {
    if (this.durable) this.store.saveTask(record);
    if (this.auditEnabled) this.#append('submitted', clock(), record, null, null);
  }

  recovered(record: TaskRecord, previousStatus: TaskStatus, resumed: boolean): void {
    this.store.saveTask(record);
    this.#recoveredUnstarted.add(record);
    if (this.auditEnabled) this.#append('recovered', clock(), record, null, { previousStatus, resumeState: resumed });
  }

  // The hot transitions carry no details: the task's type and priority are on the task, and
  // a run's duration is the time between its started and completed entries.
  started(record: TaskRecord, run: TaskRun): void {
    if (this.durable) this.store.saveTask(record);
    if (this.auditEnabled) this.#append('started', epoch(run.startedAt), record, run.agent.agentId, null);
    // (A failed commit is reported as store:error and retried by the store.)
    if (this.#recoveredUnstarted.size > 0 && this.#recoveredUnstarted.delete(record)) run.startCommitted = this.store.flush().catch(() => {});
  }

  completed(record: TaskRecord, run: TaskRun): void {
    if (this.durable) this.store.saveTask(record);
    if (this.auditEnabled && !record.outcomeAudited) this.#append('completed', epoch(run.startedAt + run.duration), record, run.agent.agentId, null);
  }

  attemptFailed(): void {}

  retrying(record: TaskRecord, error: Error, delay: number): void {
    if (this.durable) this.store.saveTask(record);
    if (this.auditEnabled) this.#append('retried', clock(), record, record.agent?.agentId ?? null, { delay, error: error.message, code: errorCode(error) });
  }

  requeued(record: TaskRecord): void {
    if (this.#recoveredUnstarted.size > 0) this.#recoveredUnstarted.delete(record);
  }

  failed(record: TaskRecord, error: Error, status: TaskStatus, deadLetter: DeadLetter): void {
    if (this.#recoveredUnstarted.size > 0) this.#recoveredUnstarted.delete(record);
    if (this.durable) {
      this.store.saveTask(record);
      this.store.putDeadLetter({
        taskId: deadLetter.taskId,
        row: record.toRow(),
        error: serializeError(error),
        code: deadLetter.code,
        attempts: deadLetter.attempts,
        failedAt: deadLetter.failedAt,
      });
    }
    if (this.auditEnabled && !record.outcomeAudited) {
      const at = clock();
      this.#append(status === 'timeout' ? 'timed-out' : 'failed', at, record, record.agent?.agentId ?? null, { error: error.message, code: deadLetter.code });
      this.#append('dead-lettered', at, record, null, { attempts: record.attempt });
    }
  }

  cancelled(record: TaskRecord, reason: string, keepInStore: boolean): void {
    if (this.#recoveredUnstarted.size > 0) this.#recoveredUnstarted.delete(record);
    if (keepInStore) return;
    if (this.durable) this.store.saveTask(record);
    if (this.auditEnabled) this.#append('cancelled', clock(), record, null, { reason });
  }

  preempted(record: TaskRecord, run: TaskRun, by: TaskRecord): void {
    if (this.durable) this.store.saveTask(record);
    // The attempt the preemption ended (the task's count went back by one: it was not used up).
    if (this.auditEnabled) this.store.appendAudit('preempted', clock(), record, run.agent.agentId, run.attempt, { by: by.id, preemptions: record.preemptions });
  }

  /** A dead letter was submitted again. */
  requeuedDeadLetter(taskId: string): void {
    if (this.durable) this.store.deleteDeadLetter(taskId);
    if (this.auditEnabled) this.store.appendAudit('requeued', clock(), { id: taskId }, null, null, null);
  }

  checkpointed(task: AuditSubject, agentId: string | null, attempt: number | null, automatic: boolean): void {
    if (this.auditEnabled) this.store.appendAudit('checkpoint', clock(), task, agentId, attempt, automatic ? { automatic } : null);
  }

  circuit(agentId: string, from: CircuitState, to: CircuitState): void {
    if (this.auditEnabled) this.store.appendAudit('circuit', clock(), null, agentId, null, { from, to });
  }

  #append(type: AuditEventType, timestamp: number, record: TaskRecord, agentId: string | null, details: Record<string, unknown> | null): void {
    this.store.appendAudit(type, timestamp, record, agentId, record.attempt, details);
  }
}

/** Epoch ms from the monotonic clock: every entry's time comes from one clock, so they never go backwards. */
export function clock(): number {
  return epoch(performance.now());
}

/** Read once: the getter costs a call and an allocation per entry. */
const TIME_ORIGIN = performance.timeOrigin;

/** Epoch ms of a performance.now() reading. */
function epoch(monotonic: number): number {
  return Math.round(TIME_ORIGIN + monotonic);
}
