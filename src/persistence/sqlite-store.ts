import { Worker } from 'node:worker_threads';
import { StoreError } from '../errors.js';
import { AUDIT_FIELDS, DELETED_CHECKPOINT, WORDED_FAILURES, type Batch, type Read, type Reply, type Request, type ThreadFailure } from './sqlite-protocol.js';
import {
  parse,
  toAuditEvent,
  toDeadLetter,
  toTaskRow,
  type AuditRecordRow,
  type ClaimedRecordRow,
  type DeadLetterRecordRow,
  type TaskRecordRow,
} from './sqlite-rows.js';
import type {
  AuditEvent,
  AuditEventType,
  AuditQuery,
  AuditRetention,
  AuditSubject,
  DeadLetterRow,
  PersistableTask,
  SqliteSynchronous,
  Store,
  TaskListQuery,
  TaskRow,
  UnfinishedTask,
  UnreadableTask,
} from './store.js';

export interface SqliteStoreOptions {
  /** The database file; created when missing. */
  path: string;
  /** PRAGMA synchronous. @default 'normal' */
  synchronous?: SqliteSynchronous;
  audit: AuditRetention;
  /** Longest wait between the first queued write and the commit of its batch (ms). @default 2 */
  flushIntervalMs?: number;
  /** How long opening or committing waits for another connection's lock (ms). @default 1000 */
  busyTimeoutMs?: number;
  /** Told of a failed commit as it happens (the writes stay queued and are retried), and of rows that cannot be read. */
  onCommitError?: (error: StoreError) => void;
  /** This process's id: the rows it writes are its own, and no other live process recovers them. */
  nodeId: string;
  /** Rows of finished tasks older than this are deleted, at open and hourly (ms). @default 7 days */
  retainFinishedMs?: number;
}

/** How often a live process marks itself alive in the file (ms). */
const HEARTBEAT_MS = 10_000;
/** A process that has not marked itself alive for this long is gone (ms). */
const STALE_AFTER_MS = 60_000;
const PRUNE_EVERY_MS = 3_600_000;
const DEFAULT_RETAIN_FINISHED_MS = 7 * 24 * 3_600_000;

const RETRY_FIRST_MS = 10;
const RETRY_MAX_MS = 1000;

const WRITER_ENTRY = new URL('./sqlite-writer.js', import.meta.url);
const RESOLVED: Promise<void> = Promise.resolve();
/** Marks a queued delete in the pending maps. */
const DELETE = Symbol('delete');

/** Node ids of the SQLite stores open in this process (the writer tells a previous process's node by them). */
const openHere = new Set<string>();

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Handled here too, so a caller that drops the promise does not crash the process.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** A batch posted to the thread, or failed and waiting to be sent again. */
interface Commit {
  batch: Batch;
  /** Checkpoints waiting for this commit: resolved once it is committed, rejected if it fails. */
  waiters: Deferred[];
  /** Settles once the thread answered (committed, failed or refused): what flush() waits for. */
  answered: Deferred;
  /** Moved into the retry when an earlier commit failed: its own answer (refused) is only acknowledged. */
  moved: boolean;
}

/** `JSON.stringify`, with undefined (and other values JSON has no text for) as SQL NULL. */
function json(value: unknown): string | null {
  return JSON.stringify(value) ?? null;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function emptyBatch(): Batch {
  return { tasks: [], audit: [], checkpoints: [], deadLetters: [] };
}

/** Appends `source`'s writes after `target`'s (applied in order, a later row of a task wins). */
function appendBatch(target: Batch, source: Batch): void {
  for (const key of ['tasks', 'audit', 'checkpoints', 'deadLetters'] as const) {
    const into = target[key] as unknown[];
    for (const value of source[key]) into.push(value);
  }
}

function describeOpenFailure(failure: ThreadFailure): string {
  const { code, message } = failure;
  if (code !== null && WORDED_FAILURES.has(code)) return message;
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return `is locked by another connection (${message})`;
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') return `is corrupt or not a SQLite database (${message})`;
  return `cannot be opened (${code === null ? '' : `${code}: `}${message})`;
}

/**
 * A store in one SQLite file (WAL). Writes are queued in memory and committed in one
 * transaction per batch, at most `flushIntervalMs` after the batch's first write or at
 * `flush()`. A batch is encoded here (task rows are taken with `toRow()` then, so several
 * transitions of a task within one batch cost one row) and committed by a writer thread
 * (sqlite-writer.ts), which runs the SQL beside the engine. While a commit is under way the
 * next batch gathers, so a busy store commits fewer, larger batches. Reads are sent after the
 * writes queued before them, so they see them (read-your-writes).
 *
 * A value that JSON cannot encode (a BigInt, a cycle) is reported when its write is encoded:
 * `saveCheckpoint` rejects at once; a task row, audit entry or dead letter is skipped and the
 * next `flush()` (or `close()`) rejects with a StoreError naming it.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly durable = true;
  readonly path: string;
  readonly nodeId: string;

  readonly #synchronous: SqliteSynchronous;
  readonly #audit: AuditRetention;
  readonly #flushIntervalMs: number;
  readonly #busyTimeoutMs: number;
  readonly #retainFinishedMs: number;
  readonly #onCommitError: ((error: StoreError) => void) | undefined;

  /** The writer thread, from open() on. */
  #worker: Worker | null = null;
  /** Open: writes are committed and reads answered. */
  #ready = false;
  #opening: Promise<void> | null = null;
  #closing: Promise<void> | null = null;
  /** Set by close(): writes after it fail (before open() they are queued). */
  #closed = false;
  /** The thread died: every later request fails with this. */
  #broken: StoreError | null = null;
  #nextId = 0;
  readonly #replies = new Map<number, (reply: Reply) => void>();

  // Queued writes, encoded into a batch when it is committed.
  /** Keyed by the task object (one per live task): no id string is built, and identity hashing is cheap. */
  readonly #tasks = new Set<PersistableTask>();
  /** JSON of the state (null for undefined), or DELETE. */
  readonly #checkpoints = new Map<string, string | null | typeof DELETE>();
  readonly #deadLetters = new Map<string, DeadLetterRow | typeof DELETE>();
  /** AUDIT_FIELDS values per entry: timestamp, type, subject, agent id, attempt, details (made JSON when encoded). */
  #auditEntries: unknown[] = [];
  /** Checkpoints of the queued writes waiting for their commit. */
  #waiter: Deferred | null = null;

  /** Commits posted, oldest first; the thread answers them in this order. */
  readonly #inFlight: Commit[] = [];
  /** A failed commit (with those posted after it), waiting to be sent again. */
  #retry: Commit | null = null;
  #retryMs = 0;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** The batch timer fired while a commit was under way: commit once it is answered. */
  #deferred = false;
  /** A failure nobody was waiting for; the next flush() or close() rejects with it. */
  #failure: StoreError | null = null;

  constructor(options: SqliteStoreOptions) {
    this.path = options.path;
    this.#synchronous = options.synchronous ?? 'normal';
    this.#audit = options.audit;
    this.#flushIntervalMs = options.flushIntervalMs ?? 2;
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 1000;
    this.#onCommitError = options.onCommitError;
    this.nodeId = options.nodeId;
    this.#retainFinishedMs = options.retainFinishedMs ?? DEFAULT_RETAIN_FINISHED_MS;
  }

  /** @throws StoreError when better-sqlite3 is missing, or the file is corrupt, locked, unreadable or from a newer schema */
  open(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#notOpen());
    return (this.#opening ??= this.#open());
  }

  async #open(): Promise<void> {
    this.#broken = null;
    const worker = new Worker(WRITER_ENTRY);
    this.#worker = worker;
    let crash: Error | null = null;
    worker.on('error', (error) => (crash = error));
    worker.on('message', (reply: Reply) => this.#onReply(reply));
    worker.on('exit', () => this.#onExit(worker, crash));
    const config = {
      path: this.path,
      synchronous: this.#synchronous,
      busyTimeoutMs: this.#busyTimeoutMs,
      nodeId: this.nodeId,
      audit: this.#audit,
      retainFinishedMs: this.#retainFinishedMs,
      heartbeatMs: HEARTBEAT_MS,
      staleAfterMs: STALE_AFTER_MS,
      pruneEveryMs: PRUNE_EVERY_MS,
    };
    try {
      await this.#call({ t: 'open', config }, (failure) => new StoreError(this.path, describeOpenFailure(failure)));
    } catch (error) {
      this.#worker = null;
      this.#opening = null;
      await worker.terminate();
      throw error;
    }
    this.#ready = true;
    openHere.add(this.nodeId);
    // close() came while the file opened: it releases what was opened.
    if (this.#closed) throw this.#notOpen();
    // Writes queued before open (tasks submitted before start()) go out with the first batch.
    if (this.#tasks.size > 0 || this.#auditEntries.length > 0 || this.#checkpoints.size > 0 || this.#deadLetters.size > 0) this.#schedule();
  }

  /** Commits what is queued, then closes the file and ends the thread. Idempotent. Rejects when the last commits failed. */
  close(): Promise<void> {
    this.#closed = true;
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    await this.#opening?.catch(() => {});
    const worker = this.#worker;
    if (worker === null || !this.#ready) {
      // Never opened: queued writes are dropped, and a checkpoint waiting for its commit is told.
      this.#waiter?.reject(this.#notOpen());
      this.#waiter = null;
      return;
    }
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#commitNow();
    // One last attempt for writes a failed commit left.
    if (this.#retry !== null) this.#postRetry();
    try {
      await this.#call({ t: 'close' }, (failure) => new StoreError(this.path, `could not be closed cleanly: ${failure.message}`));
    } catch (error) {
      this.#failure ??= error as StoreError;
    }
    this.#worker = null;
    this.#ready = false;
    openHere.delete(this.nodeId);
    await worker.terminate();
    const failure = this.#failure;
    this.#failure = null;
    if (failure !== null) throw failure;
  }

  flush(): Promise<void> {
    if (!this.#ready || this.#closed) return Promise.reject(this.#notOpen());
    this.#commitNow();
    // At once: flush() reports this attempt.
    if (this.#retry !== null) this.#postRetry();
    const last = this.#inFlight.at(-1);
    return last === undefined ? this.#takeFailure() : last.answered.promise.then(() => this.#takeFailure());
  }

  saveTask(task: PersistableTask): void {
    if (this.#closed) throw this.#notOpen();
    this.#tasks.add(task);
    this.#schedule();
  }

  async claimUnfinished(): Promise<{ tasks: UnfinishedTask[]; unreadable: UnreadableTask[] }> {
    const claimed = (await this.#read({ kind: 'claim', openHere: [...openHere] })) as ClaimedRecordRow[];
    const tasks: UnfinishedTask[] = [];
    const unreadable: UnreadableTask[] = [];
    for (const row of claimed) {
      try {
        tasks.push({ row: toTaskRow(row), checkpoint: row.has_checkpoint === 1 ? { state: parse(row.checkpoint) } : null });
      } catch (cause) {
        const error = new StoreError(this.path, `task ${row.id} cannot be read back (${messageOf(cause)}): it is dead-lettered`, { cause });
        unreadable.push({ id: row.id, type: row.type, priority: row.priority, status: row.status, attempt: row.attempt, error });
      }
    }
    return { tasks, unreadable };
  }

  async findTask(taskId: string): Promise<TaskRow | undefined> {
    const row = (await this.#read({ kind: 'findTask', taskId })) as TaskRecordRow | undefined;
    return row === undefined ? undefined : this.#readable(row, toTaskRow, `task ${row.id}`);
  }

  async listTasks(query: TaskListQuery): Promise<TaskRow[]> {
    const statuses = query.status === undefined || query.status.length === 0 ? null : JSON.stringify(query.status);
    const rows = (await this.#read({ kind: 'listTasks', statuses, type: query.type ?? null, limit: query.limit ?? 100 })) as TaskRecordRow[];
    return this.#readAll(rows, toTaskRow, (row) => `task ${row.id}`);
  }

  saveCheckpoint(taskId: string, state: unknown): Promise<void> {
    if (this.#closed) return Promise.reject(this.#notOpen());
    let text: string | null;
    try {
      // Encoded now: the caller may go on mutating the state, and an unencodable state fails this call.
      text = json(state);
    } catch (cause) {
      return Promise.reject(new StoreError(this.path, `checkpoint of task ${taskId} is not JSON-serializable: ${messageOf(cause)}`, { cause }));
    }
    this.#checkpoints.set(taskId, text);
    this.#schedule();
    return (this.#waiter ??= deferred()).promise;
  }

  deleteCheckpoint(taskId: string): void {
    if (this.#closed) throw this.#notOpen();
    this.#checkpoints.set(taskId, DELETE);
    this.#schedule();
  }

  appendAudit(
    type: AuditEventType,
    timestamp: number,
    task: AuditSubject | null,
    agentId: string | null,
    attempt: number | null,
    details: Record<string, unknown> | null,
  ): void {
    if (this.#closed) throw this.#notOpen();
    this.#auditEntries.push(timestamp, type, task, agentId, attempt, details);
    this.#schedule();
  }

  async history(taskId: string): Promise<AuditEvent[]> {
    const rows = (await this.#read({ kind: 'history', taskId })) as AuditRecordRow[];
    return this.#readAll(rows, toAuditEvent, (row) => `audit entry ${row.seq}`);
  }

  async audit(query: AuditQuery): Promise<AuditEvent[]> {
    const rows = (await this.#read({ kind: 'audit', since: query.since ?? 0, limit: query.limit ?? 100, type: query.type ?? null })) as AuditRecordRow[];
    return this.#readAll(rows, toAuditEvent, (row) => `audit entry ${row.seq}`);
  }

  putDeadLetter(entry: DeadLetterRow): void {
    if (this.#closed) throw this.#notOpen();
    this.#deadLetters.set(entry.taskId, entry);
    this.#schedule();
  }

  deleteDeadLetter(taskId: string): void {
    if (this.#closed) throw this.#notOpen();
    this.#deadLetters.set(taskId, DELETE);
    this.#schedule();
  }

  async listDeadLetters(): Promise<DeadLetterRow[]> {
    const rows = (await this.#read({ kind: 'deadLetters' })) as DeadLetterRecordRow[];
    return this.#readAll(rows, toDeadLetter, (row) => `dead letter ${row.task_id}`);
  }

  #notOpen(): StoreError {
    return this.#broken ?? new StoreError(this.path, this.#closed ? 'is closed' : 'is not open yet (call start() first)');
  }

  /** Rows turned into values; a row that cannot be read is skipped and reported. */
  #readAll<R, T>(rows: R[], read: (row: R) => T, name: (row: R) => string): T[] {
    const out: T[] = [];
    for (const row of rows) {
      const value = this.#readable(row, read, name(row));
      if (value !== undefined) out.push(value);
    }
    return out;
  }

  #readable<R, T>(row: R, read: (row: R) => T, name: string): T | undefined {
    try {
      return read(row);
    } catch (cause) {
      this.#onCommitError?.(new StoreError(this.path, `${name} cannot be read back: ${messageOf(cause)}`, { cause }));
      return undefined;
    }
  }

  /** A read, sent after the writes queued before it so that it sees them. */
  #read(read: Read): Promise<unknown> {
    if (!this.#ready || this.#closed) return Promise.reject(this.#notOpen());
    this.#commitNow();
    return this.#call({ t: 'read', read }, (failure) => new StoreError(this.path, `read failed: ${failure.message}`));
  }

  /** Posts a request; resolves with the thread's answer, rejects with `failed(failure)`. */
  #call(request: DistributiveOmit<Request, 'id'>, failed: (failure: ThreadFailure) => StoreError): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#post(request, (reply) => {
        if (reply.t === 'done') resolve(reply.value);
        else reject(reply.t === 'failed' ? failed(reply.failure) : this.#notOpen());
      });
    });
  }

  #post(request: DistributiveOmit<Request, 'id'>, onReply: (reply: Reply) => void): void {
    if (this.#broken !== null) {
      queueMicrotask(() => onReply({ t: 'failed', id: 0, failure: { message: this.#broken!.message, code: null } }));
      return;
    }
    const id = ++this.#nextId;
    // The process stays alive while the thread has work of ours.
    if (this.#replies.size === 0) this.#worker!.ref();
    this.#replies.set(id, onReply);
    this.#worker!.postMessage({ ...request, id });
  }

  #onReply(reply: Reply): void {
    if (reply.t === 'error') {
      this.#onCommitError?.(new StoreError(this.path, reply.failure.message));
      return;
    }
    const onReply = this.#replies.get(reply.id)!;
    this.#replies.delete(reply.id);
    if (this.#replies.size === 0) this.#worker?.unref();
    onReply(reply);
  }

  /** The thread ended: expected when the store ended it (close, a failed open), else every request in flight fails. */
  #onExit(worker: Worker, crash: Error | null): void {
    if (worker !== this.#worker || (this.#closed && this.#replies.size === 0)) return;
    const error = new StoreError(this.path, `its writer thread died: ${crash?.message ?? 'it exited'}`, { cause: crash });
    this.#broken = error;
    this.#failure ??= error;
    this.#onCommitError?.(error);
    const pending = [...this.#replies.values()];
    this.#replies.clear();
    for (const onReply of pending) onReply({ t: 'failed', id: 0, failure: { message: error.message, code: null } });
  }

  #schedule(): void {
    if (this.#timer === null && this.#ready && !this.#closed) this.#timer = setTimeout(this.#onTimer, this.#flushIntervalMs);
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    // A commit is under way: the next batch gathers until it is answered.
    if (this.#inFlight.length > 0 || this.#retry !== null) this.#deferred = true;
    else this.#commitNow();
  };

  #takeFailure(): Promise<void> {
    const failure = this.#failure;
    this.#failure = null;
    return failure === null ? RESOLVED : Promise.reject(failure);
  }

  /** Encodes the queued writes and posts them, or (while a failed commit waits) adds them to it. */
  #commitNow(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const batch = this.#encode();
    if (batch === null) return;
    const waiters = this.#waiter === null ? [] : [this.#waiter];
    this.#waiter = null;
    if (this.#retry !== null) {
      appendBatch(this.#retry.batch, batch);
      this.#retry.waiters.push(...waiters);
      return;
    }
    this.#postCommit({ batch, waiters, answered: deferred(), moved: false }, false);
  }

  #postCommit(commit: Commit, retry: boolean): void {
    this.#inFlight.push(commit);
    this.#post({ t: 'commit', batch: commit.batch, retry }, (reply) => this.#answered(commit, reply));
  }

  #postRetry(): void {
    const retry = this.#retry!;
    this.#retry = null;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#postCommit(retry, true);
  }

  #answered(commit: Commit, reply: Reply): void {
    this.#inFlight.shift();
    if (reply.t === 'done') {
      this.#retryMs = 0;
      for (const waiter of commit.waiters) waiter.resolve();
    } else if (!commit.moved) {
      // Rolled back (a lock held too long, a full disk): the writes are sent again with a growing
      // delay, with every commit posted after them (the thread refuses those until then).
      const error = new StoreError(this.path, `commit failed: ${reply.t === 'failed' ? reply.failure.message : 'the thread refused it'}`);
      this.#failure ??= error;
      const retry: Commit = { batch: emptyBatch(), waiters: [], answered: deferred(), moved: false };
      for (const failed of [commit, ...this.#inFlight]) {
        appendBatch(retry.batch, failed.batch);
        for (const waiter of failed.waiters) waiter.reject(error);
        failed.moved = true;
      }
      this.#retry = retry;
      this.#retryMs = Math.min(RETRY_MAX_MS, this.#retryMs === 0 ? RETRY_FIRST_MS : this.#retryMs * 2);
      if (!this.#closed && this.#broken === null) this.#retryTimer = setTimeout(() => this.#postRetry(), this.#retryMs);
      this.#onCommitError?.(error);
    }
    commit.answered.resolve();
    if (this.#deferred && this.#inFlight.length === 0 && this.#retry === null) {
      this.#deferred = false;
      this.#commitNow();
    }
  }

  /** The queued writes as a batch (null when there are none); what JSON cannot encode is skipped and reported. */
  #encode(): Batch | null {
    if (this.#tasks.size === 0 && this.#checkpoints.size === 0 && this.#deadLetters.size === 0 && this.#auditEntries.length === 0) return null;
    const skipped: string[] = [];
    const nodeId = this.nodeId;

    const tasks: unknown[] = [];
    for (const task of this.#tasks) {
      const start = tasks.length;
      try {
        const row = task.toRow();
        tasks.push(
          row.id, row.type, row.priority, JSON.stringify(row.capabilities), json(row.payload), JSON.stringify(row.metadata),
          JSON.stringify(row.options), row.status, row.attempt, row.agentId, row.submittedAt, row.updatedAt,
          row.resultJson ?? json(row.result), row.error == null ? null : JSON.stringify(row.error), nodeId,
        );
      } catch (cause) {
        tasks.length = start;
        skipped.push(`task ${task.id}: ${messageOf(cause)}`);
      }
    }
    this.#tasks.clear();

    const checkpoints: (string | null)[] = [];
    for (const [taskId, state] of this.#checkpoints) checkpoints.push(taskId, state === DELETE ? DELETED_CHECKPOINT : state);
    this.#checkpoints.clear();

    const deadLetters: unknown[] = [];
    for (const [taskId, entry] of this.#deadLetters) {
      try {
        deadLetters.push(taskId, entry === DELETE ? null : [JSON.stringify(entry.row), JSON.stringify(entry.error), entry.code, entry.attempts, entry.failedAt]);
      } catch (cause) {
        skipped.push(`dead letter ${taskId}: ${messageOf(cause)}`);
      }
    }
    this.#deadLetters.clear();

    const audit = this.#encodeAudit(skipped);
    if (skipped.length > 0) {
      this.#failure ??= new StoreError(
        this.path,
        `could not write ${skipped.length} item(s) that JSON cannot encode: ${skipped.slice(0, 5).join('; ')}${skipped.length > 5 ? '; ...' : ''}`,
      );
    }
    return { tasks, audit, checkpoints, deadLetters };
  }

  /** The queued audit entries with their subjects' ids and their details as JSON, in place. */
  #encodeAudit(skipped: string[]): unknown[] {
    let audit = this.#auditEntries;
    this.#auditEntries = [];
    let bad: Set<number> | null = null;
    for (let i = 0; i < audit.length; i += AUDIT_FIELDS) {
      const task = audit[i + 2] as AuditSubject | null;
      if (task !== null) audit[i + 2] = task.id;
      const details = audit[i + 5];
      if (details === null) continue;
      try {
        audit[i + 5] = JSON.stringify(details);
      } catch (cause) {
        (bad ??= new Set()).add(i);
        skipped.push(`audit ${String(audit[i + 1])} of ${String(audit[i + 2] ?? audit[i + 3] ?? '-')}: ${messageOf(cause)}`);
      }
    }
    if (bad !== null) {
      const kept: unknown[] = [];
      for (let i = 0; i < audit.length; i += AUDIT_FIELDS) if (!bad.has(i)) for (let f = 0; f < AUDIT_FIELDS; f++) kept.push(audit[i + f]);
      audit = kept;
    }
    return audit;
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
