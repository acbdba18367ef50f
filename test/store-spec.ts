// The store contract: one behavioural suite that every store must pass, run against each one
// through an initializer (create / destroy), so a new store is one more initializer. Durable
// stores (task rows, recovery, dead letters) pass the durable part too. Where a store rightly
// differs, its initializer says so (`rowsFromWorkSource`, `prunesFinished`) and the suite holds
// it to what it does instead.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TaskStatus } from '../dist/index.js';
import type {
  AuditEvent,
  AuditRetention,
  AuditSubject,
  DeadLetterRow,
  NewAuditEvent,
  PersistableTask,
  Store,
  TaskRow,
} from '../dist/persistence/index.js';

const LOADED_AT = Date.now();

export const KEEP_ALL: AuditRetention = { retainMs: 3_600_000, maxEvents: 100_000 };

/** What a store is created with: as the engine creates it (createStore's context), plus test knobs. */
export interface StoreTestContext {
  nodeId: string;
  audit: AuditRetention;
  idOfSeq(seq: number): string;
  onError(error: Error): void;
  /** Rows of finished tasks older than this are deleted at open (durable stores). */
  retainFinishedMs?: number;
}

export interface StoreTestInitializer {
  /** Names the store in test output. */
  name: string;
  /** Task rows, checkpoints, dead letters and the trail survive close(): the durable part of the contract applies. */
  durable: boolean;
  beforeAll?(): void | Promise<void>;
  afterAll?(): void | Promise<void>;
  /** Before each test: a fresh, empty database for the test's stores. */
  beforeEach?(): void | Promise<void>;
  /** After each test, once its stores are destroyed: drops the test's database. */
  afterEach?(): void | Promise<void>;
  /** A store over the current test's database, not opened yet. Several may be open at once, as several processes' would be. */
  createStore(context: StoreTestContext): Store;
  /** Releases a store the test created (closes it). @default store.close() */
  destroyStore?(store: Store): Promise<void>;
  /** Ages a node's heartbeat past the staleness limit, as a hung process, or one on another host that died, leaves it. */
  expireNode?(nodeId: string): Promise<void>;
  /** Overwrites a stored task's payload, or its checkpoint, with text no reader can parse. */
  corrupt?(taskId: string, what: 'payload' | 'checkpoint'): Promise<void>;
  /**
   * Task rows and dead letters are written by the store's work source, atomically with each claim
   * and outcome, not through the store (PostgreSQL): `saveTask`, `putDeadLetter` and
   * `deleteDeadLetter` write nothing, and `claimUnfinished` takes nothing (nothing is recovered at
   * open: a dead process's tasks come back when their leases expire, re-queued by a live one).
   * The reads of those rows are held to the contract through these, which write rows as that
   * work source does.
   */
  rowsFromWorkSource?: {
    putTask(row: TaskRow): Promise<void>;
    putDeadLetter(entry: DeadLetterRow): Promise<void>;
  };
  /** Rows of finished tasks older than `retainFinishedMs` are deleted at open. False: the store has no such retention (PostgreSQL). @default true */
  prunesFinished?: boolean;
}

/** A task whose row changes as a real task's would; counts how often the store asks for its row. */
export class FakeTask implements PersistableTask {
  rows = 0;
  status: TaskRow['status'] = TaskStatus.QUEUED;
  attempt = 0;
  type = 'work';
  result: unknown = { ok: true };
  readonly submittedAt = LOADED_AT;
  /** Recent: rows of finished tasks are pruned by age. */
  updatedAt = LOADED_AT;

  constructor(
    readonly id: string,
    readonly payload: unknown = { n: 1 },
  ) {}

  toRow(): TaskRow {
    this.rows++;
    return {
      id: this.id,
      type: this.type,
      priority: 2,
      capabilities: ['a', 'b'],
      payload: this.payload,
      metadata: { owner: 'test' },
      options: { timeout: 5000 },
      status: this.status,
      attempt: this.attempt,
      agentId: this.status === TaskStatus.QUEUED ? null : 'agent-1',
      submittedAt: this.submittedAt,
      updatedAt: this.updatedAt,
      ...(this.status === TaskStatus.COMPLETED ? { result: this.result } : {}),
      error: this.status === TaskStatus.FAILED ? { name: 'Error', message: 'boom', stack: undefined, props: { code: 'TASK_FAILED' } } : null,
    };
  }

  /** The row as a store reads it back (its owner aside). */
  stored(): TaskRow {
    const { rows } = this;
    const row = this.toRow();
    this.rows = rows;
    return row;
  }
}

export function event(type: NewAuditEvent['type'], taskId: string | null, extra: Partial<NewAuditEvent> = {}): NewAuditEvent {
  return { timestamp: Date.now(), type, task: taskId === null ? null : { id: taskId }, agentId: null, attempt: 1, details: null, ...extra };
}

/** Appends a whole event (the store takes its fields positionally). */
export function append(store: Store, e: NewAuditEvent): void {
  store.appendAudit(e.type, e.timestamp, e.task, e.agentId, e.attempt, e.details);
}

export function deadLetter(taskId: string, attempts = 3): DeadLetterRow {
  const task = new FakeTask(taskId);
  task.status = TaskStatus.FAILED;
  task.attempt = attempts;
  return {
    taskId,
    row: task.stored(),
    error: { name: 'Error', message: `failed ${taskId}`, stack: 'Error: failed', props: { code: 'TASK_FAILED' } },
    code: 'TASK_FAILED',
    attempts,
    failedAt: 5000,
  };
}

const withoutOwner = (rows: TaskRow[]): TaskRow[] => rows.map(({ owner: _owner, ...row }) => row);

/** How many resources of `type` keep the process alive ('MessagePort': a ref'd worker thread). */
function resources(type: string): number {
  return process.getActiveResourcesInfo().filter((r) => r === type).length;
}

/** Registers the contract's tests for the store `init` creates. */
export function storeContract(init: StoreTestInitializer): void {
  describe(`store contract: ${init.name}`, () => {
    const created: Store[] = [];
    let nodes = 0;
    let errors: Error[] = [];

    beforeAll(async () => init.beforeAll?.());
    afterAll(async () => init.afterAll?.());
    beforeEach(async () => {
      errors = [];
      nodes = 0;
      await init.beforeEach?.();
    });
    afterEach(async () => {
      await Promise.allSettled(created.splice(0).map((store) => (init.destroyStore ? init.destroyStore(store) : store.close())));
      await init.afterEach?.();
    });

    /** A new store over this test's database, as a new process (node) would open it. */
    function create(options: Partial<StoreTestContext> = {}): Store {
      const store = init.createStore({
        nodeId: `node-${++nodes}`,
        audit: KEEP_ALL,
        idOfSeq: (seq) => `gen-${seq}`,
        onError: (error) => errors.push(error),
        ...options,
      });
      created.push(store);
      return store;
    }

    async function open(options: Partial<StoreTestContext> = {}): Promise<Store> {
      const store = create(options);
      await store.open();
      return store;
    }

    const rowWriter = init.rowsFromWorkSource;
    /** Writes a task's row as the store's writer of rows does: the store itself, or its work source. */
    async function putTask(store: Store, task: FakeTask): Promise<void> {
      if (rowWriter === undefined) {
        store.saveTask(task);
        await store.flush();
      } else {
        await rowWriter.putTask(task.stored());
      }
    }

    describe('audit trail', () => {
      it('keeps the trail in order, by task, and pages it by seq and type; reads are promises that see queued writes', async () => {
        const store = await open();
        const types = ['submitted', 'started', 'retried', 'started', 'completed'] as const;
        for (const type of types) {
          append(store, event(type, 'a', { agentId: 'agent-1', details: { type } }));
          append(store, event(type, 'b'));
        }
        append(store, event('circuit', null, { agentId: 'agent-1', attempt: null, details: { from: 'closed', to: 'open' } }));

        // No flush: reads see what was appended.
        const reading = store.history('a');
        expect(reading).toBeInstanceOf(Promise);
        const history = await reading;
        expect(history.map((e) => e.type)).toEqual(types);
        expect(history.map((e) => e.details)).toEqual(types.map((type) => ({ type })));
        expect(history.every((e) => e.taskId === 'a' && e.agentId === 'agent-1' && e.attempt === 1)).toBe(true);

        const all = await store.audit({ limit: 1000 });
        expect(all).toHaveLength(11);
        expect(all.map((e) => `${e.type}:${e.taskId}`)).toEqual([...types.flatMap((t) => [`${t}:a`, `${t}:b`]), 'circuit:null']);
        expect(all.map((e) => e.seq)).toEqual([...all.map((e) => e.seq)].sort((x, y) => x - y));
        expect(new Set(all.map((e) => e.seq)).size).toBe(11);
        expect(all[10]).toMatchObject({ type: 'circuit', taskId: null, agentId: 'agent-1', attempt: null, details: { from: 'closed', to: 'open' } });
        expect(await store.audit({})).toHaveLength(11);

        const pages: string[][] = [];
        for (let since = 0; ; ) {
          const page = await store.audit({ since, limit: 4 });
          if (page.length === 0) break;
          pages.push(page.map((e) => `${e.type}:${e.taskId}`));
          since = page[page.length - 1]!.seq;
        }
        expect(pages.map((p) => p.length)).toEqual([4, 4, 3]);
        expect(pages.flat()).toEqual(all.map((e) => `${e.type}:${e.taskId}`));

        const started = await store.audit({ type: 'started', limit: 3 });
        expect(started.map((e) => e.taskId)).toEqual(['a', 'b', 'a']);
        expect((await store.audit({ type: 'started', since: started[2]!.seq })).map((e) => e.taskId)).toEqual(['b']);
        expect(await store.audit({ type: 'dead-lettered' })).toEqual([]);

        await store.flush();
        expect(await store.audit({ limit: 1000 })).toEqual(all);
      });

      it('pages entries of interleaved tasks over several commits exactly as appended', async () => {
        const store = await open();
        const appended: string[] = [];
        // Tasks whose entries interleave (as concurrent runs' do), some within one commit, some across.
        for (let round = 0; round < 6; round++) {
          for (let t = 0; t < 7; t++) {
            const type = (['submitted', 'started', 'checkpoint', 'completed'] as const)[(round + t) % 4]!;
            append(store, event(type, `t${(t * 3 + round) % 7}`, { attempt: round, details: round % 2 === 0 ? null : { round, t } }));
            appended.push(`${type}:t${(t * 3 + round) % 7}:${round}`);
          }
          if (round % 2 === 1) await store.flush();
        }
        const key = (e: AuditEvent) => `${e.type}:${e.taskId}:${e.attempt}`;
        const all = await store.audit({ limit: 1000 });
        expect(all.map(key)).toEqual(appended);
        for (const limit of [1, 3, 5, 8]) {
          for (const type of [undefined, 'started', 'completed'] as const) {
            const paged: string[] = [];
            for (let since = 0, page: AuditEvent[]; (page = await store.audit({ since, limit, ...(type ? { type } : {}) })).length > 0; since = page.at(-1)!.seq) {
              expect(page.length).toBeLessThanOrEqual(limit);
              paged.push(...page.map(key));
            }
            expect(paged).toEqual(appended.filter((entry) => type === undefined || entry.startsWith(`${type}:`)));
          }
        }
        for (let t = 0; t < 7; t++) {
          expect((await store.history(`t${t}`)).map(key)).toEqual(appended.filter((entry) => entry.split(':')[1] === `t${t}`));
        }
        // From any seq on, the rest of the trail.
        for (const from of all) {
          expect((await store.audit({ since: from.seq, limit: 1000 })).map((e) => e.seq)).toEqual(all.filter((e) => e.seq > from.seq).map((e) => e.seq));
        }
      });

      it('reads the id of a task whose id was generated from its sequence, when the entry is read', async () => {
        const store = await open();
        const subject: AuditSubject = { id: 'gen-41', generatedSeq: 41 };
        append(store, event('submitted', null, { task: subject }));
        append(store, event('submitted', null, { task: { id: 'chosen', generatedSeq: -1 } }));
        expect((await store.history('gen-41')).map((e) => e.type)).toEqual(['submitted']);
        expect((await store.audit({})).map((e) => e.taskId)).toEqual(['gen-41', 'chosen']);
      });

      it('keeps only the newest maxEvents entries', async () => {
        const store = await open({ audit: { retainMs: 3_600_000, maxEvents: 5 } });
        for (let i = 0; i < 8; i++) append(store, event('submitted', `t${i}`));
        await store.flush();
        for (let i = 8; i < 12; i++) append(store, event('submitted', `t${i}`));
        const kept = await store.audit({ limit: 100 });
        expect(kept.map((e) => e.taskId)).toEqual(['t7', 't8', 't9', 't10', 't11']);
        expect(await store.history('t3')).toEqual([]);
        expect(await store.history('t11')).toHaveLength(1);
        expect((await store.audit({ since: kept[2]!.seq })).map((e) => e.taskId)).toEqual(['t10', 't11']);
      });

      it('drops entries older than retainMs, also behind a clock step back', async () => {
        const store = await open({ audit: { retainMs: 60_000, maxEvents: 100 } });
        const now = Date.now();
        append(store, event('submitted', 'old', { timestamp: now - 120_000 }));
        expect(await store.audit({})).toEqual([]);
        append(store, event('started', 'old', { timestamp: now - 90_000 }));
        append(store, event('submitted', 'fresh', { timestamp: now }));
        // Out of timestamp order (a clock step back): still not returned.
        append(store, event('completed', 'old', { timestamp: now - 90_000 }));
        expect((await store.audit({})).map((e) => e.taskId)).toEqual(['fresh']);
        expect(await store.audit({ type: 'completed' })).toEqual([]);
        expect(await store.history('old')).toEqual([]);
        await store.flush();
        expect((await store.audit({})).map((e) => e.taskId)).toEqual(['fresh']);
      });
    });

    it('resolves saveCheckpoint and flush, and closes idempotently leaving nothing that holds the process', async () => {
      const before = resources('Timeout');
      const store = await open();
      expect(store.durable).toBe(init.durable);
      store.saveTask(new FakeTask('t1'));
      append(store, event('submitted', 't1'));
      await expect(store.saveCheckpoint('t1', { step: 1 })).resolves.toBeUndefined();
      const saved = store.saveCheckpoint('t1', { step: 2 });
      await expect(store.flush()).resolves.toBeUndefined();
      await saved;
      store.deleteCheckpoint('t1');
      await store.close();
      await store.close();
      // Nothing of the store keeps the process alive (the test runner's own timers come and go).
      expect(resources('Timeout')).toBeLessThanOrEqual(before);
      expect(resources('MessagePort')).toBe(0);
      expect(errors).toEqual([]);
    });

    it('keeps no task rows, checkpoints or dead letters unless durable', async () => {
      if (init.durable) return;
      const store = await open();
      store.saveTask(new FakeTask('t1'));
      await store.saveCheckpoint('t1', { step: 1 });
      store.putDeadLetter(deadLetter('d1'));
      expect(await store.findTask('t1')).toBeUndefined();
      expect(await store.listTasks({})).toEqual([]);
      expect(await store.listDeadLetters()).toEqual([]);
      expect(await store.claimUnfinished()).toEqual({ tasks: [], unreadable: [] });
    });

    describe.runIf(init.durable)('task rows', () => {
      it.runIf(rowWriter === undefined)('asks an unfinished task for its row once per commit, however often it is saved, and finds the latest row', async () => {
        const store = await open();
        const task = new FakeTask('t1');
        store.saveTask(task);
        task.status = TaskStatus.RUNNING;
        task.attempt = 1;
        store.saveTask(task);
        store.saveTask(task);
        expect(task.rows).toBe(0);
        // A read commits first: it sees the latest state.
        expect(await store.findTask('t1')).toMatchObject({ ...task.stored(), owner: 'node-1' });
        expect(task.rows).toBe(1);

        // A finished task's row no longer changes: it is taken when saved.
        task.status = TaskStatus.COMPLETED;
        task.result = { answer: 42, list: [1, 'two'] };
        store.saveTask(task);
        expect(task.rows).toBe(2);
        await store.flush();
        const row = await store.findTask('t1');
        expect(row).toMatchObject({ status: 'completed', attempt: 1, result: { answer: 42, list: [1, 'two'] }, submittedAt: task.submittedAt });
        expect(await store.findTask('missing')).toBeUndefined();
      });

      it.runIf(rowWriter === undefined)('writes a payload and a result already encoded (payloadJson, resultJson) as they are, and keeps the first submittedAt', async () => {
        const store = await open();
        const task = new FakeTask('t1');
        task.toRow = () => ({ ...FakeTask.prototype.toRow.call(task), payload: 'ignored', payloadJson: '{"given":1}' });
        store.saveTask(task);
        await store.flush();
        expect(await store.findTask('t1')).toMatchObject({ payload: { given: 1 } });
        task.status = TaskStatus.COMPLETED;
        task.toRow = () => ({ ...FakeTask.prototype.toRow.call(task), submittedAt: 1, result: 'ignored', resultJson: '{"encoded":true}' });
        store.saveTask(task);
        expect(await store.findTask('t1')).toMatchObject({ status: 'completed', result: { encoded: true }, submittedAt: task.submittedAt });
      });

      it('lists tasks newest first (by first commit), by status and type, up to a limit', async () => {
        const store = await open();
        const statuses = [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.COMPLETED, TaskStatus.QUEUED];
        const tasks: FakeTask[] = [];
        for (const [i, status] of statuses.entries()) {
          const task = new FakeTask(`t${i}`);
          task.status = status;
          task.attempt = status === TaskStatus.QUEUED ? 0 : 1;
          task.type = i % 2 === 0 ? 'even' : 'odd';
          await putTask(store, task);
          tasks.push(task);
        }
        for (const task of tasks) {
          const { id, type, status, attempt, agentId, payload, metadata, options } = task.stored();
          const found = await store.findTask(task.id);
          expect(found).toMatchObject({ id, type, status, attempt, agentId, payload, metadata, options });
          expect(found?.result).toEqual(status === TaskStatus.COMPLETED ? task.result : undefined);
        }
        const ids = (rows: TaskRow[]) => rows.map((row) => row.id);
        expect(ids(await store.listTasks({}))).toEqual(['t5', 't4', 't3', 't2', 't1', 't0']);
        expect(ids(await store.listTasks({ status: [TaskStatus.COMPLETED] }))).toEqual(['t4', 't2']);
        expect(ids(await store.listTasks({ status: [TaskStatus.QUEUED, TaskStatus.FAILED] }))).toEqual(['t5', 't3', 't0']);
        expect(ids(await store.listTasks({ type: 'odd' }))).toEqual(['t5', 't3', 't1']);
        expect(ids(await store.listTasks({ type: 'even', status: [TaskStatus.COMPLETED] }))).toEqual(['t4', 't2']);
        expect(ids(await store.listTasks({ limit: 2 }))).toEqual(['t5', 't4']);
        expect(ids(await store.listTasks({ type: 'none' }))).toEqual([]);
        expect(ids(await store.listTasks({ status: [] }))).toHaveLength(6);
      });

      it('tells a task waiting for its retry from a queued one, in rows and in filters', async () => {
        const store = await open();
        for (const [id, status, attempt] of [['queued', TaskStatus.QUEUED, 0], ['retrying', TaskStatus.RETRYING, 1], ['requeued', TaskStatus.QUEUED, 1]] as const) {
          const task = new FakeTask(id);
          task.status = status;
          task.attempt = attempt;
          await putTask(store, task);
        }
        expect((await store.findTask('retrying'))?.status).toBe('retrying');
        expect((await store.findTask('requeued'))?.status).toBe('queued');
        const listed = async (status: TaskStatus[]) => (await store.listTasks({ status })).map((row) => `${row.id}:${row.status}`);
        expect(await listed([TaskStatus.RETRYING])).toEqual(['retrying:retrying']);
        expect(await listed([TaskStatus.QUEUED])).toEqual(['requeued:queued', 'queued:queued']);
        expect(await listed([TaskStatus.QUEUED, TaskStatus.RETRYING])).toEqual(['requeued:queued', 'retrying:retrying', 'queued:queued']);
      });

      it.runIf(init.prunesFinished !== false)('deletes rows of finished tasks older than retainFinishedMs at open, and keeps unfinished ones', async () => {
        const first = await open();
        const tasks = Object.values(TaskStatus).map((status) => {
          const task = new FakeTask(`task-${status}`);
          task.status = status;
          task.updatedAt = Date.now() - 10_000;
          first.saveTask(task);
          return task;
        });
        await first.close();
        const second = await open({ retainFinishedMs: 5_000 });
        const unfinished = ['queued', 'running', 'retrying'];
        expect((await second.listTasks({})).map((row) => row.status).sort()).toEqual(unfinished.sort());
        expect(tasks).toHaveLength(7);
      });
    });

    describe.runIf(init.durable)('claiming unfinished tasks', () => {
      /** Saves a task of each status; returns the unfinished ones as stored. */
      function saveEveryStatus(store: Store, prefix: string): FakeTask[] {
        return Object.values(TaskStatus)
          .map((status) => {
            const task = new FakeTask(`${prefix}-${status}`);
            task.status = status;
            task.attempt = status === TaskStatus.QUEUED ? 0 : 1;
            store.saveTask(task);
            return task;
          })
          .filter((task) => ['queued', 'running', 'retrying'].includes(task.status));
      }

      it.runIf(rowWriter !== undefined)('leaves task rows, dead letters and recovery to its work source: it writes none of them and claims nothing', async () => {
        const first = await open();
        const task = Object.assign(new FakeTask('t1'), { status: TaskStatus.RUNNING, attempt: 1 });
        first.saveTask(task);
        first.putDeadLetter(deadLetter('d1'));
        first.deleteDeadLetter('d1');
        await first.flush();
        expect(task.rows).toBe(0);
        expect(await first.findTask('t1')).toBeUndefined();
        expect(await first.listDeadLetters()).toEqual([]);
        await rowWriter!.putTask(task.stored());
        await first.close();
        const second = await open();
        expect(await second.claimUnfinished()).toEqual({ tasks: [], unreadable: [] });
        // The row stays as its work source left it, for a live node to re-queue when the lease expires.
        expect(await second.findTask('t1')).toMatchObject(task.stored());
      });

      it.runIf(rowWriter === undefined)('returns the queued, running and retrying tasks a closed store left, with their latest checkpoints, owned now', async () => {
        const first = await open();
        const unfinished = saveEveryStatus(first, 'a');
        void first.saveCheckpoint('a-running', { step: 1 });
        void first.saveCheckpoint('a-running', { step: 2 });
        void first.saveCheckpoint('a-retrying', undefined);
        void first.saveCheckpoint('a-queued', { gone: true });
        first.deleteCheckpoint('a-queued');
        await first.close();

        const second = await open();
        const claimed = await second.claimUnfinished();
        expect(claimed.unreadable).toEqual([]);
        expect(withoutOwner(claimed.tasks.map((t) => t.row))).toEqual(unfinished.map((t) => t.stored()));
        expect(claimed.tasks.every((t) => t.row.owner === 'node-2')).toBe(true);
        expect(Object.fromEntries(claimed.tasks.map((t) => [t.row.id, t.checkpoint]))).toEqual({
          'a-queued': null,
          'a-running': { state: { step: 2 } },
          'a-retrying': { state: undefined },
        });
        // Claimed once: the claimer's own rows are not returned again, nor taken by a third store while it is open.
        expect(await second.claimUnfinished()).toEqual({ tasks: [], unreadable: [] });
        expect((await (await open()).claimUnfinished()).tasks).toEqual([]);
      });

      it.runIf(rowWriter === undefined)('leaves the rows of a store that is still open to it, until it closes', async () => {
        const first = await open();
        saveEveryStatus(first, 'a');
        await first.flush();
        const second = await open();
        const own = saveEveryStatus(second, 'b');
        expect(await second.claimUnfinished()).toEqual({ tasks: [], unreadable: [] });
        // The first goes on writing its rows; still not taken.
        first.saveTask(Object.assign(new FakeTask('a-late'), { status: TaskStatus.RUNNING }));
        await first.flush();
        expect((await second.claimUnfinished()).tasks).toEqual([]);
        await first.close();
        expect((await second.claimUnfinished()).tasks.map((t) => t.row.id)).toEqual(['a-queued', 'a-running', 'a-retrying', 'a-late']);
        // The first's rows are the second's now; its own were never claimed from itself.
        expect((await second.listTasks({ status: [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.RETRYING] })).every((row) => row.owner === 'node-2')).toBe(true);
        expect(own).toHaveLength(3);
      });

      it.runIf(init.expireNode !== undefined)('takes the rows of a store whose heartbeat went stale, even while it is open', async () => {
        const first = await open();
        saveEveryStatus(first, 'a');
        await first.flush();
        const second = await open();
        expect((await second.claimUnfinished()).tasks).toEqual([]);
        await init.expireNode!('node-1');
        expect((await second.claimUnfinished()).tasks.map((t) => t.row.id)).toEqual(['a-queued', 'a-running', 'a-retrying']);
      });

      it.runIf(init.corrupt !== undefined)('returns rows whose payload or checkpoint cannot be read apart, naming the store and the task', async () => {
        const first = await open();
        for (const id of ['t1', 't2', 't3', 't4']) first.saveTask(new FakeTask(id));
        await first.saveCheckpoint('t3', { step: 1 });
        await first.saveCheckpoint('t4', { step: 1 });
        await first.close();
        await init.corrupt!('t2', 'payload');
        await init.corrupt!('t3', 'checkpoint');

        const second = await open();
        const { tasks, unreadable } = await second.claimUnfinished();
        expect(tasks.map((t) => [t.row.id, t.checkpoint])).toEqual([
          ['t1', null],
          ['t4', { state: { step: 1 } }],
        ]);
        expect(unreadable.map(({ error: _error, ...bad }) => bad)).toEqual([
          { id: 't2', type: 'work', priority: 2, status: 'queued', attempt: 0 },
          { id: 't3', type: 'work', priority: 2, status: 'queued', attempt: 0 },
        ]);
        for (const { id, error } of unreadable) {
          expect(error).toMatchObject({ name: 'StoreError', code: 'STORE_ERROR' });
          expect(error.message).toMatch(new RegExp(`task ${id}\\b`));
        }
        // Claimed too: nobody else takes them.
        expect(await (await open()).claimUnfinished()).toEqual({ tasks: [], unreadable: [] });
      });
    });

    describe.runIf(init.durable)('dead letters', () => {
      it.runIf(rowWriter !== undefined)('lists the dead letters its work source wrote, oldest first, as written', async () => {
        const store = await open();
        const letters = [
          { ...deadLetter('b'), failedAt: 3000 },
          { ...deadLetter('a', 7), failedAt: 4000 },
          { ...deadLetter('c'), failedAt: 4000 },
        ];
        for (const letter of [letters[2]!, letters[0]!, letters[1]!]) await rowWriter!.putDeadLetter(letter);
        expect(await store.listDeadLetters()).toEqual(letters);
      });

      it.runIf(rowWriter === undefined)('puts, lists (oldest first), deletes and replaces dead letters, read-your-writes', async () => {
        const store = await open();
        for (const id of ['a', 'b', 'c']) store.putDeadLetter(deadLetter(id));
        expect((await store.listDeadLetters()).map((d) => d.taskId)).toEqual(['a', 'b', 'c']);
        store.deleteDeadLetter('b');
        expect(await store.listDeadLetters()).toEqual([deadLetter('a'), deadLetter('c')]);
        store.deleteDeadLetter('missing');
        store.putDeadLetter(deadLetter('a', 7));
        expect((await store.listDeadLetters()).map((d) => [d.taskId, d.attempts])).toEqual([['a', 7], ['c', 3]]);
        store.deleteDeadLetter('c');
        store.putDeadLetter(deadLetter('c', 1));
        store.deleteDeadLetter('c');
        await store.flush();
        expect(await store.listDeadLetters()).toEqual([deadLetter('a', 7)]);
      });
    });

    describe.runIf(init.durable)('across close and open', () => {
      it('keeps task rows, checkpoints, the trail and dead letters; seq goes on increasing', async () => {
        const first = await open();
        const task = new FakeTask('t1', { big: 'x'.repeat(10_000), list: [1, 2, 3], unicode: 'é ✓ \u2028' });
        task.status = TaskStatus.RETRYING;
        task.attempt = 2;
        await putTask(first, task);
        void first.saveCheckpoint('t1', { step: 2 });
        append(first, event('submitted', 't1', { details: { priority: 2 } }));
        append(first, event('retried', 't1', { agentId: 'agent-1', attempt: 2 }));
        if (rowWriter === undefined) first.putDeadLetter(deadLetter('d1'));
        else await rowWriter.putDeadLetter(deadLetter('d1'));
        const trail = await first.audit({});
        await first.close();

        const second = await open();
        expect(await second.audit({})).toEqual(trail);
        expect((await second.history('t1')).map((e) => e.type)).toEqual(['submitted', 'retried']);
        expect(await second.listDeadLetters()).toEqual([deadLetter('d1')]);
        expect(await second.findTask('t1')).toMatchObject(task.stored());
        // A work source that writes the rows reads the checkpoint with its claim, not through the store.
        if (rowWriter === undefined) {
          const claimed = await second.claimUnfinished();
          expect(withoutOwner(claimed.tasks.map((t) => t.row))).toEqual([task.stored()]);
          expect(claimed.tasks[0]!.checkpoint).toEqual({ state: { step: 2 } });
        }
        append(second, event('started', 't1'));
        expect((await second.audit({ since: trail[1]!.seq })).map((e) => e.type)).toEqual(['started']);
      });

      it('commits writes queued before open once open, and the last ones at close', async () => {
        const store = create();
        const rows = rowWriter === undefined;
        if (rows) store.saveTask(new FakeTask('early'));
        append(store, event('submitted', 'early'));
        await store.open();
        await store.flush();
        if (rows) expect((await store.findTask('early'))?.id).toBe('early');
        if (rows) store.saveTask(Object.assign(new FakeTask('late'), { status: TaskStatus.RUNNING }));
        append(store, event('started', 'late'));
        const checkpoint = store.saveCheckpoint('late', { step: 1 });
        await store.close();
        await checkpoint;

        const reopened = await open();
        expect((await reopened.history('early')).map((e) => e.type)).toEqual(['submitted']);
        expect((await reopened.history('late')).map((e) => e.type)).toEqual(['started']);
        if (rows) {
          expect((await reopened.claimUnfinished()).tasks.map((t) => [t.row.id, t.checkpoint])).toEqual([
            ['early', null],
            ['late', { state: { step: 1 } }],
          ]);
        }
      });

      it('refuses writes and reads once closed', async () => {
        const store = await open();
        await store.close();
        const closed = { name: 'StoreError', code: 'STORE_ERROR' };
        expect(() => store.saveTask(new FakeTask('t1'))).toThrow(/is closed/);
        expect(() => append(store, event('submitted', 't1'))).toThrow(/is closed/);
        expect(() => store.putDeadLetter(deadLetter('d1'))).toThrow(/is closed/);
        await expect(store.saveCheckpoint('t1', {})).rejects.toMatchObject(closed);
        await expect(store.claimUnfinished()).rejects.toMatchObject(closed);
        await expect(store.history('t1')).rejects.toMatchObject(closed);
        await expect(store.findTask('t1')).rejects.toMatchObject(closed);
        await expect(store.flush()).rejects.toMatchObject(closed);
      });
    });
  });
}
