import type BetterSqlite3 from 'better-sqlite3';
import { hostname } from 'node:os';
import { StoreError } from '../errors.js';
import type { SerializedError } from '../workers/protocol.js';
import { FINISHED_STATUSES, MIGRATIONS, SCHEMA_VERSION, UNFINISHED_STATUSES } from './sqlite-schema.js';
import type {
  AuditEvent,
  AuditEventType,
  AuditQuery,
  AuditRetention,
  AuditSubject,
  DeadLetterRow,
  NewAuditEvent,
  PersistableTask,
  SqliteSynchronous,
  Store,
  TaskListQuery,
  TaskRow,
  UnfinishedTask,
  UnreadableTask,
} from './store.js';

type Database = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement<unknown[], unknown>;

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

const RESOLVED: Promise<void> = Promise.resolve();
/** Marks a queued delete in the pending maps. */
const DELETE = Symbol('delete');

const TASK_COLUMNS = [
  'id', 'type', 'priority', 'capabilities', 'payload', 'metadata', 'options',
  'status', 'attempt', 'agent_id', 'submitted_at', 'updated_at', 'result', 'error', 'owner',
] as const;
const AUDIT_COLUMNS = ['seq', 'ts', 'type', 'task_id', 'agent_id', 'attempt', 'details'] as const;
// Rows per multi-row INSERT: one statement carries many rows, cutting per-statement overhead.
const TASK_ROWS_PER_INSERT = 32;
const AUDIT_ROWS_PER_INSERT = 64;

interface TaskRecordRow {
  id: string;
  type: string;
  priority: number;
  capabilities: string;
  payload: string | null;
  metadata: string;
  options: string;
  status: TaskRow['status'];
  attempt: number;
  agent_id: string | null;
  submitted_at: number;
  updated_at: number;
  result: string | null;
  error: string | null;
  owner: string | null;
}

interface UnfinishedRecordRow extends TaskRecordRow {
  checkpoint: string | null;
  has_checkpoint: number;
}

interface NodeRow {
  id: string;
  host: string;
  pid: number;
  heartbeat_at: number;
}

interface AuditRecordRow {
  seq: number;
  ts: number;
  type: AuditEventType;
  task_id: string | null;
  agent_id: string | null;
  attempt: number | null;
  details: string | null;
}

interface DeadLetterRecordRow {
  task_id: string;
  row: string;
  error: string;
  code: string;
  attempts: number;
  failed_at: number;
}

interface Statements {
  upsertCheckpoint: Statement;
  deleteCheckpoint: Statement;
  upsertDeadLetter: Statement;
  deleteDeadLetter: Statement;
  listDeadLetters: Statement;
  unfinished: Statement;
  claim: Statement;
  pruneFinished: Statement;
  findTask: Statement;
  listTasks: Statement;
  nodes: Statement;
  deleteNode: Statement;
  upsertNode: Statement;
  heartbeat: Statement;
  history: Statement;
  auditSince: Statement;
  auditSinceOfType: Statement;
  auditOldest: Statement;
  auditFirstFresh: Statement;
  auditDeleteUpTo: Statement;
  saveAuditSeq: Statement;
}

/** `JSON.stringify`, with undefined (and other values JSON has no text for) as SQL NULL. */
function json(value: unknown): string | null {
  return JSON.stringify(value) ?? null;
}

function parse(text: string | null): unknown {
  return text === null ? undefined : JSON.parse(text);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Rows of one table written with multi-row INSERTs: values are pushed flat, a full chunk is
 * written at once, the rest by one statement sized to it (statements are cached per size).
 */
class RowWriter {
  readonly values: unknown[] = [];
  #rows = 0;
  readonly #statements = new Map<number, Statement>();

  constructor(
    private readonly db: Database,
    private readonly sql: (rows: number) => string,
    private readonly width: number,
    private readonly chunk: number,
  ) {}

  /** Call after pushing one row's values. */
  endRow(): void {
    if (++this.#rows === this.chunk) this.finish();
  }

  /** Drops the values of a row that could not be completed. */
  abortRow(): void {
    this.values.length = this.#rows * this.width;
  }

  /** Forgets buffered rows (after a failed transaction). */
  reset(): void {
    this.values.length = 0;
    this.#rows = 0;
  }

  finish(): void {
    if (this.#rows === 0) return;
    let statement = this.#statements.get(this.#rows);
    if (statement === undefined) {
      statement = this.db.prepare(this.sql(this.#rows));
      this.#statements.set(this.#rows, statement);
    }
    statement.run(this.values);
    this.values.length = 0;
    this.#rows = 0;
  }
}

function placeholders(width: number, rows: number): string {
  const row = `(${new Array<string>(width).fill('?').join(', ')})`;
  return new Array<string>(rows).fill(row).join(', ');
}

function taskUpsertSql(rows: number): string {
  // submitted_at keeps its first value: a row is rewritten at every transition.
  const updates = TASK_COLUMNS.filter((c) => c !== 'id' && c !== 'submitted_at').map((c) => `${c} = excluded.${c}`);
  return `INSERT INTO tasks (${TASK_COLUMNS.join(', ')}) VALUES ${placeholders(TASK_COLUMNS.length, rows)}
    ON CONFLICT (id) DO UPDATE SET ${updates.join(', ')}`;
}

function auditInsertSql(rows: number): string {
  return `INSERT INTO audit (${AUDIT_COLUMNS.join(', ')}) VALUES ${placeholders(AUDIT_COLUMNS.length, rows)}`;
}

/**
 * A store in one SQLite file (WAL). Writes are queued in memory and committed in one
 * transaction per batch, at most `flushIntervalMs` after the batch's first write or at
 * `flush()`. Task rows are taken (`toRow()`) at commit, so several transitions of a task
 * within one batch cost one upsert. Reads see queued writes.
 *
 * A value that JSON cannot encode (a BigInt, a cycle) is reported when its write is attempted:
 * `saveCheckpoint` rejects at once; a task row, audit entry or dead letter is skipped at commit and
 * the next `flush()` (or `close()`) rejects with a StoreError naming it.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly durable = true;
  readonly path: string;
  readonly nodeId: string;

  readonly #synchronous: SqliteSynchronous;
  readonly #retainMs: number;
  readonly #maxEvents: number;
  readonly #flushIntervalMs: number;
  readonly #busyTimeoutMs: number;
  readonly #retainFinishedMs: number;
  #maintenanceTimer: ReturnType<typeof setInterval> | null = null;
  #heartbeatTimer: ReturnType<typeof setInterval> | null = null;

  #db: Database | null = null;
  #statements: Statements | null = null;
  #taskWriter: RowWriter | null = null;
  #auditWriter: RowWriter | null = null;
  #commitBatch: ((now: number) => void) | null = null;

  /** Keyed by the task object (one per live task): no id string is built, and identity hashing is cheap. */
  readonly #tasks = new Set<PersistableTask>();
  /** JSON of the state (null for undefined), or DELETE. */
  readonly #checkpoints = new Map<string, string | null | typeof DELETE>();
  readonly #deadLetters = new Map<string, DeadLetterRow | typeof DELETE>();
  #audit: NewAuditEvent[] = [];
  #batch: { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void } | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** Set by close(): writes after it fail (before open() they are queued). */
  #closed = false;
  /** Delay of the next retry after a failed commit; 0 while commits succeed. */
  #retryMs = 0;
  readonly #onCommitError: ((error: StoreError) => void) | undefined;
  /** A failure of a commit nobody was waiting for; the next flush() or close() rejects with it. */
  #failure: StoreError | null = null;
  /** Highest audit seq assigned, and every seq up to `#auditFloor` has been deleted by retention. */
  #lastSeq = 0;
  #auditFloor = 0;

  constructor(options: SqliteStoreOptions) {
    this.path = options.path;
    this.#synchronous = options.synchronous ?? 'normal';
    this.#retainMs = options.audit.retainMs;
    this.#maxEvents = options.audit.maxEvents;
    this.#flushIntervalMs = options.flushIntervalMs ?? 2;
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 1000;
    this.#onCommitError = options.onCommitError;
    this.nodeId = options.nodeId;
    this.#retainFinishedMs = options.retainFinishedMs ?? DEFAULT_RETAIN_FINISHED_MS;
  }

  /** @throws StoreError when better-sqlite3 is missing, or the file is corrupt, locked, unreadable or from a newer schema */
  async open(): Promise<void> {
    if (this.#db !== null) return;
    if (this.#closed) throw this.#notOpen();
    let Database: typeof BetterSqlite3;
    try {
      Database = (await import('better-sqlite3')).default;
    } catch (cause) {
      throw new StoreError(this.path, 'needs the optional dependency better-sqlite3 (npm install better-sqlite3)', { cause });
    }
    // close() came while the module loaded: open nothing (what follows is synchronous).
    if (this.#closed) throw this.#notOpen();
    let db: Database | null = null;
    try {
      db = new Database(this.path, { timeout: this.#busyTimeoutMs });
      // Each step reads the file, so corrupt or locked files fail here rather than at a later commit.
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.#synchronous}`);
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new StoreError(this.path, `is corrupt (quick_check: ${String(check)})`);
      this.#migrate(db);
      this.#prepare(db);
      // Entries that expired while the store was closed.
      this.#retain(Date.now());
      this.#statements!.upsertNode.run(this.nodeId, hostname(), process.pid, Date.now(), Date.now());
      this.#pruneFinished();
    } catch (cause) {
      db?.close();
      this.#statements = null;
      throw cause instanceof StoreError ? cause : new StoreError(this.path, describeOpenFailure(cause), { cause });
    }
    this.#db = db;
    openHere.add(this.nodeId);
    // Neither timer keeps the process alive.
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), HEARTBEAT_MS);
    this.#heartbeatTimer.unref();
    this.#maintenanceTimer = setInterval(() => this.#pruneFinished(), PRUNE_EVERY_MS);
    this.#maintenanceTimer.unref();
    // Writes queued before open (tasks submitted before start()) go out with the first batch.
    if (this.#tasks.size > 0 || this.#audit.length > 0 || this.#checkpoints.size > 0 || this.#deadLetters.size > 0) this.#schedule();
  }

  /** Commits what is queued, then closes the file. Idempotent. Rejects when the last commits failed. */
  close(): Promise<void> {
    const db = this.#db;
    this.#closed = true;
    if (db === null) {
      // Never opened: queued writes are dropped, and a checkpoint waiting for its commit is told.
      this.#batch?.reject(this.#notOpen());
      this.#batch = null;
      return RESOLVED;
    }
    if (this.#heartbeatTimer !== null) clearInterval(this.#heartbeatTimer);
    if (this.#maintenanceTimer !== null) clearInterval(this.#maintenanceTimer);
    this.#heartbeatTimer = this.#maintenanceTimer = null;
    this.#commit();
    // Gone from the file: a process starting after this one recovers what this one left at once.
    try {
      this.#statements!.deleteNode.run(this.nodeId);
    } catch (cause) {
      this.#failure ??= new StoreError(this.path, `could not leave the nodes table: ${messageOf(cause)}`, { cause });
    }
    db.close();
    openHere.delete(this.nodeId);
    this.#db = null;
    this.#statements = null;
    this.#taskWriter = null;
    this.#auditWriter = null;
    this.#commitBatch = null;
    return this.#takeFailure();
  }

  flush(): Promise<void> {
    if (this.#db === null) return Promise.reject(this.#notOpen());
    this.#commit();
    return this.#takeFailure();
  }

  saveTask(task: PersistableTask): void {
    if (this.#closed) throw this.#notOpen();
    this.#tasks.add(task);
    this.#schedule();
  }

  async claimUnfinished(): Promise<{ tasks: UnfinishedTask[]; unreadable: UnreadableTask[] }> {
    const statements = this.#read();
    const claimed = this.#db!.transaction(() => {
      const now = Date.now();
      const host = hostname();
      const live = new Set<string>([this.nodeId]);
      for (const node of statements.nodes.all() as NodeRow[]) {
        if (node.id === this.nodeId) continue;
        if (nodeGone(node, now, host)) statements.deleteNode.run(node.id);
        else live.add(node.id);
      }
      const rows: UnfinishedRecordRow[] = [];
      for (const row of statements.unfinished.all() as UnfinishedRecordRow[]) {
        if (row.owner !== null && live.has(row.owner)) continue;
        statements.claim.run(this.nodeId, row.id);
        rows.push({ ...row, owner: this.nodeId });
      }
      return rows;
    }).immediate();
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
    const row = this.#read().findTask.get(taskId) as TaskRecordRow | undefined;
    return row === undefined ? undefined : this.#readable(row);
  }

  async listTasks(query: TaskListQuery): Promise<TaskRow[]> {
    const statuses = query.status === undefined || query.status.length === 0 ? null : JSON.stringify(query.status);
    const rows = this.#read().listTasks.all({ statuses, type: query.type ?? null, limit: query.limit ?? 100 }) as TaskRecordRow[];
    const out: TaskRow[] = [];
    for (const row of rows) {
      const task = this.#readable(row);
      if (task !== undefined) out.push(task);
    }
    return out;
  }

  /** The row as a TaskRow, or undefined (reported) when it cannot be read. */
  #readable(row: TaskRecordRow): TaskRow | undefined {
    try {
      return toTaskRow(row);
    } catch (cause) {
      this.#onCommitError?.(new StoreError(this.path, `task ${row.id} cannot be read back: ${messageOf(cause)}`, { cause }));
      return undefined;
    }
  }

  #pruneFinished(): void {
    try {
      this.#statements?.pruneFinished.run(Date.now() - this.#retainFinishedMs);
    } catch (cause) {
      this.#onCommitError?.(new StoreError(this.path, `pruning finished tasks failed: ${messageOf(cause)}`, { cause }));
    }
  }

  #heartbeat(): void {
    try {
      this.#statements?.heartbeat.run(Date.now(), this.nodeId);
    } catch (cause) {
      this.#onCommitError?.(new StoreError(this.path, `heartbeat failed: ${messageOf(cause)}`, { cause }));
    }
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
    if (this.#batch === null) {
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // Handled here too, so a caller that drops the promise does not crash the process.
      promise.catch(() => {});
      this.#batch = { promise, resolve, reject };
    }
    return this.#batch.promise;
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
    this.#audit.push({ type, timestamp, task, agentId, attempt, details });
    this.#schedule();
  }

  async history(taskId: string): Promise<AuditEvent[]> {
    const statements = this.#read();
    const now = Date.now();
    this.#retain(now);
    return (statements.history.all(taskId, now - this.#retainMs) as AuditRecordRow[]).map(toAuditEvent);
  }

  async audit(query: AuditQuery): Promise<AuditEvent[]> {
    const statements = this.#read();
    const now = Date.now();
    this.#retain(now);
    const since = query.since ?? 0;
    const limit = query.limit ?? 100;
    // The ts filter catches the few entries retention leaves when a clock stepped back.
    const cutoff = now - this.#retainMs;
    const rows =
      query.type === undefined ? statements.auditSince.all(since, cutoff, limit) : statements.auditSinceOfType.all(query.type, since, cutoff, limit);
    return (rows as AuditRecordRow[]).map(toAuditEvent);
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
    const out: DeadLetterRow[] = [];
    for (const row of this.#read().listDeadLetters.all() as DeadLetterRecordRow[]) {
      try {
        out.push(toDeadLetter(row));
      } catch (cause) {
        this.#onCommitError?.(new StoreError(this.path, `dead letter ${row.task_id} cannot be read back: ${messageOf(cause)}`, { cause }));
      }
    }
    return out;
  }

  #notOpen(): StoreError {
    return new StoreError(this.path, this.#closed ? 'is closed' : 'is not open yet (call start() first)');
  }

  #open(): Statements {
    if (this.#statements === null) throw this.#notOpen();
    return this.#statements;
  }

  /** Statements for a read that must see every queued write: commits them first. */
  #read(): Statements {
    const statements = this.#open();
    this.#commit();
    return statements;
  }

  #schedule(): void {
    if (this.#timer === null && this.#db !== null) this.#timer = setTimeout(this.#onTimer, this.#flushIntervalMs);
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    this.#commit();
  };

  #takeFailure(): Promise<void> {
    const failure = this.#failure;
    this.#failure = null;
    return failure === null ? RESOLVED : Promise.reject(failure);
  }

  /** Commits every queued write in one transaction. Failures are kept for the next flush(). */
  #commit(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const batch = this.#batch;
    this.#batch = null;
    if (this.#tasks.size === 0 && this.#checkpoints.size === 0 && this.#deadLetters.size === 0 && this.#audit.length === 0) {
      batch?.resolve();
      return;
    }
    const lastSeq = this.#lastSeq;
    const auditFloor = this.#auditFloor;
    try {
      this.#commitBatch!(Date.now());
    } catch (cause) {
      // Rolled back (a lock held too long, a full disk): the writes stay queued and the commit is
      // retried with a growing delay; tasks are read again then, so nothing is lost meanwhile.
      this.#lastSeq = lastSeq;
      this.#auditFloor = auditFloor;
      this.#taskWriter!.reset();
      this.#auditWriter!.reset();
      const error = cause instanceof StoreError ? cause : new StoreError(this.path, `commit failed: ${messageOf(cause)}`, { cause });
      this.#failure ??= error;
      batch?.reject(error);
      this.#retryMs = Math.min(RETRY_MAX_MS, this.#retryMs === 0 ? RETRY_FIRST_MS : this.#retryMs * 2);
      if (this.#db !== null && !this.#closed) this.#timer = setTimeout(this.#onTimer, this.#retryMs);
      this.#onCommitError?.(error);
      return;
    }
    this.#retryMs = 0;
    batch?.resolve();
    this.#tasks.clear();
    this.#checkpoints.clear();
    this.#deadLetters.clear();
    this.#audit = [];
  }

  /** The body of a commit, run inside one transaction. Items JSON cannot encode are skipped and reported. */
  #write(now: number): void {
    const statements = this.#statements!;
    const skipped: string[] = [];

    const tasks = this.#taskWriter!;
    for (const task of this.#tasks.values()) {
      try {
        const row = task.toRow();
        tasks.values.push(
          row.id, row.type, row.priority, JSON.stringify(row.capabilities), json(row.payload), JSON.stringify(row.metadata),
          JSON.stringify(row.options), row.status, row.attempt, row.agentId, row.submittedAt, row.updatedAt,
          row.resultJson ?? json(row.result), row.error == null ? null : JSON.stringify(row.error), this.nodeId,
        );
        tasks.endRow();
      } catch (cause) {
        tasks.abortRow();
        skipped.push(`task ${task.id}: ${messageOf(cause)}`);
      }
    }
    tasks.finish();

    for (const [taskId, state] of this.#checkpoints) {
      if (state === DELETE) statements.deleteCheckpoint.run(taskId);
      else statements.upsertCheckpoint.run(taskId, state, now);
    }

    for (const [taskId, entry] of this.#deadLetters) {
      if (entry === DELETE) {
        statements.deleteDeadLetter.run(taskId);
        continue;
      }
      try {
        statements.upsertDeadLetter.run(taskId, JSON.stringify(entry.row), JSON.stringify(entry.error), entry.code, entry.attempts, entry.failedAt);
      } catch (cause) {
        skipped.push(`dead letter ${taskId}: ${messageOf(cause)}`);
      }
    }

    if (this.#audit.length > 0) {
      const audit = this.#auditWriter!;
      for (const event of this.#audit) {
        try {
          audit.values.push(this.#lastSeq + 1, event.timestamp, event.type, event.task?.id ?? null, event.agentId, event.attempt, event.details === null ? null : JSON.stringify(event.details));
          audit.endRow();
          this.#lastSeq++;
        } catch (cause) {
          audit.abortRow();
          skipped.push(`audit ${event.type} of ${event.task?.id ?? event.agentId ?? '-'}: ${messageOf(cause)}`);
        }
      }
      audit.finish();
      statements.saveAuditSeq.run(this.#lastSeq);
      this.#retain(now);
    }

    if (skipped.length > 0) {
      this.#failure ??= new StoreError(
        this.path,
        `could not write ${skipped.length} item(s) that JSON cannot encode: ${skipped.slice(0, 5).join('; ')}${skipped.length > 5 ? '; ...' : ''}`,
      );
    }
  }

  /** Deletes audit entries beyond the newest `maxEvents` and older than `retainMs`: range deletes on seq, no scan. */
  #retain(now: number): void {
    const statements = this.#statements!;
    let upTo = this.#lastSeq - this.#maxEvents;
    const cutoff = now - this.#retainMs;
    const oldest = statements.auditOldest.get() as { seq: number; ts: number } | undefined;
    if (oldest !== undefined && oldest.ts < cutoff) {
      // Timestamps grow with seq, so the expired entries are a prefix of the trail.
      const fresh = statements.auditFirstFresh.get(cutoff) as { seq: number } | undefined;
      upTo = Math.max(upTo, fresh === undefined ? this.#lastSeq : fresh.seq - 1);
    }
    if (upTo > this.#auditFloor) {
      statements.auditDeleteUpTo.run(upTo);
      this.#auditFloor = upTo;
    }
  }

  #migrate(db: Database): void {
    db.transaction(() => {
      db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
      const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
      const version = row?.version ?? 0;
      if (version > SCHEMA_VERSION) {
        throw new StoreError(this.path, `has schema version ${version}, written by a newer version of this library (this one reads up to ${SCHEMA_VERSION})`);
      }
      for (let v = version; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
      if (row === undefined) db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(SCHEMA_VERSION);
      else if (version !== SCHEMA_VERSION) db.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION);
      // BEGIN IMMEDIATE takes the write lock: a database another connection holds locked fails here.
    }).immediate();
  }

  #prepare(db: Database): void {
    this.#statements = {
      upsertCheckpoint: db.prepare(
        'INSERT INTO checkpoints (task_id, state, saved_at) VALUES (?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at',
      ),
      deleteCheckpoint: db.prepare('DELETE FROM checkpoints WHERE task_id = ?'),
      upsertDeadLetter: db.prepare(
        `INSERT INTO dead_letters (task_id, row, error, code, attempts, failed_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (task_id) DO UPDATE SET row = excluded.row, error = excluded.error, code = excluded.code, attempts = excluded.attempts, failed_at = excluded.failed_at`,
      ),
      deleteDeadLetter: db.prepare('DELETE FROM dead_letters WHERE task_id = ?'),
      listDeadLetters: db.prepare('SELECT * FROM dead_letters ORDER BY rowid'),
      unfinished: db.prepare(
        `SELECT tasks.*, checkpoints.state AS checkpoint, checkpoints.task_id IS NOT NULL AS has_checkpoint
         FROM tasks LEFT JOIN checkpoints ON checkpoints.task_id = tasks.id WHERE status IN ${UNFINISHED_STATUSES} ORDER BY tasks.rowid`,
      ),
      claim: db.prepare('UPDATE tasks SET owner = ? WHERE id = ?'),
      findTask: db.prepare('SELECT * FROM tasks WHERE id = ?'),
      // Newest first by insertion (rowid): no index on update time, which every row write would pay for.
      listTasks: db.prepare(
        `SELECT * FROM tasks WHERE (@statuses IS NULL OR status IN (SELECT value FROM json_each(@statuses))) AND (@type IS NULL OR type = @type)
         ORDER BY rowid DESC LIMIT @limit`,
      ),
      nodes: db.prepare('SELECT id, host, pid, heartbeat_at FROM nodes'),
      deleteNode: db.prepare('DELETE FROM nodes WHERE id = ?'),
      upsertNode: db.prepare(
        'INSERT INTO nodes (id, host, pid, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at',
      ),
      heartbeat: db.prepare('UPDATE nodes SET heartbeat_at = ? WHERE id = ?'),
      pruneFinished: db.prepare(`DELETE FROM tasks WHERE status IN ${FINISHED_STATUSES} AND updated_at < ?`),
      history: db.prepare('SELECT * FROM audit WHERE task_id = ? AND ts >= ? ORDER BY seq'),
      auditSince: db.prepare('SELECT * FROM audit WHERE seq > ? AND ts >= ? ORDER BY seq LIMIT ?'),
      auditSinceOfType: db.prepare('SELECT * FROM audit WHERE type = ? AND seq > ? AND ts >= ? ORDER BY seq LIMIT ?'),
      auditOldest: db.prepare('SELECT seq, ts FROM audit ORDER BY seq LIMIT 1'),
      auditFirstFresh: db.prepare('SELECT seq FROM audit WHERE ts >= ? ORDER BY seq LIMIT 1'),
      auditDeleteUpTo: db.prepare('DELETE FROM audit WHERE seq <= ?'),
      saveAuditSeq: db.prepare("UPDATE meta SET value = ? WHERE key = 'audit_seq'"),
    };
    this.#taskWriter = new RowWriter(db, taskUpsertSql, TASK_COLUMNS.length, TASK_ROWS_PER_INSERT);
    this.#auditWriter = new RowWriter(db, auditInsertSql, AUDIT_COLUMNS.length, AUDIT_ROWS_PER_INSERT);
    const write = db.transaction((now: number) => this.#write(now));
    this.#commitBatch = (now) => write.immediate(now);
    const last = db.prepare("SELECT value FROM meta WHERE key = 'audit_seq'").get() as { value: number };
    const first = db.prepare('SELECT min(seq) AS seq FROM audit').get() as { seq: number | null };
    this.#lastSeq = last.value;
    this.#auditFloor = first.seq === null ? this.#lastSeq : first.seq - 1;
  }
}

/** Node ids of the stores open in this process: a node row with this process's pid and another id is a previous process's. */
const openHere = new Set<string>();

/**
 * A node is gone when its heartbeat is stale or, on this host, its process is dead. A row with
 * this process's pid is a store open here, or one a previous process left (a container
 * restarted with the same pid): the registry of stores open here tells them apart.
 */
function nodeGone(node: NodeRow, now: number, host: string): boolean {
  if (now - node.heartbeat_at > STALE_AFTER_MS) return true;
  if (node.host !== host) return false;
  return node.pid === process.pid ? !openHere.has(node.id) : !processAlive(node.pid);
}

/** True when a process with this pid exists on this host (it may be another one that reused the pid: staleness then decides). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

function describeOpenFailure(cause: unknown): string {
  const code = (cause as { code?: unknown } | null)?.code;
  const message = messageOf(cause);
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return `is locked by another connection (${message})`;
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') return `is corrupt or not a SQLite database (${message})`;
  return `cannot be opened (${typeof code === 'string' ? `${code}: ` : ''}${message})`;
}

function toTaskRow(r: TaskRecordRow): TaskRow {
  const row: TaskRow = {
    id: r.id,
    type: r.type,
    priority: r.priority,
    capabilities: JSON.parse(r.capabilities) as string[],
    payload: parse(r.payload),
    metadata: JSON.parse(r.metadata) as Record<string, unknown>,
    options: JSON.parse(r.options) as Record<string, unknown>,
    status: r.status,
    attempt: r.attempt,
    agentId: r.agent_id,
    submittedAt: r.submitted_at,
    updatedAt: r.updated_at,
    error: r.error === null ? null : (JSON.parse(r.error) as SerializedError),
    owner: r.owner,
  };
  if (r.result !== null) row.result = JSON.parse(r.result);
  return row;
}

function toAuditEvent(r: AuditRecordRow): AuditEvent {
  return {
    seq: r.seq,
    timestamp: r.ts,
    type: r.type,
    taskId: r.task_id,
    agentId: r.agent_id,
    attempt: r.attempt,
    details: r.details === null ? null : (JSON.parse(r.details) as Record<string, unknown>),
  };
}

function toDeadLetter(r: DeadLetterRecordRow): DeadLetterRow {
  return {
    taskId: r.task_id,
    row: JSON.parse(r.row) as TaskRow,
    error: JSON.parse(r.error) as SerializedError,
    code: r.code,
    attempts: r.attempts,
    failedAt: r.failed_at,
  };
}
