/**
 * Schema of the SQLite store. `MIGRATIONS[i]` takes a database from version `i` to `i + 1`;
 * `schema_version` holds the version reached. Append new migrations, never edit old ones.
 */
export const MIGRATIONS: readonly string[] = [
  // 0 -> 1
  `
  CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    priority INTEGER NOT NULL,
    capabilities TEXT NOT NULL,
    payload TEXT,
    metadata TEXT NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    agent_id TEXT,
    submitted_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    result TEXT,
    error TEXT
  );
  -- Partial: only live tasks are indexed, so recovery reads them without a scan of finished ones.
  CREATE INDEX tasks_unfinished ON tasks (status) WHERE status IN ('queued', 'running', 'retrying');
  CREATE TABLE checkpoints (
    task_id TEXT PRIMARY KEY,
    state TEXT,
    saved_at INTEGER NOT NULL
  );
  -- seq is assigned by the store (meta.audit_seq keeps the high-water mark across retention);
  -- no AUTOINCREMENT and no index on type: each costs a b-tree write per entry.
  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    type TEXT NOT NULL,
    task_id TEXT,
    agent_id TEXT,
    attempt INTEGER,
    details TEXT
  );
  CREATE INDEX audit_task ON audit (task_id);
  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  );
  INSERT INTO meta (key, value) VALUES ('audit_seq', 0);
  CREATE TABLE dead_letters (
    task_id TEXT PRIMARY KEY,
    row TEXT NOT NULL,
    error TEXT NOT NULL,
    code TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at INTEGER NOT NULL
  );
  `,
  // 1 -> 2: rows owned by the process that holds them, and the processes alive on the file, so
  // that a process starting next to a live one recovers only what dead processes left.
  `
  ALTER TABLE tasks ADD COLUMN owner TEXT;
  CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
  );
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Statuses of tasks that have not finished (the ones recovered after a crash). */
export const UNFINISHED_STATUSES = `('queued', 'running', 'retrying')`;
export const FINISHED_STATUSES = `('completed', 'failed', 'cancelled', 'timeout')`;
