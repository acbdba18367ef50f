import type { AuditEventType } from './store.js';

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
  // 2 -> 3: the trail in chunks. An entry row (and its task index entry) per transition was most
  // of a commit's cost; a chunk holds up to AUDIT_CHUNK_ENTRIES consecutive entries (entry k has
  // seq + k; its timestamp is ms after first_ts), and audit_index one row per task per chunk.
  // Existing entries become chunks of one.
  // meta.audit_floor: every seq up to it was removed by retention (chunks are removed whole, so
  // reads skip the entries of a chunk at or below it).
  `
  CREATE TABLE audit_chunks (
    seq INTEGER PRIMARY KEY,
    count INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    types INTEGER NOT NULL,
    tasks TEXT NOT NULL,
    entries TEXT NOT NULL
  );
  CREATE TABLE audit_index (
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (task_id, seq)
  ) WITHOUT ROWID;
  INSERT INTO audit_chunks (seq, count, first_ts, last_ts, types, tasks, entries)
    SELECT seq, 1, ts, ts,
      1 << CASE type WHEN 'submitted' THEN 0 WHEN 'started' THEN 1 WHEN 'checkpoint' THEN 2 WHEN 'retried' THEN 3
        WHEN 'completed' THEN 4 WHEN 'failed' THEN 5 WHEN 'timed-out' THEN 6 WHEN 'cancelled' THEN 7
        WHEN 'dead-lettered' THEN 8 WHEN 'requeued' THEN 9 WHEN 'recovered' THEN 10 WHEN 'circuit' THEN 11 ELSE 30 END,
      CASE WHEN task_id IS NULL THEN '[]' ELSE json_array(task_id) END,
      json_array(0, type, task_id, agent_id, attempt, CASE WHEN json_valid(details) THEN json(details) END)
    FROM audit;
  INSERT INTO audit_index (task_id, seq) SELECT task_id, seq FROM audit WHERE task_id IS NOT NULL;
  INSERT INTO meta (key, value)
    SELECT 'audit_floor', coalesce((SELECT min(seq) - 1 FROM audit), (SELECT value FROM meta WHERE key = 'audit_seq'));
  DROP TABLE audit;
  -- The trail one row per entry, as before, for tools that read the file (sqlite3, scripts).
  CREATE VIEW audit (seq, ts, type, task_id, agent_id, attempt, details) AS
    SELECT c.seq + e.key / 6, c.first_ts + e.value,
      json_extract(c.entries, '$[' || (e.key + 1) || ']'), json_extract(c.entries, '$[' || (e.key + 2) || ']'),
      json_extract(c.entries, '$[' || (e.key + 3) || ']'), json_extract(c.entries, '$[' || (e.key + 4) || ']'),
      json_extract(c.entries, '$[' || (e.key + 5) || ']')
    FROM audit_chunks AS c, json_each(c.entries) AS e
    WHERE e.key % 6 = 0 AND c.seq + e.key / 6 > (SELECT value FROM meta WHERE key = 'audit_floor');
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Entry types of the trail; a chunk's `types` has bit i set when it holds an entry of AUDIT_TYPES[i]. Append only. */
export const AUDIT_TYPES: readonly AuditEventType[] = [
  'submitted', 'started', 'checkpoint', 'retried', 'completed', 'failed',
  'timed-out', 'cancelled', 'dead-lettered', 'requeued', 'recovered', 'circuit',
];

/** Most entries in one chunk: a read decodes whole chunks, so they stay small. */
export const AUDIT_CHUNK_ENTRIES = 256;

/** Statuses of tasks that have not finished (the ones recovered after a crash). */
export const UNFINISHED_STATUSES = `('queued', 'running', 'retrying')`;
export const FINISHED_STATUSES = `('completed', 'failed', 'cancelled', 'timeout')`;
