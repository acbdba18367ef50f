// The store contract (test/store-spec.ts) run against every store. A new store (PostgreSQL) is
// one more initializer here. Stores come from the built package: the SQLite store commits from a
// worker thread, which loads dist.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createStore } from '../dist/persistence/index.js';
import { storeContract, type StoreTestInitializer } from './store-spec.js';

const memory: StoreTestInitializer = {
  name: 'memory',
  durable: false,
  createStore: ({ audit, ...context }) => createStore({ type: 'memory' }, audit, context),
};

let dir = '';
const file = (): string => join(dir, 'store.db');

/** Runs `sql` on the test's file through a connection of its own, as another process would. */
function rawWrite(sql: string, ...params: unknown[]): void {
  const db = new Database(file());
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}

const sqlite: StoreTestInitializer = {
  name: 'sqlite',
  durable: true,
  beforeEach() {
    dir = mkdtempSync(join(tmpdir(), 'store-contract-'));
  },
  afterEach() {
    rmSync(dir, { recursive: true, force: true });
  },
  createStore: ({ audit, retainFinishedMs, ...context }) => createStore({ type: 'sqlite', path: file(), retainFinishedMs }, audit, context),
  async expireNode(nodeId) {
    rawWrite('UPDATE nodes SET heartbeat_at = 0 WHERE id = ?', nodeId);
  },
  async corrupt(taskId, what) {
    if (what === 'payload') rawWrite('UPDATE tasks SET payload = ? WHERE id = ?', '{"cut short', taskId);
    else rawWrite('UPDATE checkpoints SET state = ? WHERE task_id = ?', 'not json', taskId);
  },
};

for (const initializer of [memory, sqlite]) storeContract(initializer);
