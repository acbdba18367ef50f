import { Worker } from 'node:worker_threads';
import { StoreError } from '../errors.js';
import { emptyBatch, json, PendingWrites } from './sqlite-batch.js';
import { WORDED_FAILURES, type Batch, type Read, type Reply, type Request, type ThreadFailure, type TrailRead } from './sqlite-protocol.js';
import { parse, toDeadLetter, toTaskRow, type ClaimedRecordRow, type DeadLetterRecordRow, type TaskRecordRow } from './sqlite-rows.js';
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
import { threadEntry } from '../util/thread-entry.js';

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
  /** Rows of finished tasks older than this are deleted, at open and every `pruneEveryMs`. @default 7 days */
  retainFinishedMs?: number;
  /** How often finished rows are pruned after open (ms; tests shorten it). @default 1 hour */
  pruneEveryMs?: number;
}

/** How often a live process marks itself alive in the file (ms). */
const HEARTBEAT_MS = 10_000;
/** A process that has not marked itself alive for this long is gone (ms). */
const STALE_AFTER_MS = 60_000;
const PRUNE_EVERY_MS = 3_600_000;
const DEFAULT_RETAIN_FINISHED_MS = 7 * 24 * 3_600_000;

const RETRY_FIRST_MS = 10;
const RETRY_MAX_MS = 1000;

/**
 * Commits the thread may have at once from the batch timer and early posts: one committing, the
 * next waiting, so the thread does not wait for this one. (flush() and reads post at any time.)
 */
const MAX_IN_FLIGHT = 2;
/**
 * Encoded writes (rows, weighted chunks) that are posted at once rather than at the next batch:
 * a long synchronous stretch (a burst of short tasks runs on microtasks, where no timer fires)
 * then commits beside the engine instead of after it.
 */
const EARLY_POST = 2048;

const WRITER_ENTRY = threadEntry('./sqlite-writer.js', import.meta.url);
const RESOLVED: Promise<void> = Promise.resolve();

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

/** A batch posted to the thread. (The batch itself is not kept: the thread keeps what it failed to commit.) */
interface Commit {
  /** Checkpoints waiting for this commit: resolved once it is committed, rejected if its attempt fails. */
  waiters: Deferred[];
  /** Settles once the thread answered: what flush() waits for. */
  answered: Deferred;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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
 * `flush()`. A batch is encoded here (sqlite-batch.ts: the row of an unfinished task is taken
 * with `toRow()` then, so several transitions within one batch cost one row) and committed by a
 * writer thread (sqlite-writer.ts) that owns the connection, so the SQL runs beside the engine.
 * While the thread is busy the next batch gathers; what can no longer change (finished rows, full
 * audit chunks) goes out early when enough of it is encoded. Reads are sent after the writes
 * queued before them, so they see them (read-your-writes). A failed commit is kept by the thread
 * and retried, in order before later ones, until it lands or the store closes.
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
  readonly #pruneEveryMs: number;
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

  /** Queued writes, encoded into a batch when it is committed. */
  readonly #pending: PendingWrites;
  /** Checkpoints of the queued writes waiting for their commit. */
  #waiter: Deferred | null = null;

  /** Commits posted, oldest first; the thread answers them in this order. */
  readonly #inFlight: Commit[] = [];
  /** Commits posted, and (shared with the thread, which counts them as it goes) answered: readable while no message can be. */
  #posted = 0;
  readonly #answeredCount = new Int32Array(new SharedArrayBuffer(4));
  /** The thread holds writes a failed commit left, and retries them: the process stays alive meanwhile. */
  #backlog = false;
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
    this.#pruneEveryMs = options.pruneEveryMs ?? PRUNE_EVERY_MS;
    this.#pending = new PendingWrites(options.nodeId);
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
      answered: this.#answeredCount,
      path: this.path,
      synchronous: this.#synchronous,
      busyTimeoutMs: this.#busyTimeoutMs,
      nodeId: this.nodeId,
      audit: this.#audit,
      retainFinishedMs: this.#retainFinishedMs,
      heartbeatMs: HEARTBEAT_MS,
      staleAfterMs: STALE_AFTER_MS,
      pruneEveryMs: this.#pruneEveryMs,
      retryFirstMs: RETRY_FIRST_MS,
      retryMaxMs: RETRY_MAX_MS,
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
    if (!this.#pending.empty) this.#schedule();
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
    try {
      // The thread makes one last attempt at writes a failed commit left; they are lost if it fails.
      await this.#call({ t: 'close' }, (failure) => new StoreError(this.path, `${failure.message}`));
    } catch (error) {
      this.#failure ??= error as StoreError;
    }
    this.#backlog = false;
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
    // What failed commits left is attempted at once too: flush() reports its outcome.
    if (this.#backlog && this.#inFlight.length === 0) this.#postCommit(emptyBatch(), []);
    const last = this.#inFlight.at(-1);
    return last === undefined ? this.#takeFailure() : last.answered.promise.then(() => this.#takeFailure());
  }

  saveTask(task: PersistableTask): void {
    if (this.#closed) throw this.#notOpen();
    this.#pending.saveTask(task);
    this.#queued();
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
    this.#pending.saveCheckpoint(taskId, text);
    this.#schedule();
    return (this.#waiter ??= deferred()).promise;
  }

  deleteCheckpoint(taskId: string): void {
    if (this.#closed) throw this.#notOpen();
    this.#pending.deleteCheckpoint(taskId);
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
    this.#pending.appendAudit(timestamp, type, task, agentId, attempt, details);
    this.#queued();
  }

  history(taskId: string): Promise<AuditEvent[]> {
    return this.#readTrail({ kind: 'history', taskId });
  }

  audit(query: AuditQuery): Promise<AuditEvent[]> {
    return this.#readTrail({ kind: 'audit', since: query.since ?? 0, limit: query.limit ?? 100, type: query.type ?? null });
  }

  /** Entries of the trail; chunks that cannot be read are skipped and reported. */
  async #readTrail(read: Read): Promise<AuditEvent[]> {
    const { events, unreadable } = (await this.#read(read)) as TrailRead;
    for (const description of unreadable) this.#onCommitError?.(new StoreError(this.path, description));
    return events;
  }

  putDeadLetter(entry: DeadLetterRow): void {
    if (this.#closed) throw this.#notOpen();
    this.#pending.putDeadLetter(entry);
    this.#schedule();
  }

  deleteDeadLetter(taskId: string): void {
    if (this.#closed) throw this.#notOpen();
    this.#pending.deleteDeadLetter(taskId);
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
      const error = new StoreError(this.path, reply.failure.message);
      if (reply.commit) this.#failure ??= error;
      this.#onCommitError?.(error);
      return;
    }
    if (reply.t === 'drained') {
      this.#backlog = false;
      if (this.#replies.size === 0) this.#worker?.unref();
      return;
    }
    const onReply = this.#replies.get(reply.id)!;
    this.#replies.delete(reply.id);
    onReply(reply);
    // (After it: a failed commit leaves a backlog the thread retries, which holds the process.)
    if (this.#replies.size === 0 && !this.#backlog) this.#worker?.unref();
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

  /** After a write was queued: the batch timer runs, and enough encoded writes go at once if the thread has room. */
  #queued(): void {
    this.#schedule();
    if (this.#pending.encodedCount < EARLY_POST || !this.#ready || this.#outstanding() >= MAX_IN_FLIGHT) return;
    const skipped: string[] = [];
    const batch = this.#pending.takeEncoded(skipped);
    this.#reportSkipped(skipped);
    if (batch !== null) this.#postCommit(batch, []);
  }

  /** Commits posted that the thread has not answered yet (it counts in shared memory, so this is known during a burst). */
  #outstanding(): number {
    return this.#posted - Atomics.load(this.#answeredCount, 0);
  }

  #schedule(): void {
    if (this.#timer === null && this.#ready && !this.#closed) this.#timer = setTimeout(this.#onTimer, this.#flushIntervalMs);
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    // The thread has work enough: the next batch gathers until a commit is answered.
    if (this.#outstanding() >= MAX_IN_FLIGHT) this.#deferred = true;
    else this.#commitNow();
  };

  #takeFailure(): Promise<void> {
    const failure = this.#failure;
    this.#failure = null;
    return failure === null ? RESOLVED : Promise.reject(failure);
  }

  /** Encodes the queued writes and posts them. */
  #commitNow(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const skipped: string[] = [];
    const batch = this.#pending.take(skipped);
    this.#reportSkipped(skipped);
    if (batch === null) return;
    const waiters = this.#waiter === null ? [] : [this.#waiter];
    this.#waiter = null;
    this.#postCommit(batch, waiters);
  }

  /** What JSON could not encode: the next flush() (or close()) rejects naming it. */
  #reportSkipped(skipped: string[]): void {
    if (skipped.length === 0) return;
    this.#failure ??= new StoreError(
      this.path,
      `could not write ${skipped.length} item(s) that JSON cannot encode: ${skipped.slice(0, 5).join('; ')}${skipped.length > 5 ? '; ...' : ''}`,
    );
  }

  #postCommit(batch: Batch, waiters: Deferred[]): void {
    const commit: Commit = { waiters, answered: deferred() };
    this.#posted++;
    this.#inFlight.push(commit);
    this.#post({ t: 'commit', batch }, (reply) => this.#answered(commit, reply));
  }

  #answered(commit: Commit, reply: Reply): void {
    this.#inFlight.shift();
    if (reply.t === 'done') {
      for (const waiter of commit.waiters) waiter.resolve();
    } else {
      // Rolled back (a lock held too long, a full disk): the thread keeps the writes, with those
      // posted after them, and commits them in order on its next attempt (it retries on its own).
      const error = new StoreError(this.path, reply.t === 'failed' ? reply.failure.message : 'commit failed');
      this.#failure ??= error;
      this.#backlog = this.#broken === null;
      for (const waiter of commit.waiters) waiter.reject(error);
      this.#onCommitError?.(error);
    }
    commit.answered.resolve();
    if (this.#deferred && this.#outstanding() < MAX_IN_FLIGHT) {
      this.#deferred = false;
      this.#commitNow();
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
