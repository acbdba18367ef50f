// Model-based fuzzing (issue 13): seeded random programs of submit, submitAsync, cancel, handler
// outcomes, timeouts, retries, agent changes, breaker trips, thread crashes and shutdowns, played
// against the memory, SQLite and PostgreSQL stores. Rules checked: model-harness.ts. A failure
// prints fast-check's seed and shrunk counterexample; FUZZ_SEED and FUZZ_RUNS replay or widen it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DATABASE_URL, dropSchema, postgresAvailable, uniqueSchema } from '../pg-helpers.js';
import { latePorts, programArb, runProgram, type Backend, type Program } from './model-harness.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261130);
const RUNS = Number(process.env.FUZZ_RUNS ?? 0);

const memory: Backend = { name: 'memory', open: async () => ({ store: { type: 'memory' }, cleanup: async () => {} }) };
const sqlite: Backend = {
  name: 'sqlite',
  open: async () => {
    const dir = await mkdtemp(join(tmpdir(), 'porch-model-'));
    return { store: { type: 'sqlite', path: join(dir, 'tasks.db') }, cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
};
const postgres: Backend = {
  name: 'postgres',
  open: async () => {
    const schema = uniqueSchema('po_model');
    return { store: { type: 'postgres', connectionString: DATABASE_URL, schema }, cleanup: () => dropSchema(schema) };
  },
};

async function fuzz(backend: Backend, numRuns: number, maxOps: number): Promise<void> {
  let tasks = 0;
  let maxWithAbandoned = 0;
  await fc.assert(
    fc.asyncProperty(programArb(maxOps), async (program) => {
      const figures = await runProgram(program, backend);
      tasks += figures.tasks;
      maxWithAbandoned = Math.max(maxWithAbandoned, figures.maxWithAbandoned);
    }),
    // A program that hangs fails (and shrinks) rather than the whole test timing out.
    { seed: SEED, numRuns: RUNS || numRuns, timeout: 15_000 },
  );
  console.log(`model fuzz ${backend.name}: seed ${SEED}, ${RUNS || numRuns} programs, ${tasks} tasks; most handlers alive at once, abandoned stuck ones included: ${maxWithAbandoned}; programs so far whose thread port closed after shutdown() resolved: ${latePorts}`);
  expect(tasks).toBeGreaterThan(0);
}

// FUZZ_REPLAY='<counterexample JSON>' FUZZ_BACKEND=sqlite plays one program FUZZ_RUNS times (default 20).
const REPLAY = process.env.FUZZ_REPLAY;
const BACKENDS = { memory, sqlite, postgres };

describe.runIf(REPLAY !== undefined)('replay of one program', () => {
  it('holds every rule', { timeout: 600_000 }, async () => {
    const program = JSON.parse(REPLAY!) as Program;
    const backend = BACKENDS[(process.env.FUZZ_BACKEND ?? 'memory') as keyof typeof BACKENDS];
    for (let i = 0; i < (RUNS || 20); i++) await runProgram(program, backend);
  });
});

describe.skipIf(REPLAY !== undefined)('model-based fuzzing', () => {
  it('memory store', { timeout: 300_000 }, () => fuzz(memory, 60, 30));
  it('SQLite store (a real file)', { timeout: 300_000 }, () => fuzz(sqlite, 30, 25));
  it('PostgreSQL store (a unique schema)', { timeout: 300_000 }, async (ctx) => {
    if (!(await postgresAvailable())) ctx.skip();
    await fuzz(postgres, 25, 25);
  });
});
