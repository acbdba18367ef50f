/**
 * Messages between the SQLite store (main thread) and its writer thread, which owns the
 * connection. The thread handles them one at a time in the order they were posted, so a read
 * posted after a commit sees it.
 */
import type { AuditEventType, AuditRetention, SqliteSynchronous } from './store.js';

/** Columns of a task row, in the order a batch carries their values. */
export const TASK_COLUMNS = [
  'id', 'type', 'priority', 'capabilities', 'payload', 'metadata', 'options',
  'status', 'attempt', 'agent_id', 'submitted_at', 'updated_at', 'result', 'error', 'owner',
] as const;

/** Values per audit entry in a batch: timestamp, type, task id, agent id, attempt, details JSON. */
export const AUDIT_FIELDS = 6;

/**
 * Writes to commit in one transaction, encoded on the main thread (JSON already made) so the
 * thread only executes SQL. Arrays are flat: a fixed number of values per item.
 */
export interface Batch {
  /** TASK_COLUMNS.length values per task row; a later row of the same task wins. */
  tasks: unknown[];
  /** AUDIT_FIELDS values per entry, in append order (the thread numbers them). */
  audit: unknown[];
  /** Per checkpoint write, in order: task id, then the state's JSON, or DELETED_CHECKPOINT. */
  checkpoints: (string | null)[];
  /** Per dead-letter write, in order: task id, then [row, error, code, attempts, failedAt] or null for a delete. */
  deadLetters: unknown[];
}

/** Marks a deleted checkpoint in Batch.checkpoints (JSON text never starts with a NUL). */
export const DELETED_CHECKPOINT = '\u0000';

export interface OpenConfig {
  path: string;
  synchronous: SqliteSynchronous;
  busyTimeoutMs: number;
  nodeId: string;
  audit: AuditRetention;
  retainFinishedMs: number;
  heartbeatMs: number;
  staleAfterMs: number;
  pruneEveryMs: number;
}

export type Read =
  | { kind: 'findTask'; taskId: string }
  | { kind: 'listTasks'; statuses: string | null; type: string | null; limit: number }
  | { kind: 'history'; taskId: string }
  | { kind: 'audit'; since: number; limit: number; type: AuditEventType | null }
  | { kind: 'deadLetters' }
  /** Claims unfinished rows of gone nodes; `openHere`: node ids of the stores open in this process. */
  | { kind: 'claim'; openHere: string[] };

export type Request =
  | { t: 'open'; id: number; config: OpenConfig }
  /** `retry`: a commit sent again after a failure; commits between a failure and its retry are refused (see Reply). */
  | { t: 'commit'; id: number; batch: Batch; retry: boolean }
  | { t: 'read'; id: number; read: Read }
  | { t: 'close'; id: number };

/** Codes of failures whose message is worded for the store's error as it is. */
export const WORDED_FAILURES: ReadonlySet<string> = new Set(['MISSING_DEPENDENCY', 'NEWER_SCHEMA', 'QUICK_CHECK']);

/** Why something failed in the thread: the message, and SQLite's code (or a WORDED_FAILURES code) when it has one. */
export interface ThreadFailure {
  message: string;
  code: string | null;
}

export type Reply =
  | { t: 'done'; id: number; value: unknown }
  | { t: 'failed'; id: number; failure: ThreadFailure }
  /**
   * A commit posted after one that failed, not attempted: writes must land in order, so the
   * store sends it again with the failed one (retry) once that is due.
   */
  | { t: 'refused'; id: number }
  /** A failure of the thread's own work (heartbeat, pruning), reported as it happens. */
  | { t: 'error'; failure: ThreadFailure };
