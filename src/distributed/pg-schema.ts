import { StoreError } from '../errors.js';
import type { PgPool } from './pg-types.js';

/** A schema name we put into SQL unquoted-safe: lower-case letters, digits and `_`, at most 48 characters. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,47}$/;

/** @throws StoreError when the name could be anything but a plain identifier. */
export function checkSchemaName(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new StoreError(`postgres schema "${schema}"`, 'must be lower-case letters, digits and _, starting with a letter or _, at most 48 characters');
  }
  return schema;
}

/**
 * The tables, one migration per version: `MIGRATIONS[i]` takes the schema from version `i` to
 * `i + 1`. Append new migrations, never edit old ones. `$S` stands for the schema name.
 *
 * Times are epoch milliseconds in float8 columns (exact to 2^53, returned to Node as numbers
 * without a parser). A task's `level` is its priority lowered by aging; the queue index orders
 * by level, then `seq` (submission order), so a claim reads the head of that index.
 */
const MIGRATIONS: readonly string[] = [
  `
  create table $S.tasks (
    id text primary key,
    seq bigint generated always as identity,
    type text not null,
    priority int2 not null,
    level int2 not null,
    level_since float8 not null,
    capabilities text[] not null,
    payload jsonb,
    metadata jsonb not null default '{}',
    options jsonb not null default '{}',
    max_attempts int4 not null,
    status text not null,
    attempt int4 not null default 0,
    run_at float8 not null,
    owner text,
    claim_token bigint,
    lease_until float8,
    cancel_requested text,
    submitter text,
    watchers text[] not null default '{}',
    agent_id text,
    result jsonb,
    error jsonb,
    trace jsonb,
    submitted_at float8 not null,
    started_at float8,
    updated_at float8 not null
  );
  create index tasks_queue on $S.tasks (level, seq) where status = 'queued';
  -- Running rows are few (the cluster's slots and prefetch): one small index serves both the
  -- heartbeat (by owner) and the reaper (a scan of it for expired leases).
  create index tasks_running on $S.tasks (owner) where status = 'running';
  -- Listing by recency; partial, so a claim (queued → running) does not write to it.
  create index tasks_finished on $S.tasks (seq) where status in ('completed', 'failed', 'timeout', 'cancelled');
  create sequence $S.claim_tokens;
  create table $S.checkpoints (
    task_id text primary key,
    state jsonb,
    saved_at float8 not null
  );
  create table $S.audit (
    seq bigint generated always as identity primary key,
    ts float8 not null,
    type text not null,
    task_id text,
    agent_id text,
    attempt int4,
    details jsonb,
    node text
  );
  create index audit_task on $S.audit (task_id);
  create table $S.dead_letters (
    task_id text primary key,
    row jsonb not null,
    error jsonb not null,
    code text not null,
    attempts int4 not null,
    failed_at float8 not null
  );
  create table $S.nodes (
    id text primary key,
    host text not null,
    pid int4 not null,
    started_at float8 not null,
    heartbeat_at float8 not null,
    agents jsonb not null default '[]',
    running int4 not null default 0
  );
  create table $S.progress (
    task_id text primary key,
    sequence int4 not null,
    body jsonb not null
  );
  `,
];

const PG_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Creates or migrates the schema. Ten nodes starting at once migrate once: the work runs in one
 * transaction under an advisory lock keyed by the schema name, and each one reads the version
 * after taking the lock. A database migrated by a newer version of this library is refused.
 * @throws StoreError naming the schema
 */
export async function migrate(pool: PgPool, schema: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock(hashtext($1))', [`parallel-orchestrator:${schema}`]);
    await client.query(`create schema if not exists ${schema}`);
    await client.query(`create table if not exists ${schema}.schema_version (version int4 not null)`);
    const { rows } = await client.query<{ version: number }>(`select version from ${schema}.schema_version`);
    const version = rows[0]?.version ?? 0;
    if (version > PG_SCHEMA_VERSION) {
      throw new StoreError(`postgres schema "${schema}"`, `has version ${version}, written by a newer version of this library (this one reads up to ${PG_SCHEMA_VERSION})`);
    }
    for (let v = version; v < PG_SCHEMA_VERSION; v++) await client.query(MIGRATIONS[v]!.replaceAll('$S', schema));
    if (rows.length === 0) await client.query(`insert into ${schema}.schema_version (version) values ($1)`, [PG_SCHEMA_VERSION]);
    else if (version !== PG_SCHEMA_VERSION) await client.query(`update ${schema}.schema_version set version = $1`, [PG_SCHEMA_VERSION]);
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error instanceof StoreError ? error : new StoreError(`postgres schema "${schema}"`, `cannot be migrated: ${(error as Error).message}`, { cause: error });
  } finally {
    client.release();
  }
}
