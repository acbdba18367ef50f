// The store contract (test/store-spec.ts) run against every store: memory, SQLite, PostgreSQL.
// Stores come from the built package: the SQLite store commits from a worker thread, which loads dist.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createPostgresBackend } from '../dist/distributed/index.js';
import { createStore, type DeadLetterRow, type TaskRow } from '../dist/persistence/index.js';
import { DATABASE_URL, dropSchema, postgresAvailable, sql, uniqueSchema } from './pg-helpers.js';
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

// One schema for the file (dropped after it); each test starts from empty tables.
const pgAvailable = await postgresAvailable();
const schema = uniqueSchema('po_contract');
const TABLES = ['tasks', 'checkpoints', 'audit', 'dead_letters', 'nodes', 'progress'];
const noLanes = (): never => {
  throw new Error('a node with no agents and no submits has no lanes');
};

/** A task row as the work source writes it: a task waiting for its retry is queued with a run_at ahead. */
async function putTaskRow(row: TaskRow): Promise<void> {
  const retrying = row.status === 'retrying';
  await sql(
    `insert into ${schema}.tasks (id, type, priority, level, level_since, capabilities, payload, metadata, options, max_attempts,
       status, attempt, run_at, agent_id, result, error, submitted_at, updated_at)
     values ($1, $2, $3, $3, 0, $4, $5::jsonb, $6::jsonb, $7::jsonb, 3, $8, $9, $10, $11, $12::jsonb, $13::jsonb, $14, $15)`,
    [
      row.id, row.type, row.priority, row.capabilities, JSON.stringify(row.payload ?? null), JSON.stringify(row.metadata), JSON.stringify(row.options),
      retrying ? 'queued' : row.status, row.attempt, retrying ? Date.now() + 3_600_000 : 0, row.agentId,
      row.status === 'completed' ? JSON.stringify(row.result ?? null) : null, row.error == null ? null : JSON.stringify(row.error), row.submittedAt, row.updatedAt,
    ],
  );
}

async function putDeadLetterRow(entry: DeadLetterRow): Promise<void> {
  await sql(`insert into ${schema}.dead_letters (task_id, row, error, code, attempts, failed_at) values ($1, $2::jsonb, $3::jsonb, $4, $5, $6)`, [
    entry.taskId, JSON.stringify(entry.row), JSON.stringify(entry.error), entry.code, entry.attempts, entry.failedAt,
  ]);
}

const postgres: StoreTestInitializer = {
  name: 'postgres',
  durable: true,
  rowsFromWorkSource: { putTask: putTaskRow, putDeadLetter: putDeadLetterRow },
  prunesFinished: false,
  async afterAll() {
    await dropSchema(schema);
  },
  async beforeEach() {
    const [exists] = await sql<{ found: boolean }>('select to_regclass($1) is not null as found', [`${schema}.tasks`]);
    if (exists?.found === true) await sql(`truncate ${TABLES.map((table) => `${schema}.${table}`).join(', ')} restart identity`);
  },
  createStore: ({ audit, nodeId, onError }) => {
    // The store alone, as a node with no agents opens it: its work source claims nothing.
    const host = {
      unservable() {},
      requeued() {},
      wake() {},
      adopt: () => {
        throw new Error('a node with no agents claims nothing');
      },
      release() {},
      claimLost() {},
      rejected() {},
      cancelRequested() {},
      resync() {},
      remote() {},
      capabilitySets: () => [],
      agentsJson: () => '[]',
      running: () => 0,
      freeSlots: () => 0,
      live: () => undefined,
    };
    const { store } = createPostgresBackend(
      { type: 'postgres', connectionString: DATABASE_URL, schema, leaseMs: 1_000, pollIntervalMs: 200 },
      { nodeId, agingMs: 0, maxSize: Infinity, audit: { enabled: true, ...audit }, onError, signatures: { signature: noLanes, forgetSignature: noLanes } },
      host,
    );
    return store;
  },
};

for (const initializer of [memory, sqlite, ...(pgAvailable ? [postgres] : [])]) storeContract(initializer);
