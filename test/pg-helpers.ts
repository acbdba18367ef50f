import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The PostgreSQL server of the tests: DATABASE_URL, or the local one every developer machine runs. */
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Whether PostgreSQL answers. Without it the PostgreSQL tests are skipped with a loud message,
 * except in CI (`CI=true`), where an unreachable server fails the run.
 */
export async function postgresAvailable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch (error) {
    if (process.env.CI === 'true') throw new Error(`PostgreSQL is not reachable at ${DATABASE_URL} (CI=true makes that a failure): ${(error as Error).message}`, { cause: error });
    console.warn(`\n!!! PostgreSQL is not reachable at ${DATABASE_URL}: the PostgreSQL tests are SKIPPED (${(error as Error).message})\n`);
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A fresh, unique schema name (the library creates the schema on start). */
export function uniqueSchema(prefix = 'po_test'): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

/** Runs SQL against the test database (setup, inspection, faults). */
export async function sql<R = Record<string, unknown>>(text: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as R[];
  } finally {
    await client.end();
  }
}

export async function dropSchema(schema: string): Promise<void> {
  await sql(`drop schema if exists ${schema} cascade`);
}
