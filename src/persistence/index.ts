import type { StoreError } from '../errors.js';
import { MemoryStore } from './memory-store.js';
import { SqliteStore } from './sqlite-store.js';
import type { AuditRetention, SqliteSynchronous, Store } from './store.js';

export { MemoryStore } from './memory-store.js';
export { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
export type * from './store.js';

export type StoreConfig =
  | { type: 'memory' }
  | { type: 'sqlite'; path: string; synchronous?: SqliteSynchronous; flushIntervalMs?: number; retainFinishedMs?: number };

/** Who a store is opened for: the process's node id, and how its generated task ids are made. */
export interface StoreContext {
  nodeId: string;
  idOfSeq(seq: number): string;
  /** Told of a failed commit (the writes stay queued and are retried) or a row that cannot be read. */
  onError(error: StoreError): void;
}

/** The store the options ask for; not opened yet (`open()` loads better-sqlite3 for a SQLite store). */
export function createStore(options: StoreConfig, audit: AuditRetention, context: StoreContext): Store {
  if (options.type === 'memory') return new MemoryStore(audit, context.idOfSeq);
  return new SqliteStore({
    path: options.path,
    synchronous: options.synchronous,
    flushIntervalMs: options.flushIntervalMs,
    retainFinishedMs: options.retainFinishedMs,
    audit,
    onCommitError: context.onError,
    nodeId: context.nodeId,
  });
}
