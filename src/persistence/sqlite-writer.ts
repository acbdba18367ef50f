/**
 * The SQLite store's writer thread: owns the connection and executes, one message at a time,
 * the batches and reads the store posts (see sqlite-protocol.ts). Statement execution is most
 * of a durable task's cost, so it runs here, beside the engine rather than on its thread.
 * Also keeps this process's node alive in the file (heartbeat) and prunes finished rows.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { hostname } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { AUDIT_FIELDS, DELETED_CHECKPOINT, TASK_COLUMNS, type Batch, type OpenConfig, type Read, type Reply, type Request, type ThreadFailure } from './sqlite-protocol.js';
import { FINISHED_STATUSES, MIGRATIONS, SCHEMA_VERSION, UNFINISHED_STATUSES } from './sqlite-schema.js';

type Database = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement<unknown[], unknown>;

/** A failure worded for the store's message as it is (its code is one of WORDED_FAILURES). */
class WriterError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

const AUDIT_COLUMNS = ['seq', 'ts', 'type', 'task_id', 'agent_id', 'attempt', 'details'] as const;
// Rows per multi-row INSERT: one statement carries many rows, cutting per-statement overhead.
const TASK_ROWS_PER_INSERT = 32;
const AUDIT_ROWS_PER_INSERT = 64;

interface NodeRow {
  id: string;
  host: string;
  pid: number;
  heartbeat_at: number;
}

/**
 * Rows of one table written with multi-row INSERTs: a full chunk at once, the rest by one
 * statement sized to it (statements are cached per size).
 */
class RowWriter {
  readonly #statements = new Map<number, Statement>();

  constructor(
    private readonly db: Database,
    private readonly sql: (rows: number) => string,
    private readonly width: number,
    private readonly chunk: number,
  ) {}

  /** Writes the rows whose values are `values[from..to)`. */
  write(values: unknown[], from: number, to: number): void {
    const step = this.chunk * this.width;
    for (; from + step <= to; from += step) this.#statement(this.chunk).run(values.slice(from, from + step));
    if (from < to) this.#statement((to - from) / this.width).run(values.slice(from, to));
  }

  #statement(rows: number): Statement {
    let statement = this.#statements.get(rows);
    if (statement === undefined) {
      statement = this.db.prepare(this.sql(rows));
      this.#statements.set(rows, statement);
    }
    return statement;
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

/** True when a process with this pid exists on this host (it may be another one that reused the pid: staleness then decides). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

function failureOf(error: unknown): ThreadFailure {
  const code = (error as { code?: unknown } | null)?.code;
  return { message: error instanceof Error ? error.message : String(error), code: typeof code === 'string' ? code : null };
}

/** An open database and what the thread keeps about it. */
class Writer {
  readonly #db: Database;
  readonly #config: OpenConfig;
  readonly #host = hostname();
  readonly #tasks: RowWriter;
  readonly #audit: RowWriter;
  readonly #s: ReturnType<typeof prepare>;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  /** Highest audit seq assigned, and every seq up to `#auditFloor` has been deleted by retention. */
  #lastSeq: number;
  #auditFloor: number;
  /** A commit failed: later ones are refused until it is sent again, so writes land in order. */
  #blocked = false;

  constructor(db: Database, config: OpenConfig) {
    this.#db = db;
    this.#config = config;
    this.#s = prepare(db);
    this.#tasks = new RowWriter(db, taskUpsertSql, TASK_COLUMNS.length, TASK_ROWS_PER_INSERT);
    this.#audit = new RowWriter(db, auditInsertSql, AUDIT_COLUMNS.length, AUDIT_ROWS_PER_INSERT);
    this.#lastSeq = (this.#s.auditSeq.get() as { value: number }).value;
    const first = this.#s.auditFirst.get() as { seq: number | null };
    this.#auditFloor = first.seq === null ? this.#lastSeq : first.seq - 1;
    // Entries that expired while the file was closed.
    this.#retain(Date.now());
    this.#s.upsertNode.run(config.nodeId, this.#host, process.pid, Date.now(), Date.now());
    this.#pruneFinished();
  }

  /** Starts the heartbeat and the pruning (after open() replied, so their failures come after it). */
  startTimers(report: (failure: ThreadFailure) => void): void {
    const every = (ms: number, work: () => void, what: string) =>
      this.#timers.push(
        setInterval(() => {
          try {
            work();
          } catch (error) {
            report({ ...failureOf(error), message: `${what} failed: ${failureOf(error).message}` });
          }
        }, ms),
      );
    every(this.#config.heartbeatMs, () => this.#s.heartbeat.run(Date.now(), this.#config.nodeId), 'heartbeat');
    every(this.#config.pruneEveryMs, () => this.#pruneFinished(), 'pruning finished tasks');
  }

  /** Commits a batch in one transaction; refused (false) while an earlier failed commit waits for its retry. */
  commit(batch: Batch, retry: boolean): boolean {
    if (this.#blocked && !retry) return false;
    const lastSeq = this.#lastSeq;
    const auditFloor = this.#auditFloor;
    try {
      this.#db.transaction(() => this.#write(batch)).immediate();
    } catch (error) {
      // Rolled back: the store sends it again, with what it posted after it.
      this.#lastSeq = lastSeq;
      this.#auditFloor = auditFloor;
      this.#blocked = true;
      throw error;
    }
    this.#blocked = false;
    return true;
  }

  #write(batch: Batch): void {
    const s = this.#s;
    this.#tasks.write(batch.tasks, 0, batch.tasks.length);
    const checkpoints = batch.checkpoints;
    const now = Date.now();
    for (let i = 0; i < checkpoints.length; i += 2) {
      const state = checkpoints[i + 1]!;
      if (state === DELETED_CHECKPOINT) s.deleteCheckpoint.run(checkpoints[i]);
      else s.upsertCheckpoint.run(checkpoints[i], state, now);
    }
    const deadLetters = batch.deadLetters;
    for (let i = 0; i < deadLetters.length; i += 2) {
      const entry = deadLetters[i + 1] as unknown[] | null;
      if (entry === null) s.deleteDeadLetter.run(deadLetters[i]);
      else s.upsertDeadLetter.run(deadLetters[i], ...entry);
    }
    const audit = batch.audit;
    if (audit.length > 0) {
      // Seqs are given here, in commit order, which is append order.
      const rows = new Array<unknown>((audit.length / AUDIT_FIELDS) * AUDIT_COLUMNS.length);
      let seq = this.#lastSeq;
      for (let i = 0, o = 0; i < audit.length; i += AUDIT_FIELDS) {
        rows[o++] = ++seq;
        for (let f = 0; f < AUDIT_FIELDS; f++) rows[o++] = audit[i + f];
      }
      this.#audit.write(rows, 0, rows.length);
      this.#lastSeq = seq;
      s.saveAuditSeq.run(seq);
      this.#retain(now);
    }
  }

  read(read: Read): unknown {
    const s = this.#s;
    switch (read.kind) {
      case 'findTask':
        return s.findTask.get(read.taskId);
      case 'listTasks':
        return s.listTasks.all({ statuses: read.statuses, type: read.type, limit: read.limit });
      case 'deadLetters':
        return s.listDeadLetters.all();
      case 'history': {
        const now = Date.now();
        this.#retain(now);
        return s.history.all(read.taskId, now - this.#config.audit.retainMs);
      }
      case 'audit': {
        const now = Date.now();
        this.#retain(now);
        // The ts filter catches the few entries retention leaves when a clock stepped back.
        const cutoff = now - this.#config.audit.retainMs;
        return read.type === null ? s.auditSince.all(read.since, cutoff, read.limit) : s.auditSinceOfType.all(read.type, read.since, cutoff, read.limit);
      }
      case 'claim':
        return this.#claim(new Set(read.openHere));
    }
  }

  /** Takes the unfinished rows of nodes that are gone (one transaction, so two claimers never take the same row). */
  #claim(openHere: Set<string>): unknown[] {
    const s = this.#s;
    const nodeId = this.#config.nodeId;
    return this.#db
      .transaction(() => {
        const now = Date.now();
        const live = new Set<string>([nodeId]);
        for (const node of s.nodes.all() as NodeRow[]) {
          if (node.id === nodeId) continue;
          if (this.#gone(node, now, openHere)) s.deleteNode.run(node.id);
          else live.add(node.id);
        }
        const rows: { id: string; owner: string | null }[] = [];
        for (const row of s.unfinished.all() as { id: string; owner: string | null }[]) {
          if (row.owner !== null && live.has(row.owner)) continue;
          s.claim.run(nodeId, row.id);
          row.owner = nodeId;
          rows.push(row);
        }
        return rows;
      })
      .immediate();
  }

  /**
   * A node is gone when its heartbeat is stale or, on this host, its process is dead. A row with
   * this process's pid is a store open here, or one a previous process left (a container
   * restarted with the same pid): the stores open here tell them apart.
   */
  #gone(node: NodeRow, now: number, openHere: Set<string>): boolean {
    if (now - node.heartbeat_at > this.#config.staleAfterMs) return true;
    if (node.host !== this.#host) return false;
    return node.pid === process.pid ? !openHere.has(node.id) : !processAlive(node.pid);
  }

  close(): void {
    for (const timer of this.#timers) clearInterval(timer);
    try {
      // Gone from the file: a process starting after this one recovers what this one left at once.
      this.#s.deleteNode.run(this.#config.nodeId);
    } finally {
      this.#db.close();
    }
  }

  /** Deletes audit entries beyond the newest `maxEvents` and older than `retainMs`: range deletes on seq, no scan. */
  #retain(now: number): void {
    const s = this.#s;
    let upTo = this.#lastSeq - this.#config.audit.maxEvents;
    const cutoff = now - this.#config.audit.retainMs;
    const oldest = s.auditOldest.get() as { seq: number; ts: number } | undefined;
    if (oldest !== undefined && oldest.ts < cutoff) {
      // Timestamps grow with seq, so the expired entries are a prefix of the trail.
      const fresh = s.auditFirstFresh.get(cutoff) as { seq: number } | undefined;
      upTo = Math.max(upTo, fresh === undefined ? this.#lastSeq : fresh.seq - 1);
    }
    if (upTo > this.#auditFloor) {
      s.auditDeleteUpTo.run(upTo);
      this.#auditFloor = upTo;
    }
  }

  #pruneFinished(): void {
    this.#s.pruneFinished.run(Date.now() - this.#config.retainFinishedMs);
  }
}

function prepare(db: Database) {
  return {
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
    auditFirst: db.prepare('SELECT min(seq) AS seq FROM audit'),
    auditDeleteUpTo: db.prepare('DELETE FROM audit WHERE seq <= ?'),
    auditSeq: db.prepare("SELECT value FROM meta WHERE key = 'audit_seq'"),
    saveAuditSeq: db.prepare("UPDATE meta SET value = ? WHERE key = 'audit_seq'"),
  };
}

function migrate(db: Database): void {
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
    const version = row?.version ?? 0;
    if (version > SCHEMA_VERSION) {
      throw new WriterError(`has schema version ${version}, written by a newer version of this library (this one reads up to ${SCHEMA_VERSION})`, 'NEWER_SCHEMA');
    }
    for (let v = version; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    if (row === undefined) db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(SCHEMA_VERSION);
    else if (version !== SCHEMA_VERSION) db.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION);
    // BEGIN IMMEDIATE takes the write lock: a database another connection holds locked fails here.
  }).immediate();
}

async function open(config: OpenConfig): Promise<Writer> {
  let Database: typeof BetterSqlite3;
  try {
    Database = (await import('better-sqlite3')).default;
  } catch (error) {
    throw new WriterError(`needs the optional dependency better-sqlite3 (npm install better-sqlite3): ${failureOf(error).message}`, 'MISSING_DEPENDENCY');
  }
  let db: Database | null = null;
  try {
    db = new Database(config.path, { timeout: config.busyTimeoutMs });
    // Each step reads the file, so corrupt or locked files fail here rather than at a later commit.
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${config.synchronous}`);
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new WriterError(`is corrupt (quick_check: ${String(check)})`, 'QUICK_CHECK');
    migrate(db);
    return new Writer(db, config);
  } catch (error) {
    db?.close();
    throw error;
  }
}

const port = parentPort!;
let writer: Writer | null = null;
const reply = (message: Reply) => port.postMessage(message);

port.on('message', (request: Request) => {
  if (request.t === 'open') {
    open(request.config).then(
      (opened) => {
        writer = opened;
        reply({ t: 'done', id: request.id, value: null });
        opened.startTimers((failure) => reply({ t: 'error', failure }));
      },
      (error: unknown) => reply({ t: 'failed', id: request.id, failure: failureOf(error) }),
    );
    return;
  }
  try {
    switch (request.t) {
      case 'commit':
        if (writer!.commit(request.batch, request.retry)) reply({ t: 'done', id: request.id, value: null });
        else reply({ t: 'refused', id: request.id });
        return;
      case 'read':
        reply({ t: 'done', id: request.id, value: writer!.read(request.read) });
        return;
      case 'close':
        writer?.close();
        writer = null;
        reply({ t: 'done', id: request.id, value: null });
        port.close();
        return;
    }
  } catch (error) {
    reply({ t: 'failed', id: request.id, failure: failureOf(error) });
  }
});
