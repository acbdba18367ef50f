// What only the SQLite store promises: its file (read by other connections, corrupt, locked, from
// a newer or older schema), its nodes table, and values JSON cannot encode.
import { closeSync, mkdtempSync, openSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreError, TaskStatus } from '../dist/index.js';
import { createStore, MemoryStore, SqliteStore, type SqliteStoreOptions, type Store } from '../dist/persistence/index.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../dist/persistence/sqlite-schema.js';
import { append, event, FakeTask, KEEP_ALL } from './store-spec.js';
import { deferred } from './helpers.js';

let dir = '';
const opened: Store[] = [];
const file = (): string => join(dir, 'store.db');
let nodes = 0;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'store-sqlite-'));
  nodes = 0;
});
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

function sqliteStore(options: Partial<SqliteStoreOptions> = {}): SqliteStore {
  const store = new SqliteStore({ path: file(), audit: KEEP_ALL, nodeId: `node-${++nodes}`, ...options });
  opened.push(store);
  return store;
}

async function open(options: Partial<SqliteStoreOptions> = {}): Promise<SqliteStore> {
  const store = sqliteStore(options);
  await store.open();
  return store;
}

async function openError(options: Partial<SqliteStoreOptions> = {}): Promise<StoreError> {
  const error = await open(options).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StoreError);
  expect((error as StoreError).code).toBe('STORE_ERROR');
  expect((error as StoreError).message).toContain(file());
  return error as StoreError;
}

/** A connection of the test's own, as another process would have. */
function raw<T>(use: (db: Database.Database) => T, readonly = false): T {
  const db = new Database(file(), { readonly });
  try {
    return use(db);
  } finally {
    db.close();
  }
}

describe('SqliteStore: commits', () => {
  it('resolves saveCheckpoint once its batch is committed, visible to another connection', async () => {
    const store = await open({ flushIntervalMs: 5 });
    store.saveTask(new FakeTask('t1'));
    // No flush(): the batch's own timer commits it.
    await store.saveCheckpoint('t1', { step: 4 });
    raw((db) => {
      expect(db.prepare('SELECT state FROM checkpoints WHERE task_id = ?').get('t1')).toEqual({ state: '{"step":4}' });
      expect(db.prepare('SELECT status, owner FROM tasks WHERE id = ?').get('t1')).toEqual({ status: 'queued', owner: 'node-1' });
    }, true);
  });

  it('rejects saveCheckpoint at once for a state JSON cannot encode', async () => {
    const store = await open();
    await expect(store.saveCheckpoint('t1', { n: 1n })).rejects.toThrow(/checkpoint of task t1 is not JSON-serializable/);
    await store.flush();
    expect(raw((db) => db.prepare('SELECT count(*) AS n FROM checkpoints').get(), true)).toEqual({ n: 0 });
  });

  it('skips a task row JSON cannot encode, writes the rest, and reports it at the next flush', async () => {
    const store = await open();
    store.saveTask(new FakeTask('bad', { n: 1n }));
    store.saveTask(new FakeTask('good'));
    append(store, event('submitted', 'good'));
    await expect(store.flush()).rejects.toThrow(/task bad: .*BigInt/);
    await expect(store.flush()).resolves.toBeUndefined();
    expect((await store.listTasks({})).map((t) => t.id)).toEqual(['good']);
    expect(await store.history('good')).toHaveLength(1);
  });

  it('keeps the writes of a commit that failed and sends them again, in order, before later ones', async () => {
    const errors: StoreError[] = [];
    const store = await open({ busyTimeoutMs: 20, onCommitError: (error) => errors.push(error) });
    const task = new FakeTask('t1');
    store.saveTask(task);
    append(store, event('submitted', 't1'));
    await store.flush();
    const lock = new Database(file());
    try {
      lock.exec('BEGIN EXCLUSIVE');
      task.status = TaskStatus.RUNNING;
      store.saveTask(task);
      append(store, event('started', 't1'));
      const checkpoint = store.saveCheckpoint('t1', { step: 1 });
      await expect(store.flush()).rejects.toThrow(/commit failed: .*locked/);
      await expect(checkpoint).rejects.toThrow(/commit failed/);
      expect(errors.length).toBeGreaterThan(0);
      // Later writes queue behind the failed ones; a flush tries them all again at once.
      task.status = TaskStatus.COMPLETED;
      store.saveTask(task);
      append(store, event('completed', 't1'));
      await expect(store.flush()).rejects.toThrow(/commit failed/);
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    // The next flush commits them (reporting, if any, a retry that failed meanwhile).
    await store.flush().catch(() => {});
    await expect(store.flush()).resolves.toBeUndefined();
    expect(await store.findTask('t1')).toMatchObject({ status: 'completed' });
    expect((await store.history('t1')).map((e) => e.type)).toEqual(['submitted', 'started', 'completed']);
    expect((await store.claimUnfinished()).tasks).toEqual([]);
    expect(raw((db) => db.prepare('SELECT state FROM checkpoints').all(), true)).toEqual([{ state: '{"step":1}' }]);
  });

  it('retries a failed commit on its own, and answers reads meanwhile from what is committed', async () => {
    const failed = deferred<StoreError>();
    const store = await open({ busyTimeoutMs: 20, flushIntervalMs: 1, onCommitError: (error) => failed.resolve(error) });
    const lock = new Database(file());
    lock.exec('BEGIN EXCLUSIVE');
    store.saveTask(new FakeTask('t1'));
    append(store, event('submitted', 't1'));
    expect((await failed.promise).message).toMatch(/commit failed/);
    // A read does not wait for the retry (WAL: the lock holder's writes are not visible anyway).
    lock.exec('ROLLBACK');
    lock.exec('BEGIN IMMEDIATE');
    expect(await store.findTask('t1')).toBeUndefined();
    lock.exec('ROLLBACK');
    lock.close();
    // No flush(): the retry timer commits. Nothing outside the store marks that commit, so read until it shows.
    while ((await store.history('t1')).length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await store.findTask('t1'))?.status).toBe('queued');
    await expect(store.flush()).rejects.toThrow(/commit failed/);
    await expect(store.flush()).resolves.toBeUndefined();
  });

  it('reports a failed periodic prune of finished rows through onCommitError, naming what failed', async () => {
    const failed = deferred<StoreError>();
    const store = await open({ retainFinishedMs: 1, pruneEveryMs: 5, onCommitError: (error) => failed.resolve(error) });
    raw((db) => db.exec("CREATE TRIGGER refuse_prune BEFORE DELETE ON tasks BEGIN SELECT RAISE(ABORT, 'pruning refused'); END"));
    const task = new FakeTask('done');
    task.status = TaskStatus.COMPLETED;
    task.updatedAt = Date.now() - 1_000;
    store.saveTask(task);
    await store.flush();
    const error = await failed.promise;
    expect(error).toBeInstanceOf(StoreError);
    expect(error.message).toMatch(/pruning finished tasks failed: pruning refused/);
    expect(await store.findTask('done')).toMatchObject({ status: 'completed' });
  });

  it('rejects reads before open, naming the file', async () => {
    const store = sqliteStore();
    store.saveTask(new FakeTask('early'));
    await expect(store.history('early')).rejects.toThrow(/not open yet/);
    await expect(store.claimUnfinished()).rejects.toThrow(StoreError);
    await expect(store.flush()).rejects.toThrow(/not open yet/);
  });
});

describe('SqliteStore: nodes', () => {
  it('marks itself alive in the nodes table while open, and leaves it at close', async () => {
    const store = await open();
    const row = raw((db) => db.prepare('SELECT host, pid FROM nodes WHERE id = ?').get('node-1'), true);
    expect(row).toEqual({ host: hostname(), pid: process.pid });
    await store.close();
    expect(raw((db) => db.prepare('SELECT count(*) AS n FROM nodes').get(), true)).toEqual({ n: 0 });
  });

  it("takes the rows of a previous process that had this process's pid (a restarted container)", async () => {
    const first = await open();
    first.saveTask(new FakeTask('t1'));
    await first.close();
    // The previous process died without leaving the table, and its pid is this one's.
    raw((db) => {
      db.prepare('INSERT INTO nodes (id, host, pid, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)').run('ghost', hostname(), process.pid, Date.now(), Date.now());
      db.prepare('UPDATE tasks SET owner = ?').run('ghost');
    });
    const second = await open();
    expect((await second.claimUnfinished()).tasks.map((t) => t.row.id)).toEqual(['t1']);
  });

  it('takes the rows of a dead process on this host at once, and leaves those of a live one on another host until stale', async () => {
    const first = await open();
    for (const id of ['dead', 'remote']) first.saveTask(new FakeTask(id));
    await first.close();
    raw((db) => {
      const insert = db.prepare('INSERT INTO nodes (id, host, pid, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)');
      // Pids are below 2^22 on Linux: this one is no process.
      insert.run('dead-node', hostname(), 2 ** 30, Date.now(), Date.now());
      insert.run('remote-node', 'another-host', process.pid, Date.now(), Date.now());
      db.prepare('UPDATE tasks SET owner = ? WHERE id = ?').run('dead-node', 'dead');
      db.prepare('UPDATE tasks SET owner = ? WHERE id = ?').run('remote-node', 'remote');
    });
    const second = await open();
    expect((await second.claimUnfinished()).tasks.map((t) => t.row.id)).toEqual(['dead']);
    raw((db) => db.prepare('UPDATE nodes SET heartbeat_at = ? WHERE id = ?').run(Date.now() - 61_000, 'remote-node'));
    expect((await second.claimUnfinished()).tasks.map((t) => t.row.id)).toEqual(['remote']);
    expect(raw((db) => db.prepare('SELECT id FROM nodes').all(), true)).toEqual([{ id: 'node-2' }]);
  });
});

describe('SqliteStore: the file', () => {
  it('throws StoreError at open for a file of random bytes', async () => {
    writeFileSync(file(), randomBytes(64 * 1024));
    const error = await openError();
    expect(error.message).toMatch(/corrupt|not a database/);
  });

  async function bigFile(): Promise<void> {
    const store = await open();
    for (let i = 0; i < 3000; i++) append(store, event('submitted', `t${i}`, { details: { pad: 'x'.repeat(100) } }));
    for (let i = 0; i < 300; i++) store.saveTask(new FakeTask(`t${i}`, { pad: 'y'.repeat(200) }));
    await store.close();
  }

  it('throws StoreError at open for a truncated database', async () => {
    await bigFile();
    truncateSync(file(), Math.floor(statSync(file()).size / 2));
    const error = await openError();
    expect(error.message).toMatch(/corrupt|malformed/);
  });

  it('throws StoreError at open for a database with a page overwritten in the middle', async () => {
    await bigFile();
    // Pages open() reads anyway (schema, first and last rows) stay intact: only the integrity check sees this.
    const fd = openSync(file(), 'r+');
    try {
      writeSync(fd, randomBytes(4096), 0, 4096, Math.floor(statSync(file()).size / 8192) * 4096);
    } finally {
      closeSync(fd);
    }
    const error = await openError();
    expect(error.message).toMatch(/corrupt|malformed/);
  });

  it('throws StoreError at open while another connection holds the database locked', async () => {
    await (await open()).close();
    const db = new Database(file());
    try {
      db.exec('BEGIN EXCLUSIVE');
      const error = await openError({ busyTimeoutMs: 50 });
      expect(error.message).toMatch(/locked/);
      db.exec('ROLLBACK');
      await expect(open()).resolves.toBeInstanceOf(SqliteStore);
    } finally {
      db.close();
    }
  });

  it('throws StoreError at open for a schema from a newer version, leaving it untouched', async () => {
    await (await open()).close();
    raw((db) => {
      expect(db.prepare('SELECT version FROM schema_version').all()).toEqual([{ version: SCHEMA_VERSION }]);
      db.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION + 1);
    });
    const error = await openError();
    expect(error.message).toMatch(new RegExp(`schema version ${SCHEMA_VERSION + 1}`));
    expect(raw((db) => db.prepare('SELECT version FROM schema_version').get(), true)).toEqual({ version: SCHEMA_VERSION + 1 });
  });

  it('migrates a file of schema 1: its rows, owned by nobody, are recovered', async () => {
    raw((db) => {
      db.exec(MIGRATIONS[0]!);
      db.exec('CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1)');
      db.prepare(
        `INSERT INTO tasks (id, type, priority, capabilities, payload, metadata, options, status, attempt, agent_id, submitted_at, updated_at)
         VALUES ('old', 'work', 2, '["a"]', '{"n":1}', '{}', '{}', 'running', 1, 'agent-1', 1, 2)`,
      ).run();
      db.prepare(`INSERT INTO audit (seq, ts, type, task_id, agent_id, attempt, details) VALUES (1, ?, 'submitted', 'old', NULL, 0, NULL)`).run(Date.now());
      db.prepare(`UPDATE meta SET value = 1 WHERE key = 'audit_seq'`).run();
    });
    const store = await open();
    expect(raw((db) => db.prepare('SELECT version FROM schema_version').get(), true)).toEqual({ version: SCHEMA_VERSION });
    const { tasks } = await store.claimUnfinished();
    expect(tasks.map((t) => [t.row.id, t.row.status, t.row.payload, t.row.owner])).toEqual([['old', 'running', { n: 1 }, 'node-1']]);
    expect((await store.history('old')).map((e) => [e.seq, e.type])).toEqual([[1, 'submitted']]);
    append(store, event('started', 'old'));
    expect((await store.audit({})).map((e) => [e.seq, e.type])).toEqual([
      [1, 'submitted'],
      [2, 'started'],
    ]);
  });

  it('keeps the trail in chunks, readable one row per entry through the audit view', async () => {
    const store = await open({ audit: { retainMs: 3_600_000, maxEvents: 4 } });
    append(store, event('submitted', 't1'));
    append(store, event('started', 't1', { agentId: 'agent-1' }));
    append(store, event('circuit', null, { agentId: 'agent-1', attempt: null, details: { from: 'closed', to: 'open' } }));
    await store.flush();
    for (const id of ['t2', 't3']) append(store, event('submitted', id));
    await store.flush();
    expect(raw((db) => db.prepare('SELECT seq, count, tasks FROM audit_chunks ORDER BY seq').all(), true)).toEqual([
      { seq: 1, count: 3, tasks: '["t1"]' },
      { seq: 4, count: 2, tasks: '["t2","t3"]' },
    ]);
    expect(raw((db) => db.prepare('SELECT task_id, seq FROM audit_index ORDER BY seq, task_id').all(), true)).toEqual([
      { task_id: 't1', seq: 1 },
      { task_id: 't2', seq: 4 },
      { task_id: 't3', seq: 4 },
    ]);
    // maxEvents 4: seq 1 is below the floor; its chunk stays until all of it is.
    expect(raw((db) => db.prepare('SELECT seq, type, task_id, agent_id, attempt, details FROM audit ORDER BY seq').all(), true)).toEqual([
      { seq: 2, type: 'started', task_id: 't1', agent_id: 'agent-1', attempt: 1, details: null },
      { seq: 3, type: 'circuit', task_id: null, agent_id: 'agent-1', attempt: null, details: '{"from":"closed","to":"open"}' },
      { seq: 4, type: 'submitted', task_id: 't2', agent_id: null, attempt: 1, details: null },
      { seq: 5, type: 'submitted', task_id: 't3', agent_id: null, attempt: 1, details: null },
    ]);
    expect((await store.audit({})).map((e) => e.seq)).toEqual([2, 3, 4, 5]);
    append(store, event('completed', 't1'));
    append(store, event('submitted', 't4'));
    await store.flush();
    // Seq 3 went below the floor: the whole first chunk is, and it is gone, with its index rows.
    expect(raw((db) => db.prepare('SELECT seq FROM audit_chunks ORDER BY seq').all(), true)).toEqual([{ seq: 4 }, { seq: 6 }]);
    expect(raw((db) => db.prepare("SELECT seq FROM audit_index WHERE task_id = 't1'").all(), true)).toEqual([{ seq: 6 }]);
    expect((await store.history('t1')).map((e) => [e.seq, e.type])).toEqual([[6, 'completed']]);
  });

  it('skips and reports a chunk of the trail that cannot be read', async () => {
    const errors: StoreError[] = [];
    const store = await open({ onCommitError: (error) => errors.push(error) });
    append(store, event('submitted', 't1'));
    await store.flush();
    append(store, event('started', 't1'));
    await store.flush();
    raw((db) => db.prepare('UPDATE audit_chunks SET entries = ? WHERE seq = 1').run('[1, "cut'));
    expect((await store.history('t1')).map((e) => e.type)).toEqual(['started']);
    expect((await store.audit({})).map((e) => e.type)).toEqual(['started']);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/audit entries from seq 1 cannot be read back/), expect.stringMatching(/seq 1/)]);
    expect(errors[0]!.message).toContain(file());
  });

  it('numbers the entries of two stores writing to one file from one counter', async () => {
    const first = await open();
    const second = await open();
    for (let i = 0; i < 3; i++) {
      append(first, event('submitted', `a${i}`));
      await first.flush();
      append(second, event('submitted', `b${i}`));
      await second.flush();
    }
    expect((await first.audit({})).map((e) => `${e.seq}:${e.taskId}`)).toEqual(['1:a0', '2:b0', '3:a1', '4:b1', '5:a2', '6:b2']);
  });

  it('throws StoreError at open when the file cannot be created', async () => {
    const path = join(dir, 'missing', 'store.db');
    const error = await new SqliteStore({ path, audit: KEEP_ALL, nodeId: 'n' }).open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).message).toContain(path);
  });

  it('is what createStore builds for each store type', async () => {
    const context = { nodeId: 'n', idOfSeq: String, onError: () => {} };
    expect(createStore({ type: 'memory' }, KEEP_ALL, context)).toBeInstanceOf(MemoryStore);
    const store = createStore({ type: 'sqlite', path: file(), synchronous: 'full', flushIntervalMs: 1 }, KEEP_ALL, context);
    opened.push(store);
    expect(store).toBeInstanceOf(SqliteStore);
    expect(store.kind).toBe('sqlite');
    await store.open();
    store.saveTask(Object.assign(new FakeTask('t1'), { status: TaskStatus.COMPLETED }));
    append(store, event('completed', 't1'));
    await store.close();
    expect((await (await open()).audit({})).map((e) => e.taskId)).toEqual(['t1']);
  });
});
