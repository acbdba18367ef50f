import type { CircuitState } from '../enums.js';
import { errorCode } from '../errors.js';
import type { AuditEventType, AuditSubject, Store } from '../persistence/store.js';
import { serializeError } from '../workers/protocol.js';
import type { TaskRecord } from './task-record.js';

/**
 * What the engine tells the store at each transition: the task's row (durable stores only:
 * the engine itself holds live tasks, so the memory store need not) and an audit entry.
 * One place, so the engine's hot path makes one call per transition and the audit vocabulary
 * stays in one file. Times are the engine's monotonic clock readings (ms) where it has one,
 * turned into epoch ms here, so a transition costs no extra clock read.
 */
export class Journal {
  /** True for stores that survive the process: task rows are written. */
  readonly durable: boolean;

  constructor(
    readonly store: Store,
    readonly auditEnabled: boolean,
  ) {
    this.durable = store.kind !== 'memory';
  }

  submitted(record: TaskRecord): void {
    if (this.durable) this.store.saveTask(record);
    if (this.auditEnabled) this.#append('submitted', clock(), record, null, null);
  }

  // The hot transitions carry no details: the task's type and priority are on the task, and
  // a run's duration is the time between its started and completed entries.
  started(record: TaskRecord, agentId: string, at: number): void {
    if (this.durable) this.store.saveTask(record);
    if (this.auditEnabled) this.#append('started', epoch(at), record, agentId, null);
  }

  completed(record: TaskRecord, agentId: string, at: number): void {
    if (this.durable) this.store.saveTask(record);
    if (this.auditEnabled) this.#append('completed', epoch(at), record, agentId, null);
  }

  retried(record: TaskRecord, agentId: string | null, error: Error, delay: number): void {
    if (this.durable) this.store.saveTask(record);
    if (this.auditEnabled) this.#append('retried', clock(), record, agentId, { delay, error: error.message, code: errorCode(error) });
  }

  failed(record: TaskRecord, agentId: string | null, error: Error, timedOut: boolean): void {
    if (this.durable) this.store.saveTask(record);
    if (this.auditEnabled) this.#append(timedOut ? 'timed-out' : 'failed', clock(), record, agentId, { error: error.message, code: errorCode(error) });
  }

  deadLettered(record: TaskRecord, error: Error): void {
    if (this.durable) {
      this.store.putDeadLetter({
        taskId: record.id,
        row: record.toRow(),
        error: serializeError(error),
        code: errorCode(error),
        attempts: record.attempt,
        failedAt: Date.now(),
      });
    }
    if (this.auditEnabled) this.#append('dead-lettered', clock(), record, null, { attempts: record.attempt });
  }

  requeued(taskId: string): void {
    if (this.durable) this.store.takeDeadLetter(taskId);
    if (this.auditEnabled) this.store.appendAudit('requeued', clock(), { id: taskId }, null, null, null);
  }

  cancelled(record: TaskRecord, reason: string): void {
    if (this.durable) this.store.saveTask(record);
    if (this.auditEnabled) this.#append('cancelled', clock(), record, null, { reason });
  }

  recovered(record: TaskRecord, previousStatus: string, resumed: boolean): void {
    this.store.saveTask(record);
    if (this.auditEnabled) this.#append('recovered', clock(), record, null, { previousStatus, resumeState: resumed });
  }

  checkpointed(task: AuditSubject, agentId: string | null, attempt: number | null, automatic: boolean): void {
    if (this.auditEnabled) {
      this.store.appendAudit('checkpoint', clock(), task, agentId, attempt, automatic ? { automatic } : null);
    }
  }

  circuit(agentId: string, from: CircuitState, to: CircuitState): void {
    if (this.auditEnabled) this.store.appendAudit('circuit', clock(), null, agentId, null, { from, to });
  }

  #append(type: AuditEventType, timestamp: number, record: TaskRecord, agentId: string | null, details: Record<string, unknown> | null): void {
    this.store.appendAudit(type, timestamp, record, agentId, record.attempt, details);
  }
}

/** Epoch ms from the monotonic clock: every entry's time comes from one clock, so they never go backwards. */
function clock(): number {
  return epoch(performance.now());
}

/** Epoch ms of a performance.now() reading. */
function epoch(monotonic: number): number {
  return Math.round(performance.timeOrigin + monotonic);
}
