/**
 * Messages between the SQLite store (main thread) and its writer thread, which owns the
 * connection. The thread handles them one at a time in the order they were posted, so a read
 * posted after a commit sees it.
 */
import type { AuditEvent, AuditEventType, AuditRetention, SqliteSynchronous } from './store.js';

/** Columns of a task row, in the order a batch carries their values. */
export const TASK_COLUMNS = [
  'id', 'type', 'priority', 'capabilities', 'payload', 'metadata', 'options',
  'status', 'attempt', 'agent_id', 'submitted_at', 'updated_at', 'result', 'error', 'owner',
] as const;

/** What changes in a row already written: the id, then these. */
export const UPDATE_COLUMNS = ['status', 'attempt', 'agent_id', 'updated_at', 'result', 'error', 'owner'] as const;

/** Rows per statement (multi-row INSERT or UPDATE FROM VALUES): one statement carries many rows, cutting per-statement overhead. */
export const ROWS_PER_STATEMENT = 32;

/** Values per audit entry in a chunk: timestamp (ms after the chunk's first_ts), type, task id, agent id, attempt, details. */
export const AUDIT_FIELDS = 6;

/** Values per chunk in Batch.chunks: entry count, first and last timestamp, types bitmask, its task ids (an array), entries JSON. */
export const CHUNK_FIELDS = 6;

/**
 * Writes to commit, encoded on the main thread (JSON already made) so the thread only executes
 * SQL. Row lists are split into arrays of at most ROWS_PER_STATEMENT rows, one per statement.
 */
export interface Batch {
  /** Rows of tasks not written before: TASK_COLUMNS.length values per row. */
  tasks: unknown[][];
  /** Rows written before: the id, then UPDATE_COLUMNS, per row. */
  updates: unknown[][];
  /** Per checkpoint write, in order: task id, then the state's JSON (null for undefined), or DELETED_CHECKPOINT. */
  checkpoints: (string | null)[];
  /** Per dead-letter write, in order: task id, then [row, error, code, attempts, failedAt] or null for a delete. */
  deadLetters: unknown[];
  /** New audit chunks, CHUNK_FIELDS values each, in append order (the thread numbers their entries and indexes their tasks). */
  chunks: unknown[];
}

/** Marks a deleted checkpoint in Batch.checkpoints (JSON text never starts with a NUL). */
export const DELETED_CHECKPOINT = '\u0000';

export interface OpenConfig {
  /** The thread adds one per commit it answered (committed or failed). */
  answered: Int32Array;
  path: string;
  synchronous: SqliteSynchronous;
  busyTimeoutMs: number;
  nodeId: string;
  audit: AuditRetention;
  retainFinishedMs: number;
  heartbeatMs: number;
  staleAfterMs: number;
  pruneEveryMs: number;
  /** Delay of the first retry after a failed commit, doubling up to retryMaxMs. */
  retryFirstMs: number;
  retryMaxMs: number;
}

export type Read =
  | { kind: 'findTask'; taskId: string }
  | { kind: 'listTasks'; statuses: string | null; type: string | null; limit: number }
  | { kind: 'history'; taskId: string }
  | { kind: 'audit'; since: number; limit: number; type: AuditEventType | null }
  | { kind: 'deadLetters' }
  /** Claims unfinished rows of gone nodes; `openHere`: node ids of the stores open in this process. */
  | { kind: 'claim'; openHere: string[] };

/** What a read of the trail returns: its entries, and chunks that could not be read (described). */
export interface TrailRead {
  events: AuditEvent[];
  unreadable: string[];
}

export type Request =
  | { t: 'open'; id: number; config: OpenConfig }
  /**
   * A batch to commit. When a commit fails the thread keeps its writes (and those of later
   * batches) and commits them, in order, before or with the next batch, retrying on its own
   * meanwhile: writes land in order and are not lost while the store is open.
   */
  | { t: 'commit'; id: number; batch: Batch }
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
  /** A failure of the thread's own work (a retried commit, the heartbeat, pruning), reported as it happens. */
  | { t: 'error'; failure: ThreadFailure; commit: boolean }
  /** The writes failed commits left are committed now. */
  | { t: 'drained' };
