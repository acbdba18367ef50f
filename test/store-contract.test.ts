// One behavioural suite run against every store (memory, SQLite), then what only SQLite promises.
import { closeSync, mkdtempSync, openSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreError } from '../src/errors.js';
import { TaskStatus } from '../src/enums.js';
import { createStore, MemoryStore, SqliteStore } from '../src/persistence/index.js';
import { SCHEMA_VERSION } from '../src/persistence/sqlite-schema.js';
import type { AuditRetention, DeadLetterRow, NewAuditEvent, PersistableTask, Store, TaskRow } from '../src/persistence/store.js';

const KEEP_ALL: AuditRetention = { retainMs: 3_600_000, maxEvents: 100_000 };

interface StoreInitializer {
  name: string;
  /** Task rows survive a close and reopen. */
  durable: boolean;
  beforeEach(): void;
  afterEach(): void;
  /** A new, opened store over this test's data (a SQLite store reuses the test's file). */
  create(audit?: AuditRetention): Promise<Store>;
}

let dir = '';
const opened: Store[] = [];

async function track(store: Store): Promise<Store> {
  opened.push(store);
  await store.open();
  return store;
}

const initializers: StoreInitializer[] = [
  {
    name: 'memory',
    durable: false,
    beforeEach() {},
    afterEach() {},
    create: (audit = KEEP_ALL) => track(new MemoryStore(audit)),
  },
  {
    name: 'sqlite',
    durable: true,
    beforeEach() {
      dir = mkdtempSync(join(tmpdir(), 'store-contract-'));
    },
    afterEach() {
      rmSync(dir, { recursive: true, force: true });
    },
    create: (audit = KEEP_ALL) => track(new SqliteStore({ path: join(dir, 'store.db'), audit })),
  },
];

/** A task whose row changes as a real task's would; counts how often the store asks for its row. */
class FakeTask implements PersistableTask {
  rows = 0;
  status: TaskRow['status'] = TaskStatus.QUEUED;
  attempt = 0;
  constructor(readonly id: string, readonly payload: unknown = { n: 1 }) {}

  toRow(): TaskRow {
    this.rows++;
    return {
      id: this.id,
      type: 'work',
      priority: 2,
      capabilities: ['a', 'b'],
      payload: this.payload,
      metadata: { owner: 'test' },
      options: { timeout: 5000 },
      status: this.status,
      attempt: this.attempt,
      agentId: this.status === TaskStatus.QUEUED ? null : 'agent-1',
      submittedAt: 1000,
      updatedAt: 2000,
      ...(this.status === TaskStatus.COMPLETED ? { result: { ok: true } } : {}),
      error: this.status === TaskStatus.FAILED ? { name: 'Error', message: 'boom', stack: undefined, props: { code: 'TASK_FAILED' } } : null,
    };
  }
}

function event(type: NewAuditEvent['type'], taskId: string | null, extra: Partial<NewAuditEvent> = {}): NewAuditEvent {
  return { timestamp: Date.now(), type, task: taskId === null ? null : { id: taskId }, agentId: null, attempt: 1, details: null, ...extra };
}

/** Appends a whole event (the store takes its fields positionally). */
function append(store: Store, e: NewAuditEvent): void {
  store.appendAudit(e.type, e.timestamp, e.task, e.agentId, e.attempt, e.details);
}

function deadLetter(taskId: string, attempts = 3): DeadLetterRow {
  const task = new FakeTask(taskId);
  task.status = TaskStatus.FAILED;
  task.attempt = attempts;
  return {
    taskId,
    row: task.toRow(),
    error: { name: 'Error', message: `failed ${taskId}`, stack: 'Error: failed', props: { code: 'TASK_FAILED' } },
    code: 'TASK_FAILED',
    attempts,
    failedAt: 5000,
  };
}

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

describe.each(initializers)('store contract: $name', (init) => {
  beforeEach(() => init.beforeEach());
  afterEach(async () => {
    await Promise.allSettled(opened.splice(0).map((s) => s.close()));
    init.afterEach();
  });

  it('saves, loads, checks and deletes checkpoints, queued or committed', async () => {
    const store = await init.create();
    expect(store.hasCheckpoint('t1')).toBe(false);
    expect(store.loadCheckpoint('t1')).toBeUndefined();

    await store.saveCheckpoint('t1', { step: 1, items: ['x'] });
    expect(store.hasCheckpoint('t1')).toBe(true);
    expect(store.loadCheckpoint('t1')).toEqual({ step: 1, items: ['x'] });

    // Save, delete and save again in one batch: the last one wins.
    void store.saveCheckpoint('t2', { step: 1 });
    store.deleteCheckpoint('t2');
    expect(store.hasCheckpoint('t2')).toBe(false);
    await store.saveCheckpoint('t2', { step: 2 });
    expect(store.loadCheckpoint('t2')).toEqual({ step: 2 });

    await store.saveCheckpoint('t1', { step: 3 });
    store.deleteCheckpoint('t2');
    await store.flush();
    expect(store.loadCheckpoint('t1')).toEqual({ step: 3 });
    expect(store.hasCheckpoint('t2')).toBe(false);
    expect(store.loadCheckpoint('t2')).toBeUndefined();
  });

  it('asks a task for its row once per batch, however often it is saved', async () => {
    const store = await init.create();
    const task = new FakeTask('t1');
    store.saveTask(task);
    task.status = TaskStatus.RUNNING;
    task.attempt = 1;
    store.saveTask(task);
    store.saveTask(task);
    await store.flush();
    expect(task.rows).toBe(init.durable ? 1 : 0);
    if (init.durable) expect(store.unfinishedTasks()).toEqual([task.toRow()]);

    task.status = TaskStatus.COMPLETED;
    store.saveTask(task);
    store.saveTask(task);
    await store.flush();
    expect(task.rows).toBe(init.durable ? 3 : 0);
    expect(store.unfinishedTasks()).toEqual([]);
  });

  it('returns queued, running and retrying tasks as unfinished, after a reopen when durable', async () => {
    const store = await init.create();
    const tasks = Object.values(TaskStatus).map((status) => {
      const task = new FakeTask(`task-${status}`);
      task.status = status;
      store.saveTask(task);
      return task;
    });
    await store.close();

    const reopened = await init.create();
    const expected = init.durable
      ? tasks.filter((t) => ['queued', 'running', 'retrying'].includes(t.status)).map((t) => t.toRow())
      : [];
    expect(reopened.unfinishedTasks()).toEqual(expected);
    expect(reopened.pruneFinished(Number.MAX_SAFE_INTEGER)).toBe(init.durable ? 4 : 0);
    expect(reopened.pruneFinished(Number.MAX_SAFE_INTEGER)).toBe(0);
    expect(reopened.unfinishedTasks()).toEqual(expected);
  });

  it('keeps the audit trail in order, by task, and pages it by seq and type', async () => {
    const store = await init.create();
    const types = ['submitted', 'started', 'retried', 'started', 'completed'] as const;
    for (const type of types) {
      append(store, event(type, 'a', { agentId: 'agent-1', details: { type } }));
      append(store, event(type, 'b'));
    }
    append(store, event('circuit', null, { agentId: 'agent-1', attempt: null, details: { from: 'closed', to: 'open' } }));

    const history = store.history('a');
    expect(history.map((e) => e.type)).toEqual(types);
    expect(history.map((e) => e.details)).toEqual(types.map((type) => ({ type })));
    expect(history.every((e) => e.taskId === 'a' && e.agentId === 'agent-1' && e.attempt === 1)).toBe(true);

    const all = store.audit({ limit: 1000 });
    expect(all).toHaveLength(11);
    expect(all.map((e) => e.seq)).toEqual([...all.map((e) => e.seq)].sort((x, y) => x - y));
    expect(new Set(all.map((e) => e.seq)).size).toBe(11);
    expect(all[10]).toMatchObject({ type: 'circuit', taskId: null, attempt: null, details: { from: 'closed', to: 'open' } });
    expect(store.audit({})).toHaveLength(11);

    const pages: string[][] = [];
    for (let since = 0; ; ) {
      const page = store.audit({ since, limit: 4 });
      if (page.length === 0) break;
      pages.push(page.map((e) => `${e.type}:${e.taskId}`));
      since = page[page.length - 1]!.seq;
    }
    expect(pages.map((p) => p.length)).toEqual([4, 4, 3]);
    expect(pages.flat()).toEqual(all.map((e) => `${e.type}:${e.taskId}`));

    const started = store.audit({ type: 'started', limit: 3 });
    expect(started.map((e) => e.taskId)).toEqual(['a', 'b', 'a']);
    expect(store.audit({ type: 'started', since: started[2]!.seq }).map((e) => e.taskId)).toEqual(['b']);

    await store.flush();
    expect(store.audit({ limit: 1000 })).toEqual(all);
  });

  it('keeps only the newest maxEvents audit entries', async () => {
    const store = await init.create({ retainMs: 3_600_000, maxEvents: 5 });
    for (let i = 0; i < 8; i++) append(store, event('submitted', `t${i}`));
    await store.flush();
    for (let i = 8; i < 12; i++) append(store, event('submitted', `t${i}`));
    const kept = store.audit({ limit: 100 });
    expect(kept.map((e) => e.taskId)).toEqual(['t7', 't8', 't9', 't10', 't11']);
    expect(store.history('t3')).toEqual([]);
    expect(store.history('t11')).toHaveLength(1);
  });

  it('drops audit entries older than retainMs', async () => {
    const store = await init.create({ retainMs: 60_000, maxEvents: 100 });
    const now = Date.now();
    append(store, event('submitted', 'old', { timestamp: now - 120_000 }));
    expect(store.audit({})).toEqual([]);
    append(store, event('started', 'old', { timestamp: now - 90_000 }));
    append(store, event('submitted', 'fresh', { timestamp: now }));
    // Out of timestamp order (a clock step back): still not returned.
    append(store, event('completed', 'old', { timestamp: now - 90_000 }));
    expect(store.audit({}).map((e) => e.taskId)).toEqual(['fresh']);
    expect(store.audit({ type: 'completed' })).toEqual([]);
    expect(store.history('old')).toEqual([]);
    await store.flush();
    expect(store.audit({}).map((e) => e.taskId)).toEqual(['fresh']);
  });

  it('puts, lists, takes and replaces dead letters', async () => {
    const store = await init.create();
    for (const id of ['a', 'b', 'c']) store.putDeadLetter(deadLetter(id));
    expect(store.listDeadLetters().map((d) => d.taskId)).toEqual(['a', 'b', 'c']);
    expect(store.takeDeadLetter('b')).toEqual(deadLetter('b'));
    expect(store.takeDeadLetter('b')).toBeUndefined();
    await store.flush();
    expect(store.takeDeadLetter('b')).toBeUndefined();
    expect(store.listDeadLetters()).toEqual([deadLetter('a'), deadLetter('c')]);

    store.putDeadLetter(deadLetter('a', 7));
    expect(store.listDeadLetters().map((d) => [d.taskId, d.attempts])).toEqual([['a', 7], ['c', 3]]);
    expect(store.takeDeadLetter('c')).toEqual(deadLetter('c'));
    expect(store.takeDeadLetter('missing')).toBeUndefined();
    await store.flush();
    expect(store.listDeadLetters()).toEqual([deadLetter('a', 7)]);
  });

  it('closes idempotently, committing queued writes and leaving no timer', async () => {
    const before = timers();
    const store = await init.create();
    store.saveTask(new FakeTask('t1'));
    append(store, event('submitted', 't1'));
    const saved = store.saveCheckpoint('t1', { step: 1 });
    await store.close();
    await saved;
    await store.close();
    expect(timers()).toBe(before);

    const reopened = await init.create();
    expect(reopened.unfinishedTasks().map((t) => t.id)).toEqual(init.durable ? ['t1'] : []);
    expect(reopened.audit({}).map((e) => e.taskId)).toEqual(init.durable ? ['t1'] : []);
    expect(reopened.loadCheckpoint('t1')).toEqual(init.durable ? { step: 1 } : undefined);
  });
});

describe('MemoryStore', () => {
  it('keeps at most maxDeadLetters dead letters, dropping the oldest and counting them', () => {
    const store = new MemoryStore(KEEP_ALL, { maxDeadLetters: 3 });
    for (const id of ['a', 'b', 'c']) store.putDeadLetter(deadLetter(id));
    store.putDeadLetter(deadLetter('b', 9));
    expect(store.dropped).toBe(0);
    store.putDeadLetter(deadLetter('d'));
    store.putDeadLetter(deadLetter('e'));
    expect(store.listDeadLetters().map((d) => d.taskId)).toEqual(['c', 'd', 'e']);
    expect(store.dropped).toBe(2);
  });

  it('keeps its ring in seq order as it grows, wraps and expires', () => {
    const store = new MemoryStore({ retainMs: 3_600_000, maxEvents: 3000 });
    for (let i = 0; i < 5000; i++) append(store, event('submitted', `t${i}`, { attempt: i }));
    const all = store.audit({ limit: 10_000 });
    expect(all).toHaveLength(3000);
    expect(all[0]).toMatchObject({ seq: 2001, taskId: 't2000', attempt: 2000 });
    expect(all[2999]).toMatchObject({ seq: 5000, taskId: 't4999', attempt: 4999 });
    expect(store.audit({ since: 4997 }).map((e) => e.seq)).toEqual([4998, 4999, 5000]);

    const none = new MemoryStore({ retainMs: 3_600_000, maxEvents: 0 });
    append(none, event('submitted', 't'));
    expect(none.audit({})).toEqual([]);
  });
});

describe('SqliteStore', () => {
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'store-sqlite-'));
  });
  afterEach(async () => {
    await Promise.allSettled(opened.splice(0).map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  const file = () => join(dir, 'store.db');
  const open = (options: Partial<ConstructorParameters<typeof SqliteStore>[0]> = {}) =>
    track(new SqliteStore({ path: file(), audit: KEEP_ALL, ...options })) as Promise<SqliteStore>;

  async function openError(options: Partial<ConstructorParameters<typeof SqliteStore>[0]> = {}): Promise<StoreError> {
    const error = await open(options).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('STORE_ERROR');
    expect((error as StoreError).message).toContain(file());
    return error as StoreError;
  }

  it('resolves saveCheckpoint once the batch is committed, visible to another connection', async () => {
    const store = await open({ flushIntervalMs: 5 });
    store.saveTask(new FakeTask('t1'));
    // No flush(): the batch's own timer commits it.
    await store.saveCheckpoint('t1', { step: 4 });
    const raw = new Database(file(), { readonly: true });
    try {
      expect(raw.prepare('SELECT state FROM checkpoints WHERE task_id = ?').get('t1')).toEqual({ state: '{"step":4}' });
      expect(raw.prepare('SELECT status FROM tasks WHERE id = ?').get('t1')).toEqual({ status: 'queued' });
    } finally {
      raw.close();
    }
  });

  it('keeps tasks, checkpoints, the audit trail and dead letters across close and reopen', async () => {
    const first = await open();
    const task = new FakeTask('t1', { big: 'x'.repeat(1000), list: [1, 2, 3] });
    task.status = TaskStatus.RETRYING;
    task.attempt = 2;
    first.saveTask(task);
    void first.saveCheckpoint('t1', { step: 2 });
    append(first, event('submitted', 't1', { details: { priority: 2 } }));
    append(first, event('retried', 't1', { agentId: 'agent-1', attempt: 2 }));
    first.putDeadLetter(deadLetter('d1'));
    const trail = first.audit({});
    await first.close();

    const second = await open();
    expect(second.unfinishedTasks()).toEqual([task.toRow()]);
    expect(second.loadCheckpoint('t1')).toEqual({ step: 2 });
    expect(second.audit({})).toEqual(trail);
    expect(second.history('t1').map((e) => e.type)).toEqual(['submitted', 'retried']);
    expect(second.listDeadLetters()).toEqual([deadLetter('d1')]);
    // Seq keeps increasing after a reopen.
    append(second, event('started', 't1'));
    expect(second.audit({ since: trail[1]!.seq }).map((e) => e.type)).toEqual(['started']);
  });

  it('keeps the first submittedAt of a task through later upserts', async () => {
    const store = await open();
    const task = new FakeTask('t1');
    store.saveTask(task);
    await store.flush();
    task.toRow = () => ({ ...FakeTask.prototype.toRow.call(task), submittedAt: 9999, updatedAt: 9999, status: TaskStatus.RUNNING });
    store.saveTask(task);
    expect(store.unfinishedTasks()).toMatchObject([{ status: 'running', submittedAt: 1000, updatedAt: 9999 }]);
  });

  it('rejects saveCheckpoint at once for a state JSON cannot encode', async () => {
    const store = await open();
    await expect(store.saveCheckpoint('t1', { n: 1n })).rejects.toThrow(StoreError);
    await expect(store.saveCheckpoint('t1', { n: 1n })).rejects.toThrow(/checkpoint of task t1 is not JSON-serializable/);
    expect(store.hasCheckpoint('t1')).toBe(false);
  });

  it('skips a task row JSON cannot encode, writes the rest, and reports it at the next flush', async () => {
    const store = await open();
    store.saveTask(new FakeTask('bad', { n: 1n }));
    store.saveTask(new FakeTask('good'));
    append(store, event('submitted', 'good'));
    await expect(store.flush()).rejects.toThrow(/task bad: .*BigInt/);
    await expect(store.flush()).resolves.toBeUndefined();
    expect(store.unfinishedTasks().map((t) => t.id)).toEqual(['good']);
    expect(store.history('good')).toHaveLength(1);
  });

  it('refuses writes and reads once closed', async () => {
    const store = await open();
    await store.close();
    expect(() => store.saveTask(new FakeTask('t1'))).toThrow(StoreError);
    expect(() => append(store, event('submitted', 't1'))).toThrow(/is closed/);
    expect(() => store.unfinishedTasks()).toThrow(StoreError);
    await expect(store.flush()).rejects.toThrow(StoreError);
  });

  it('queues writes made before open and commits them once open', async () => {
    const store = createStore({ type: 'sqlite', path: file() }, { retainMs: 60_000, maxEvents: 1000 });
    store.saveTask(new FakeTask('early'));
    append(store, event('submitted', 'early'));
    expect(() => store.unfinishedTasks()).toThrow(/not open yet/);
    await store.open();
    await store.flush();
    expect(store.unfinishedTasks().map((row) => row.id)).toEqual(['early']);
    expect(store.history('early').map((entry) => entry.type)).toEqual(['submitted']);
    await store.close();
  });

  it('throws StoreError at open for a file of random bytes', async () => {
    writeFileSync(file(), randomBytes(64 * 1024));
    const error = await openError();
    expect(error.message).toMatch(/corrupt|not a database/);
  });

  it('throws StoreError at open for a truncated database', async () => {
    const store = await open();
    for (let i = 0; i < 3000; i++) append(store, event('submitted', `t${i}`, { details: { pad: 'x'.repeat(100) } }));
    await store.close();
    truncateSync(file(), Math.floor(statSync(file()).size / 2));
    const error = await openError();
    expect(error.message).toMatch(/corrupt|malformed/);
  });

  it('throws StoreError at open for a database with a page overwritten in the middle', async () => {
    const store = await open();
    for (let i = 0; i < 3000; i++) append(store, event('submitted', `t${i}`, { details: { pad: 'x'.repeat(100) } }));
    await store.close();
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
    const raw = new Database(file());
    try {
      raw.exec('BEGIN EXCLUSIVE');
      const error = await openError({ busyTimeoutMs: 50 });
      expect(error.message).toMatch(/locked/);
      raw.exec('ROLLBACK');
      await expect(open()).resolves.toBeInstanceOf(SqliteStore);
    } finally {
      raw.close();
    }
  });

  it('throws StoreError at open for a schema from a newer version, leaving it untouched', async () => {
    const store = await open();
    await store.close();
    const raw = new Database(file());
    expect(raw.prepare('SELECT version FROM schema_version').all()).toEqual([{ version: SCHEMA_VERSION }]);
    raw.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION + 1);
    raw.close();
    const error = await openError();
    expect(error.message).toMatch(new RegExp(`schema version ${SCHEMA_VERSION + 1}`));
    const after = new Database(file(), { readonly: true });
    expect(after.prepare('SELECT version FROM schema_version').get()).toEqual({ version: SCHEMA_VERSION + 1 });
    after.close();
  });

  it('throws StoreError at open when the file cannot be created', async () => {
    const path = join(dir, 'missing', 'store.db');
    const error = await new SqliteStore({ path, audit: KEEP_ALL }).open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).message).toContain(path);
  });

  it('is what createStore builds for each store type', async () => {
    expect(createStore({ type: 'memory' }, KEEP_ALL)).toBeInstanceOf(MemoryStore);
    const store = createStore({ type: 'sqlite', path: file(), synchronous: 'full', flushIntervalMs: 1 }, KEEP_ALL);
    expect(store).toBeInstanceOf(SqliteStore);
    expect(store.kind).toBe('sqlite');
    await track(store);
    append(store, event('submitted', 't1'));
    await store.close();
    expect((await open()).audit({}).map((e) => e.taskId)).toEqual(['t1']);
  });
});
