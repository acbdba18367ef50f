import type { StoreError } from '../errors.js';
import { MemoryStore } from './memory-store.js';
import { SqliteStore } from './sqlite-store.js';
import type { AuditRetention, SqliteSynchronous, Store } from './store.js';

export { MemoryStore, MEMORY_DEAD_LETTER_LIMIT } from './memory-store.js';
export { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
export type * from './store.js';

export type StoreConfig =
  | { type: 'memory' }
  | { type: 'sqlite'; path: string; synchronous?: SqliteSynchronous; flushIntervalMs?: number };

/** The store the options ask for; not opened yet (`open()` loads better-sqlite3 for a SQLite store). */
export function createStore(options: StoreConfig, audit: AuditRetention, onCommitError?: (error: StoreError) => void): Store {
  if (options.type === 'memory') return new MemoryStore(audit);
  return new SqliteStore({ path: options.path, synchronous: options.synchronous, flushIntervalMs: options.flushIntervalMs, audit, onCommitError });
}
