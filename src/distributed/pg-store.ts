import type { TaskStatus } from '../enums.js';
import { StoreError } from '../errors.js';
import type {
  AuditEvent,
  AuditEventType,
  AuditQuery,
  AuditSubject,
  DeadLetterRow,
  PersistableTask,
  Store,
  TaskListQuery,
  TaskRow,
  UnfinishedTask,
  UnreadableTask,
} from '../persistence/store.js';
import type { SerializedError } from '../workers/protocol.js';
import { Batcher } from './batcher.js';
import type { PgBackend } from './pg-backend.js';

interface TaskRecordRow {
  id: string;
  type: string;
  priority: number;
  capabilities: string[];
  payload: unknown;
  metadata: Record<string, unknown>;
  options: Record<string, unknown>;
  status: TaskStatus;
  attempt: number;
  agent_id: string | null;
  submitted_at: number;
  updated_at: number;
  result: unknown;
  error: SerializedError | null;
  owner: string | null;
  retrying: boolean;
}

interface AuditRecordRow {
  seq: number;
  ts: number;
  type: AuditEventType;
  task_id: string | null;
  agent_id: string | null;
  attempt: number | null;
  details: Record<string, unknown> | null;
}

interface DeadLetterRecordRow {
  task_id: string;
  row: TaskRow;
  error: SerializedError;
  code: string;
  attempts: number;
  failed_at: number;
}

/** A checkpoint write: a state to keep, or a delete. */
type CheckpointWrite = { taskId: string; state: unknown; remove: false } | { taskId: string; remove: true };

/**
 * The store of the PostgreSQL backend: the audit trail, checkpoints and reads of task rows and
 * dead letters. Task rows and dead letters are written by the work source, atomically with each
 * claim and outcome (fenced by the claim token), so `saveTask` and `putDeadLetter` do nothing
 * here, and `claimUnfinished` takes nothing (a dead node's tasks come back when their leases
 * expire). Audit entries ride along with the next batched write of the node.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly durable = true;
  readonly #checkpoints: Batcher<CheckpointWrite>;
  #closing: Promise<void> | null = null;

  constructor(
    readonly backend: PgBackend,
    /** Opens the backend (the work source knows the node's agents and channels). */
    readonly openBackend: () => Promise<void>,
    /** Stops the work source: its claims not started go back, its timers stop (idempotent). */
    readonly closeSource: () => Promise<void>,
    /** Closes the backend after the work source handed its claims back. */
    readonly closeBackend: () => Promise<void>,
    /** Commits every write the work source queued so far. */
    readonly flushSource: () => Promise<void>,
  ) {
    this.#checkpoints = new Batcher<CheckpointWrite, void>(async (writes) => {
      // Later writes of one task win; a batch holds one row per task.
      const latest = new Map<string, CheckpointWrite>();
      for (const write of writes) latest.set(write.taskId, write);
      const saves: { id: string; state: unknown }[] = [];
      const deletes: string[] = [];
      for (const write of latest.values()) {
        if (write.remove) deletes.push(write.taskId);
        else saves.push({ id: write.taskId, state: write.state ?? null });
      }
      const pool = this.backend.pool;
      if (saves.length > 0) await pool.query(this.backend.sql.saveCheckpoints(JSON.stringify(saves)));
      if (deletes.length > 0) await pool.query(this.backend.sql.deleteCheckpoints(deletes));
      return writes.map(() => undefined);
    }, backend.options.maxBatch);
  }

  open(): Promise<void> {
    if (this.backend.closed) return Promise.reject(this.backend.notOpen());
    return this.openBackend();
  }

  /** Idempotent. The engine closes the work source first; a store closed alone (a tool, a test) stops it too. */
  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    await this.closeSource();
    await this.#checkpoints.drain();
    await this.closeBackend();
  }

  /** @throws StoreError once closed */
  #refuseClosed(): void {
    if (this.backend.closed) throw this.backend.notOpen();
  }

  async flush(): Promise<void> {
    this.#refuseClosed();
    if (!this.backend.isOpen) return;
    await Promise.all([this.flushSource(), this.#checkpoints.drain()]);
    if (this.backend.pendingAudit.length > 0) await this.backend.auditWriter.push(this.backend.takeAudit());
    await this.backend.auditWriter.drain();
  }

  saveTask(_task: PersistableTask): void {
    this.#refuseClosed();
  }

  async claimUnfinished(): Promise<{ tasks: UnfinishedTask[]; unreadable: UnreadableTask[] }> {
    if (!this.backend.isOpen) throw this.backend.notOpen();
    // Nothing to take over at start: a dead node's claims expire and any live node re-queues them.
    return { tasks: [], unreadable: [] };
  }

  async findTask(taskId: string): Promise<TaskRow | undefined> {
    const { rows } = await this.backend.pool.query<TaskRecordRow>(this.backend.sql.findTask(taskId));
    return rows[0] === undefined ? undefined : toTaskRow(rows[0]);
  }

  async listTasks(query: TaskListQuery): Promise<TaskRow[]> {
    // 'retrying' is not a stored status: such a task is queued with a run_at in the future (the statement tells them apart).
    const statuses = query.status === undefined || query.status.length === 0 ? null : query.status;
    const { rows } = await this.backend.pool.query<TaskRecordRow>(this.backend.sql.listTasks(statuses, query.type ?? null, query.limit ?? 100));
    return rows.map(toTaskRow);
  }

  saveCheckpoint(taskId: string, state: unknown): Promise<void> {
    if (!this.backend.isOpen) return Promise.reject(this.backend.notOpen());
    let encodable: unknown;
    try {
      // Encoded now, so a state JSON cannot carry fails this call rather than the batch.
      encodable = JSON.parse(JSON.stringify(state ?? null));
    } catch (cause) {
      return Promise.reject(new StoreError(this.backend.where, `checkpoint of task ${taskId} is not JSON-serializable: ${(cause as Error).message}`, { cause }));
    }
    return this.#checkpoints.push({ taskId, state: encodable, remove: false });
  }

  deleteCheckpoint(taskId: string): void {
    this.#refuseClosed();
    if (!this.backend.isOpen) return;
    void this.#checkpoints.push({ taskId, remove: true }).catch((error: unknown) => this.#failed('deleting a checkpoint', error));
  }

  appendAudit(
    type: AuditEventType,
    timestamp: number,
    task: AuditSubject | null,
    agentId: string | null,
    attempt: number | null,
    details: Record<string, unknown> | null,
  ): void {
    this.#refuseClosed();
    this.backend.appendAudit({ ts: timestamp, type, task: task?.id ?? null, agent: agentId, attempt, details });
  }

  /** Applies the trail's retention by count (cheap); by age it runs with the node's maintenance. */
  async #prune(): Promise<void> {
    await this.flush();
    await this.backend.pool.query(this.backend.sql.pruneAudit(this.backend.options.audit.maxEvents));
  }

  async history(taskId: string): Promise<AuditEvent[]> {
    await this.#prune();
    const { rows } = await this.backend.pool.query<AuditRecordRow>(this.backend.sql.history(taskId, this.backend.options.audit.retainMs));
    return rows.map(toAuditEvent);
  }

  async audit(query: AuditQuery): Promise<AuditEvent[]> {
    await this.#prune();
    const { rows } = await this.backend.pool.query<AuditRecordRow>(this.backend.sql.audit(query.since ?? 0, query.limit ?? 100, query.type ?? null, this.backend.options.audit.retainMs));
    return rows.map(toAuditEvent);
  }

  putDeadLetter(_entry: DeadLetterRow): void {
    this.#refuseClosed();
  }

  deleteDeadLetter(_taskId: string): void {
    this.#refuseClosed();
  }

  async listDeadLetters(): Promise<DeadLetterRow[]> {
    const { rows } = await this.backend.pool.query<DeadLetterRecordRow>(this.backend.sql.listDeadLetters());
    return rows.map((row) => ({ taskId: row.task_id, row: row.row, error: row.error, code: row.code, attempts: row.attempts, failedAt: row.failed_at }));
  }

  #failed(what: string, error: unknown): void {
    this.backend.onError(new StoreError(this.backend.where, `${what} failed: ${(error as Error).message}`, { cause: error }));
  }
}

export function toTaskRow(r: TaskRecordRow): TaskRow {
  return {
    id: r.id,
    type: r.type,
    priority: r.priority,
    capabilities: r.capabilities,
    payload: r.payload ?? undefined,
    metadata: r.metadata,
    options: r.options,
    status: r.retrying ? ('retrying' as TaskStatus) : r.status,
    attempt: r.attempt,
    agentId: r.agent_id,
    submittedAt: r.submitted_at,
    updatedAt: r.updated_at,
    ...(r.status === 'completed' ? { result: r.result ?? undefined } : {}),
    error: r.error,
    owner: r.owner,
  };
}

function toAuditEvent(r: AuditRecordRow): AuditEvent {
  return { seq: r.seq, timestamp: r.ts, type: r.type, taskId: r.task_id, agentId: r.agent_id, attempt: r.attempt, details: r.details };
}
