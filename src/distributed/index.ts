import type { StoreError } from '../errors.js';
import type { PostgresStoreOptions } from '../options.js';
import type { SharedSourceHost } from '../queue/work-source.js';
import type { SignatureIndex } from '../queue/lanes.js';
import { PgBackend } from './pg-backend.js';
import { PostgresStore } from './pg-store.js';
import { PostgresWorkSource, type SharedTask } from './pg-work-source.js';

export { PostgresWorkSource, type SharedTask } from './pg-work-source.js';
export { PostgresStore } from './pg-store.js';
export type { ClusterNode } from './pg-backend.js';
export type { Message } from './pg-messages.js';
export { fits } from './pg-messages.js';

const PG_DEFAULTS = {
  schema: 'parallel_orchestrator',
  leaseMs: 5_000,
  pollIntervalMs: 2_000,
  prefetch: 500,
  maxBatch: 500,
  poolSize: 8,
} as const;

/** The store and the work source of one node on a shared PostgreSQL schema, sharing one pool. */
export function createPostgresBackend<T extends SharedTask<T>>(
  options: PostgresStoreOptions,
  context: {
    nodeId: string;
    agingMs: number;
    maxSize: number;
    audit: { enabled: boolean; maxEvents: number; retainMs: number };
    onError(error: StoreError): void;
    signatures: SignatureIndex;
  },
  host: SharedSourceHost<T>,
): { store: PostgresStore; source: PostgresWorkSource<T> } {
  const backend = new PgBackend(
    {
      connectionString: options.connectionString,
      schema: options.schema ?? PG_DEFAULTS.schema,
      leaseMs: options.leaseMs ?? PG_DEFAULTS.leaseMs,
      pollIntervalMs: options.pollIntervalMs ?? PG_DEFAULTS.pollIntervalMs,
      prefetch: options.prefetch ?? PG_DEFAULTS.prefetch,
      maxBatch: options.maxBatch ?? PG_DEFAULTS.maxBatch,
      poolSize: options.poolSize ?? PG_DEFAULTS.poolSize,
      agingMs: context.agingMs,
      audit: context.audit,
    },
    context.nodeId,
    context.onError,
  );
  const source = new PostgresWorkSource<T>(backend, { maxSize: context.maxSize, signatures: context.signatures }, host);
  const store = new PostgresStore(
    backend,
    () => source.open(),
    () => source.close(),
    () => backend.close(),
    () => source.flush(),
  );
  return { store, source };
}
