import { InvalidArgumentError } from 'commander';
import type { StoreOptions } from '../index.js';

/** `--store` as the orchestrator takes it. */
export type StoreSpec = StoreOptions;

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * `memory`, `sqlite:<path>` or a `postgres://` (or `postgresql://`) URL; a `schema` query
 * parameter of the URL becomes the store's `schema` option. @throws commander's InvalidArgumentError
 */
export function parseStore(value: string): StoreSpec {
  if (value === 'memory') return { type: 'memory' };
  if (value.startsWith('sqlite:')) {
    const path = value.slice('sqlite:'.length);
    if (path === '') throw new InvalidArgumentError('sqlite: needs a file path (sqlite:./porch.db)');
    return { type: 'sqlite', path };
  }
  if (/^postgres(ql)?:\/\//i.test(value)) {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new InvalidArgumentError('is not a valid postgres:// URL');
    }
    const schema = url.searchParams.get('schema');
    if (schema === null) return { type: 'postgres', connectionString: value };
    if (!SCHEMA_NAME.test(schema)) throw new InvalidArgumentError('schema must be a plain SQL identifier (letters, digits, _)');
    url.searchParams.delete('schema');
    return { type: 'postgres', connectionString: url.toString(), schema };
  }
  throw new InvalidArgumentError('must be memory, sqlite:<path> or a postgres:// URL');
}

/** The store for display: a postgres URL without its password. */
export function describeStore(store: StoreSpec): string {
  if (store.type === 'memory') return 'memory';
  if (store.type === 'sqlite') return `sqlite:${store.path}`;
  if (store.type !== 'postgres') return 'a store';
  try {
    const url = new URL(store.connectionString);
    if (url.password !== '') url.password = '***';
    return `${url.toString()}${store.schema === undefined ? '' : ` (schema ${store.schema})`}`;
  } catch {
    return 'postgres';
  }
}

/** An integer flag within bounds. */
export function integer(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = /^-?\d{1,16}$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be an integer ${min}..${max}`);
    return n;
  };
}

/** `--port`: 0 picks a free port. */
export const parsePort = integer(0, 65535);

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `--since`: an ISO date or time (`2025-01-31`, `2025-01-31T12:00:00Z`), a duration ago (`90s`,
 * `15m`, `2h`, `7d`) or epoch milliseconds; as epoch ms. `now` is passed in for tests.
 */
export function parseSince(value: string, now: number = Date.now()): number {
  const ago = /^(\d{1,9})(ms|s|m|h|d)$/.exec(value.trim());
  if (ago !== null) return now - Number(ago[1]) * UNITS[ago[2]!]!;
  if (/^\d{12,15}$/.test(value.trim())) return Number(value);
  if (/^\d{4}-\d{2}-\d{2}/.test(value.trim())) {
    const time = Date.parse(value);
    if (Number.isFinite(time)) return time;
  }
  throw new InvalidArgumentError('must be a date (2025-01-31, 2025-01-31T12:00:00Z), a duration ago (90s, 15m, 2h, 7d) or epoch ms');
}
