import type { TaskStatus } from '../enums.js';
import type { StoreError } from '../errors.js';
import type { SerializedError } from '../workers/protocol.js';

/** A task as the store keeps it: enough to queue it again after a crash. */
export interface TaskRow {
  id: string;
  type: string;
  priority: number;
  capabilities: readonly string[];
  payload: unknown;
  metadata: Record<string, unknown>;
  /** timeout, retry policy, preferredRole, waitForAgent: what the task spec set beyond the defaults. */
  options: Record<string, unknown>;
  status: TaskStatus;
  /** Attempts started so far. */
  attempt: number;
  agentId: string | null;
  submittedAt: number;
  updatedAt: number;
  /** Set once completed. */
  result?: unknown;
  /** Set once failed, timed out or cancelled (a cancel reason is a message). */
  error?: SerializedError | null;
  /** The result already encoded as JSON (checked when the task completed), so a store need not encode it again. */
  resultJson?: string | undefined;
  /** The payload already encoded as JSON (when it was checked at submit), so a store need not encode it again. */
  payloadJson?: string | null | undefined;
  /** The process that holds the task (as read back from a durable store). */
  owner?: string | null;
}

/** Something the store can turn into a row when it writes (late, so one write carries the latest state). */
export interface PersistableTask {
  readonly id: string;
  /** Its status now, if known: a store may encode the row of a task in a final status at once (no later transition rewrites it). */
  readonly status?: string;
  toRow(): TaskRow;
}

/** Every type of audit entry (the `type` filter of `audit()`, `GET /api/audit?type=`, `porch inspect --type`). */
export const AUDIT_EVENT_TYPES = [
  'submitted', 'started', 'checkpoint', 'retried', 'completed', 'failed', 'timed-out', 'cancelled', 'dead-lettered', 'requeued', 'recovered', 'circuit', 'preempted',
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

/** One entry of the audit trail. */
export interface AuditEvent {
  /** Position in the trail, increasing (gaps where retention removed entries). */
  seq: number;
  timestamp: number;
  type: AuditEventType;
  taskId: string | null;
  agentId: string | null;
  attempt: number | null;
  details: Record<string, unknown> | null;
}

/** What an audit entry is about: its id is read when the entry is read or written, not when appended. */
export interface AuditSubject {
  readonly id: string;
  /**
   * For a task whose id the engine generated: the sequence the id is made from, so an in-memory
   * trail keeps a number rather than the task or a string. Absent (or -1) otherwise.
   */
  readonly generatedSeq?: number;
}

/**
 * An entry to append. `task` rather than an id string: the engine's own task records go in, so
 * appending builds no string (a generated id is derived on demand) and keeps nothing young alive.
 */
export interface NewAuditEvent extends Omit<AuditEvent, 'seq' | 'taskId'> {
  task: AuditSubject | null;
}

export interface AuditQuery {
  /** Entries with `seq` greater than this. @default 0 */
  since?: number;
  /** @default 100 */
  limit?: number;
  type?: AuditEventType;
}

/** A dead letter as stored. */
export interface DeadLetterRow {
  taskId: string;
  row: TaskRow;
  error: SerializedError;
  code: string;
  attempts: number;
  failedAt: number;
}

/** A query of `listTasks`. */
export interface TaskListQuery {
  /** Only tasks in one of these statuses. */
  status?: readonly TaskStatus[];
  type?: string;
  /** @default 100 */
  limit?: number;
}

/** A task found unfinished at start(), now owned by this process. */
export interface UnfinishedTask {
  row: TaskRow;
  /** Its latest committed checkpoint, if it has one. */
  checkpoint: { state: unknown } | null;
}

/** A task row found unfinished whose stored payload, metadata, options or checkpoint cannot be read. */
export interface UnreadableTask {
  id: string;
  type: string;
  priority: number;
  status: TaskStatus;
  attempt: number;
  /** Names the store and the task, and what could not be read. */
  error: StoreError;
}

/**
 * Where tasks, checkpoints, the audit trail and dead letters live. Writes are queued and
 * committed in batches; `flush()` resolves once everything queued before it is committed.
 * Reads see queued writes too (read-your-writes).
 */
export interface Store {
  readonly kind: 'memory' | 'sqlite' | 'postgres';
  /** True when the store survives the process: task rows are written, and tasks are recovered at start(). */
  readonly durable: boolean;
  /** Creates or migrates the schema. @throws StoreError for a corrupt, locked or unreadable database */
  open(): Promise<void>;
  /** Commits what is queued and releases the database. */
  close(): Promise<void>;
  /**
   * Commits every write queued so far before it returns (synchronously, so the caller may change
   * its tasks right after); the promise settles with the outcome.
   */
  flush(): Promise<void>;

  /** Queues an insert or update of the task; its row is taken at commit time. */
  saveTask(task: PersistableTask): void;
  /**
   * Tasks left queued, running or retrying by processes that are gone (never those of a process
   * still alive on the same store), now owned by this one. Rows that cannot be read are returned
   * apart, so that one bad row costs only its own task.
   */
  claimUnfinished(): Promise<{ tasks: UnfinishedTask[]; unreadable: UnreadableTask[] }>;
  /** A task's row (durable stores; the memory store keeps none). */
  findTask(taskId: string): Promise<TaskRow | undefined>;
  /** Task rows, most recently updated first (durable stores; the memory store keeps none). */
  listTasks(query: TaskListQuery): Promise<TaskRow[]>;

  /** Queues the checkpoint; resolves once committed. */
  saveCheckpoint(taskId: string, state: unknown): Promise<void>;
  deleteCheckpoint(taskId: string): void;

  /**
   * Appends an entry. Positional, so the engine's hot transitions allocate nothing here (an
   * event object per transition measurably slows a busy orchestrator).
   */
  appendAudit(
    type: AuditEventType,
    timestamp: number,
    task: AuditSubject | null,
    agentId: string | null,
    attempt: number | null,
    details: Record<string, unknown> | null,
  ): void;
  history(taskId: string): Promise<AuditEvent[]>;
  audit(query: AuditQuery): Promise<AuditEvent[]>;

  putDeadLetter(entry: DeadLetterRow): void;
  deleteDeadLetter(taskId: string): void;
  /** Dead letters, oldest first; rows that cannot be read are skipped and reported through the store's error callback. */
  listDeadLetters(): Promise<DeadLetterRow[]>;
}

/** Retention of the audit trail: entries older than `retainMs` or beyond the newest `maxEvents` go. */
export interface AuditRetention {
  retainMs: number;
  maxEvents: number;
}

/** How a SQLite commit is made durable (PRAGMA synchronous). */
export type SqliteSynchronous = 'off' | 'normal' | 'full';
