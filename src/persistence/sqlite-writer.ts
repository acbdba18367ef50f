/**
 * The SQLite store's writer thread: owns the connection and executes, one message at a time,
 * the batches and reads the store posts (see sqlite-protocol.ts). Statement execution is most
 * of a durable task's cost, so it runs here, beside the engine rather than on its thread.
 * Also keeps this process's node alive in the file (heartbeat) and prunes finished rows.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { hostname } from 'node:os';
import { parentPort } from 'node:worker_threads';
import {
  AUDIT_FIELDS,
  CHUNK_FIELDS,
  DELETED_CHECKPOINT,
  TASK_COLUMNS,
  UPDATE_COLUMNS,
  type Batch,
  type OpenConfig,
  type Read,
  type Reply,
  type Request,
  type ThreadFailure,
  type TrailRead,
} from './sqlite-protocol.js';
import { AUDIT_TYPES, FINISHED_STATUSES, MIGRATIONS, SCHEMA_VERSION, UNFINISHED_STATUSES } from './sqlite-schema.js';
import type { AuditEvent, AuditEventType } from './store.js';

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

/** Every type bit: a read of the whole trail. */
const ALL_TYPES = 2 ** 31 - 1;
const INDEX_ROWS_PER_STATEMENT = 128;

interface NodeRow {
  id: string;
  host: string;
  pid: number;
  heartbeat_at: number;
}

/** Statements that write several rows at once (one per row count, prepared when first needed). */
class MultiRow {
  readonly #statements = new Map<number, Statement>();

  constructor(
    private readonly db: Database,
    private readonly sql: (rows: number) => string,
    private readonly width: number,
  ) {}

  /** Writes the rows of `values` (`width` values each) with one statement. */
  run(values: unknown[]): void {
    const rows = values.length / this.width;
    let statement = this.#statements.get(rows);
    if (statement === undefined) {
      statement = this.db.prepare(this.sql(rows));
      this.#statements.set(rows, statement);
    }
    statement.run(values);
  }
}

function placeholders(width: number, rows: number): string {
  const row = `(${new Array<string>(width).fill('?').join(', ')})`;
  return new Array<string>(rows).fill(row).join(', ');
}

function taskUpsertSql(rows: number): string {
  // submitted_at keeps its first value: a task submitted again (a dead letter requeued) keeps its row.
  const updates = TASK_COLUMNS.filter((c) => c !== 'id' && c !== 'submitted_at').map((c) => `${c} = excluded.${c}`);
  return `INSERT INTO tasks (${TASK_COLUMNS.join(', ')}) VALUES ${placeholders(TASK_COLUMNS.length, rows)}
    ON CONFLICT (id) DO UPDATE SET ${updates.join(', ')}`;
}

function taskUpdateSql(rows: number): string {
  // A plain update finds the row by its key once; an upsert probes it, fails to insert, then updates.
  const sets = UPDATE_COLUMNS.map((c, i) => `${c} = v.column${i + 2}`);
  return `UPDATE tasks SET ${sets.join(', ')} FROM (VALUES ${placeholders(UPDATE_COLUMNS.length + 1, rows)}) AS v WHERE tasks.id = v.column1`;
}

function indexInsertSql(rows: number): string {
  return `INSERT OR IGNORE INTO audit_index (task_id, seq) VALUES ${placeholders(2, rows)}`;
}

/** A stored chunk: its first entry's seq and timestamp, and its entries as JSON. */
interface ChunkRow {
  seq: number;
  first_ts: number;
  entries: string;
}

/** The entries of a chunk (flat, AUDIT_FIELDS values each) that `keep` accepts, numbered from the chunk's seq and timed from its first_ts. */
function chunkEntries(chunk: ChunkRow, entries: unknown[], keep: (seq: number, ts: number, type: AuditEventType, taskId: string | null) => boolean, out: AuditEvent[]): void {
  let seq = chunk.seq;
  for (let i = 0; i < entries.length; i += AUDIT_FIELDS, seq++) {
    const ts = chunk.first_ts + (entries[i] as number);
    const type = entries[i + 1] as AuditEventType;
    const taskId = entries[i + 2] as string | null;
    if (!keep(seq, ts, type, taskId)) continue;
    const details = entries[i + 5] as Record<string, unknown> | null;
    out.push({ seq, timestamp: ts, type, taskId, agentId: entries[i + 3] as string | null, attempt: entries[i + 4] as number | null, details: details ?? null });
  }
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
  readonly #inserts: MultiRow;
  readonly #updates: MultiRow;
  readonly #index: MultiRow;
  readonly #s: ReturnType<typeof prepare>;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  readonly #report: (message: Reply) => void;
  /** Batches a failed commit left, with those posted since, oldest first: committed before any later one. */
  #backlog: Batch[] = [];
  #retryMs = 0;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(db: Database, config: OpenConfig, report: (message: Reply) => void) {
    this.#db = db;
    this.#config = config;
    this.#report = report;
    this.#s = prepare(db);
    this.#inserts = new MultiRow(db, taskUpsertSql, TASK_COLUMNS.length);
    this.#updates = new MultiRow(db, taskUpdateSql, UPDATE_COLUMNS.length + 1);
    this.#index = new MultiRow(db, indexInsertSql, 2);
    // Entries that expired while the file was closed.
    this.#retain(Date.now());
    this.#s.upsertNode.run(config.nodeId, this.#host, process.pid, Date.now(), Date.now());
    this.#pruneFinished();
  }

  /** Starts the heartbeat and the pruning (after open() replied, so their failures come after it). */
  startTimers(): void {
    const every = (ms: number, work: () => void, what: string) =>
      this.#timers.push(
        setInterval(() => {
          try {
            work();
          } catch (error) {
            this.#report({ t: 'error', failure: { ...failureOf(error), message: `${what} failed: ${failureOf(error).message}` }, commit: false });
          }
        }, ms),
      );
    every(this.#config.heartbeatMs, () => this.#s.heartbeat.run(Date.now(), this.#config.nodeId), 'heartbeat');
    every(this.#config.pruneEveryMs, () => this.#pruneFinished(), 'pruning finished tasks');
  }

  /**
   * Commits `batch` in one transaction, after what failed commits left. @throws when the
   * transaction fails: rolled back, its writes are kept and retried (with a growing delay, or
   * with the next batch), so nothing is lost or reordered while the store is open.
   */
  commit(batch: Batch): void {
    this.#backlog.push(batch);
    this.#attempt();
  }

  #attempt(): void {
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const batches = this.#backlog;
    try {
      this.#db
        .transaction(() => {
          const now = Date.now();
          for (const batch of batches) this.#write(batch, now);
          this.#retain(now);
        })
        .immediate();
    } catch (error) {
      this.#retryMs = Math.min(this.#config.retryMaxMs, this.#retryMs === 0 ? this.#config.retryFirstMs : this.#retryMs * 2);
      this.#retryTimer = setTimeout(() => this.#retry(), this.#retryMs);
      throw error;
    }
    this.#backlog = [];
    if (this.#retryMs === 0) return;
    this.#retryMs = 0;
    this.#report({ t: 'drained' });
  }

  #retry(): void {
    try {
      this.#attempt();
    } catch (error) {
      this.#report({ t: 'error', failure: { ...failureOf(error), message: `commit failed: ${failureOf(error).message}` }, commit: true });
    }
  }

  #write(batch: Batch, now: number): void {
    const s = this.#s;
    for (const rows of batch.tasks) this.#inserts.run(rows);
    for (const rows of batch.updates) this.#updates.run(rows);
    const checkpoints = batch.checkpoints;
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
    const chunks = batch.chunks;
    if (chunks.length === 0) return;
    // Seqs are given here, in commit order, which is append order. Read in the transaction:
    // another process on the file numbers its entries from the same counter.
    let seq = (s.auditSeq.get() as { value: number }).value;
    let rows: unknown[] = [];
    for (let i = 0; i < chunks.length; i += CHUNK_FIELDS) {
      // The tasks it holds: an index row each, and the list that retention deletes them by.
      const tasks = chunks[i + 4] as string[];
      s.insertChunk.run(seq + 1, chunks[i], chunks[i + 1], chunks[i + 2], chunks[i + 3], JSON.stringify(tasks), chunks[i + 5]);
      for (const taskId of tasks) {
        rows.push(taskId, seq + 1);
        if (rows.length === 2 * INDEX_ROWS_PER_STATEMENT) {
          this.#index.run(rows);
          rows = [];
        }
      }
      seq += chunks[i] as number;
    }
    if (rows.length > 0) this.#index.run(rows);
    s.saveAuditSeq.run(seq);
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
      case 'history':
        return this.#history(read.taskId);
      case 'audit':
        return this.#trail(read.since, read.limit, read.type);
      case 'claim':
        return this.#claim(new Set(read.openHere));
    }
  }

  /** A task's entries: the chunks holding any, found by the task index. */
  #history(taskId: string): TrailRead {
    const { floor, cutoff } = this.#readWindow();
    const out: TrailRead = { events: [], unreadable: [] };
    for (const chunk of this.#s.history.iterate(taskId) as Iterable<ChunkRow>) {
      this.#decode(chunk, out, (seq, ts, _type, id) => id === taskId && seq > floor && ts >= cutoff);
    }
    return out;
  }

  /** Entries after `since`, of one type if given, up to `limit`: chunks from the one holding `since + 1` on. */
  #trail(since: number, limit: number, type: AuditEventType | null): TrailRead {
    const { floor, cutoff } = this.#readWindow();
    const out: TrailRead = { events: [], unreadable: [] };
    const from = (this.#s.chunkAt.get(since + 1) as { seq: number | null }).seq ?? 0;
    const mask = type === null ? ALL_TYPES : 2 ** AUDIT_TYPES.indexOf(type);
    for (const chunk of this.#s.chunksFrom.iterate(from, mask) as Iterable<ChunkRow>) {
      // The ts filter catches the few entries retention leaves when a clock stepped back.
      this.#decode(chunk, out, (seq, ts, t) => seq > since && seq > floor && ts >= cutoff && (type === null || t === type));
      if (out.events.length >= limit) break;
    }
    out.events.length = Math.min(out.events.length, limit);
    return out;
  }

  /** Applies retention as of now; returns what reads must still skip (entries of chunks it keeps). */
  #readWindow(): { floor: number; cutoff: number } {
    const now = Date.now();
    this.#retain(now);
    return { floor: (this.#s.auditFloor.get() as { value: number }).value, cutoff: now - this.#config.audit.retainMs };
  }

  #decode(chunk: ChunkRow, out: TrailRead, keep: Parameters<typeof chunkEntries>[2]): void {
    let entries: unknown[];
    try {
      entries = JSON.parse(chunk.entries) as unknown[];
    } catch (error) {
      out.unreadable.push(`audit entries from seq ${chunk.seq} cannot be read back: ${failureOf(error).message}`);
      return;
    }
    chunkEntries(chunk, entries, keep, out.events);
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

  /** Closes the file, after a last attempt at what failed commits left. @throws when that attempt fails (those writes are lost) */
  close(): void {
    for (const timer of this.#timers) clearInterval(timer);
    let lost: unknown = null;
    if (this.#backlog.length > 0) {
      try {
        this.#attempt();
      } catch (error) {
        lost = error;
      }
      if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    }
    try {
      // Gone from the file: a process starting after this one recovers what this one left at once.
      this.#s.deleteNode.run(this.#config.nodeId);
    } finally {
      this.#db.close();
    }
    if (lost !== null) throw new Error(`commit failed: ${failureOf(lost).message}; the writes it held are lost`);
  }

  /**
   * Removes entries beyond the newest `maxEvents` and older than `retainMs`: the chunks wholly
   * below the new floor, with their index rows (a prefix of the trail: timestamps grow with seq).
   * Entries of a chunk that straddles the floor stay until the chunk goes; reads skip them.
   */
  #retain(now: number): void {
    const s = this.#s;
    const lastSeq = (s.auditSeq.get() as { value: number }).value;
    const floor = (s.auditFloor.get() as { value: number }).value;
    let upTo = lastSeq - this.#config.audit.maxEvents;
    const cutoff = now - this.#config.audit.retainMs;
    const oldest = s.oldestChunk.get() as { first_ts: number } | undefined;
    if (oldest !== undefined && oldest.first_ts < cutoff) {
      const fresh = s.firstFreshChunk.get(cutoff) as { seq: number } | undefined;
      upTo = Math.max(upTo, fresh === undefined ? lastSeq : fresh.seq - 1);
    }
    if (upTo <= floor) return;
    for (const chunk of s.expiredChunks.all({ upTo }) as { seq: number; tasks: string }[]) {
      for (const taskId of JSON.parse(chunk.tasks) as string[]) s.deleteIndex.run(taskId, chunk.seq);
      s.deleteChunk.run(chunk.seq);
    }
    s.saveAuditFloor.run(upTo);
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
    insertChunk: db.prepare('INSERT INTO audit_chunks (seq, count, first_ts, last_ts, types, tasks, entries) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    history: db.prepare('SELECT c.seq, c.first_ts, c.entries FROM audit_index i JOIN audit_chunks c ON c.seq = i.seq WHERE i.task_id = ? ORDER BY i.seq'),
    // The chunk holding a seq: the last one starting at or before it.
    chunkAt: db.prepare('SELECT max(seq) AS seq FROM audit_chunks WHERE seq <= ?'),
    chunksFrom: db.prepare('SELECT seq, first_ts, entries FROM audit_chunks WHERE seq >= ? AND (types & ?) != 0 ORDER BY seq'),
    oldestChunk: db.prepare('SELECT first_ts FROM audit_chunks ORDER BY seq LIMIT 1'),
    firstFreshChunk: db.prepare('SELECT seq FROM audit_chunks WHERE last_ts >= ? ORDER BY seq LIMIT 1'),
    expiredChunks: db.prepare('SELECT seq, tasks FROM audit_chunks WHERE seq <= @upTo AND seq + count - 1 <= @upTo'),
    deleteChunk: db.prepare('DELETE FROM audit_chunks WHERE seq = ?'),
    deleteIndex: db.prepare('DELETE FROM audit_index WHERE task_id = ? AND seq = ?'),
    auditSeq: db.prepare("SELECT value FROM meta WHERE key = 'audit_seq'"),
    saveAuditSeq: db.prepare("UPDATE meta SET value = ? WHERE key = 'audit_seq'"),
    auditFloor: db.prepare("SELECT value FROM meta WHERE key = 'audit_floor'"),
    saveAuditFloor: db.prepare("UPDATE meta SET value = ? WHERE key = 'audit_floor'"),
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

async function open(config: OpenConfig, report: (message: Reply) => void): Promise<Writer> {
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
    return new Writer(db, config, report);
  } catch (error) {
    db?.close();
    throw error;
  }
}

const port = parentPort!;
let writer: Writer | null = null;
let answered: Int32Array | null = null;
const reply = (message: Reply) => port.postMessage(message);

port.on('message', (request: Request) => {
  if (request.t === 'open') {
    answered = request.config.answered;
    open(request.config, reply).then(
      (opened) => {
        writer = opened;
        reply({ t: 'done', id: request.id, value: null });
        opened.startTimers();
      },
      (error: unknown) => reply({ t: 'failed', id: request.id, failure: failureOf(error) }),
    );
    return;
  }
  try {
    switch (request.t) {
      case 'commit':
        try {
          writer!.commit(request.batch);
          reply({ t: 'done', id: request.id, value: null });
        } catch (error) {
          reply({ t: 'failed', id: request.id, failure: { ...failureOf(error), message: `commit failed: ${failureOf(error).message}` } });
        } finally {
          Atomics.add(answered!, 0, 1);
        }
        return;
      case 'read':
        reply({ t: 'done', id: request.id, value: writer!.read(request.read) });
        return;
      case 'close': {
        const closing = writer;
        writer = null;
        closing?.close();
        reply({ t: 'done', id: request.id, value: null });
        return;
      }
    }
  } catch (error) {
    reply({ t: 'failed', id: request.id, failure: failureOf(error) });
  }
});
