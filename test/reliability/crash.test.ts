// Crash matrix: real processes (test/fixtures/reliability/crash-node.mjs) killed with SIGKILL at
// seeded random points (during start(), while submitting, after a checkpoint, after a completion,
// during shutdown(), at a random time), on SQLite (restarted on the same file) and PostgreSQL (a
// victim node restarted next to a surviving one). Afterwards, read from the database itself: no
// committed task is lost, each has one row and one terminal audit entry, no run resumed from a
// checkpoint older than one already committed, and a task that kills its process every time it
// runs ends dead-lettered after maxAttempts.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { DATABASE_URL, dropSchema, postgresAvailable, sql, uniqueSchema } from '../pg-helpers.js';
import { seededRandom } from '../helpers.js';

// Replay a run: CRASH_SEED=<seed> npx vitest run test/reliability/crash.test.ts
const SEED = Number(process.env.CRASH_SEED ?? Date.now() % 2 ** 31);
const ROUNDS = 8;
const TASKS_PER_ROUND = 6;
const STEPS = 4;
const NODE = fileURLToPath(new URL('../fixtures/reliability/crash-node.mjs', import.meta.url));
console.log(`crash.test.ts: seed ${SEED}, ${ROUNDS} kill rounds of ${TASKS_PER_ROUND} tasks per store`);

interface Line {
  node: string;
  t: number;
  e: string;
  id?: string;
  attempt?: number;
  resume?: number | null;
  step?: number;
  attempts?: number;
  code?: string;
  message?: string;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

interface Child {
  lines: Line[];
  /** Calls `listener` with every line, those already printed first. */
  onLine(listener: (line: Line) => void): void;
  kill(): void;
  exit: Promise<Exit>;
  exited: boolean;
}

const children = new Set<Child>();
afterAll(() => {
  for (const child of children) child.kill();
});

/** Starts a crash node; a guard kills it after `guardMs` so a hang fails the test instead of stalling it. */
function startNode(env: Record<string, string>, guardMs = 30_000): Child {
  const proc = spawn(process.execPath, [NODE], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DATABASE_URL, ...env } });
  const lines: Line[] = [];
  const listeners: ((line: Line) => void)[] = [];
  let stderr = '';
  proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  createInterface({ input: proc.stdout }).on('line', (text) => {
    const line = JSON.parse(text) as Line;
    lines.push(line);
    for (const listener of listeners) listener(line);
  });
  const guard = setTimeout(() => proc.kill('SIGKILL'), guardMs);
  const child: Child = {
    lines,
    onLine(listener) {
      for (const line of lines) listener(line);
      listeners.push(listener);
    },
    kill: () => {
      if (!child.exited) proc.kill('SIGKILL');
    },
    exited: false,
    exit: new Promise<Exit>((resolve, reject) => {
      proc.on('error', reject);
      proc.on('close', (code, signal) => {
        clearTimeout(guard);
        child.exited = true;
        children.delete(child);
        resolve({ code, signal, stderr });
      });
    }),
  };
  children.add(child);
  return child;
}

type KillPoint = 'start' | 'submit' | 'checkpoint' | 'complete' | 'shutdown' | 'time';
const KILL_POINTS: KillPoint[] = ['start', 'submit', 'checkpoint', 'complete', 'shutdown', 'time'];

interface Plan {
  point: KillPoint;
  /** Which line (submit, checkpoint, complete), or completions before the shutdown. */
  nth: number;
  /** ms after the trigger (start, shutdown, time). */
  delay: number;
}

/** The kill plans of a store: every kill point once in a seeded order, then seeded draws. */
function plansOf(rand: () => number): Plan[] {
  const order = [...KILL_POINTS].sort(() => rand() - 0.5);
  return Array.from({ length: ROUNDS }, (_, round) => {
    const point = order[round] ?? KILL_POINTS[Math.floor(rand() * KILL_POINTS.length)]!;
    const range = point === 'checkpoint' ? 12 : point === 'submit' ? TASKS_PER_ROUND - 1 : 4;
    return { point, nth: 1 + Math.floor(rand() * range), delay: Math.floor(rand() * (point === 'time' ? 400 : 40)) };
  });
}

/**
 * Runs one victim process and SIGKILLs it at its planned point (or, if the point never comes,
 * `fallbackMs` after it is ready). Resolves with whether the kill came at the planned point.
 */
async function killRound(env: Record<string, string>, plan: Plan, fallbackMs: number): Promise<{ child: Child; reached: boolean; exit: Exit }> {
  const child = startNode({ ...env, ...(plan.point === 'shutdown' && { STOP_AFTER: String(plan.nth) }) });
  let reached = false;
  let counted = 0;
  const at = (delay: number) => {
    reached = true;
    if (delay === 0) child.kill();
    else setTimeout(() => child.kill(), delay);
  };
  const trigger: Record<KillPoint, string> = { start: 'starting', submit: 'committed', checkpoint: 'cp', complete: 'done', shutdown: 'stopping', time: 'ready' };
  child.onLine((line) => {
    if (reached) return;
    if (line.e === 'ready') setTimeout(() => child.kill(), fallbackMs);
    if (line.e !== trigger[plan.point]) return;
    if (plan.point === 'submit' || plan.point === 'checkpoint' || plan.point === 'complete') {
      if (++counted === plan.nth) at(0);
    } else {
      at(plan.delay);
    }
  });
  const exit = await child.exit;
  return { child, reached, exit };
}

const TERMINAL_AUDIT = new Set(['completed', 'failed', 'timed-out', 'cancelled']);

interface Outcome {
  rows: { id: string; status: string; result: unknown }[];
  audit: { task_id: string; type: string }[];
  /** Tasks with a checkpoint row. */
  checkpoints: string[];
  deadLetters: { task_id: string; attempts: number; code: string }[];
}

/** What every process printed and the database holds, checked against the guarantees. */
function checkMatrix(lines: Line[], outcome: Outcome): void {
  const committed = new Set(lines.filter((l) => l.e === 'committed').map((l) => l.id!));
  expect(committed.size).toBeGreaterThan(0);
  const rows = new Map(outcome.rows.map((r) => [r.id, r]));
  expect(rows.size, 'one row per task').toBe(outcome.rows.length);
  // No committed task lost, and every task that made it to the store completed (none ran out of attempts).
  for (const id of committed) expect(rows.has(id), `committed task ${id} lost`).toBe(true);
  for (const row of outcome.rows) {
    expect(row.status, row.id).toBe('completed');
    expect(row.result, row.id).toMatchObject({ steps: STEPS });
  }
  // Exactly one terminal audit entry per task.
  const terminal = new Map<string, string[]>();
  for (const { task_id, type } of outcome.audit) if (TERMINAL_AUDIT.has(type)) terminal.set(task_id, [...(terminal.get(task_id) ?? []), type]);
  // (On PostgreSQL this entry used to be written after the outcome committed: a node killed in
  // between left a completed row without it. It now goes in the outcome's own statement.)
  for (const row of outcome.rows) expect(terminal.get(row.id), row.id).toEqual(['completed']);
  expect([...terminal.keys()].filter((id) => !rows.has(id)), 'terminal entries of tasks without a row').toEqual([]);
  // Checkpoints never go backwards: a run resumes from at least every checkpoint committed
  // before it began, and successive runs of a task resume from non-decreasing steps.
  const byTask = new Map<string, Line[]>();
  for (const line of lines) if (line.id !== undefined && (line.e === 'run' || line.e === 'cp')) byTask.set(line.id, [...(byTask.get(line.id) ?? []), line]);
  for (const [id, events] of byTask) {
    let committedStep = 0;
    let lastResume = 0;
    for (const event of [...events].sort((a, b) => a.t - b.t)) {
      if (event.e === 'cp') {
        committedStep = Math.max(committedStep, event.step!);
        continue;
      }
      const resume = event.resume ?? 0;
      // Same millisecond: order unknown, nothing to check.
      const before = events.filter((c) => c.e === 'cp' && c.t < event.t).reduce((max, c) => Math.max(max, c.step!), 0);
      expect(resume, `${id}: a run resumed from step ${resume} after step ${before} was committed`).toBeGreaterThanOrEqual(before);
      expect(resume, `${id}: resumed from step ${resume} after an earlier run resumed from ${lastResume}`).toBeGreaterThanOrEqual(lastResume);
      lastResume = resume;
    }
    expect(committedStep, id).toBeLessThanOrEqual(STEPS);
  }
  // Completed tasks release their checkpoints (on PostgreSQL in the outcome's statement as well).
  expect(outcome.checkpoints).toEqual([]);
}

function summary(store: string, plans: { plan: Plan; reached: boolean; exit: Exit }[], lines: Line[]): void {
  const kills = plans.map(({ plan, reached, exit }) => `${plan.point}${plan.point === 'submit' || plan.point === 'checkpoint' || plan.point === 'complete' || plan.point === 'shutdown' ? `#${plan.nth}` : `+${plan.delay}ms`}${reached ? '' : '(fallback)'}${exit.signal === 'SIGKILL' ? '' : `(exited ${exit.code})`}`);
  const runs = lines.filter((l) => l.e === 'run').length;
  const resumed = lines.filter((l) => l.e === 'run' && l.resume !== null).length;
  console.log(`crash.test.ts ${store}: seed ${SEED}; kills: ${kills.join(', ')}; ${lines.filter((l) => l.e === 'committed').length} committed, ${runs} runs, ${resumed} resumed from a checkpoint`);
}

function readSqlite(path: string): Outcome {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return {
      rows: (db.prepare('SELECT id, status, result FROM tasks').all() as { id: string; status: string; result: string | null }[]).map((r) => ({
        ...r,
        result: r.result === null ? null : JSON.parse(r.result),
      })),
      audit: db.prepare('SELECT task_id, type FROM audit WHERE task_id IS NOT NULL ORDER BY seq').all() as { task_id: string; type: string }[],
      checkpoints: (db.prepare('SELECT task_id FROM checkpoints').all() as { task_id: string }[]).map((r) => r.task_id),
      deadLetters: db.prepare('SELECT task_id, attempts, code FROM dead_letters').all() as { task_id: string; attempts: number; code: string }[],
    };
  } finally {
    db.close();
  }
}

async function readPostgres(schema: string): Promise<Outcome> {
  return {
    rows: await sql<{ id: string; status: string; result: unknown }>(`select id, status, result from ${schema}.tasks`),
    audit: await sql<{ task_id: string; type: string }>(`select task_id, type from ${schema}.audit where task_id is not null order by seq`),
    checkpoints: (await sql<{ task_id: string }>(`select task_id from ${schema}.checkpoints`)).map((r) => r.task_id),
    deadLetters: await sql<{ task_id: string; attempts: number; code: string }>(`select task_id, attempts, code from ${schema}.dead_letters`),
  };
}

/** Restarts the poison node until it reports the task dead-lettered; returns every line printed. */
async function poisonRuns(env: Record<string, string>): Promise<{ lines: Line[]; exits: Exit[] }> {
  const lines: Line[] = [];
  const exits: Exit[] = [];
  for (let spawnNo = 0; spawnNo < 6; spawnNo++) {
    const child = startNode({ ...env, MODE: 'poison', NODE: `poison-${spawnNo}`, SUBMIT: spawnNo === 0 ? '1' : '0' });
    const exit = await child.exit;
    lines.push(...child.lines);
    exits.push(exit);
    if (child.lines.some((l) => l.e === 'dead')) break;
  }
  return { lines, exits };
}

function checkPoison(lines: Line[], exits: Exit[], outcome: Outcome, firstRunMayGoUncounted: boolean): void {
  // Three counted runs, each killing its process; the next start (SQLite) or lease reaper
  // (PostgreSQL) dead-letters it. On SQLite a first run that kills at once may beat the commit of
  // its start (starts are batched; a recovered task's start is committed before its handler runs).
  const attempts = lines.filter((l) => l.e === 'poison').map((l) => l.attempt);
  expect(firstRunMayGoUncounted && attempts.length === 4 ? attempts.slice(1) : attempts).toEqual([1, 2, 3]);
  expect(exits.slice(0, attempts.length).every((e) => e.signal === 'SIGKILL')).toBe(true);
  expect(exits.at(-1), exits.at(-1)?.stderr).toMatchObject({ code: 0, signal: null });
  expect(lines.find((l) => l.e === 'dead')).toMatchObject({ attempts: 3, code: 'WORKER_CRASHED' });
  expect(outcome.rows).toEqual([expect.objectContaining({ id: 'poison', status: 'failed' })]);
  expect(outcome.deadLetters).toEqual([{ task_id: 'poison', attempts: 3, code: 'WORKER_CRASHED' }]);
  expect(outcome.audit.filter((a) => TERMINAL_AUDIT.has(a.type)).map((a) => a.type)).toEqual(['failed']);
}

describe('crash matrix: SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'crash-matrix-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('processes killed at seeded points lose no committed task, finish each once, and never resume from an older checkpoint', async () => {
    const db = join(dir, 'matrix.db');
    const matrix = plansOf(seededRandom(SEED));
    const lines: Line[] = [];
    const plans: { plan: Plan; reached: boolean; exit: Exit }[] = [];
    for (const [round, plan] of matrix.entries()) {
      const { child, reached, exit } = await killRound({ STORE: 'sqlite', DB: db, NODE: `r${round}`, MODE: 'work', ROUND: `r${round}`, TASKS: String(TASKS_PER_ROUND) }, plan, 1_500);
      lines.push(...child.lines);
      plans.push({ plan, reached, exit });
      // Killed, or (the point never came) finished on its own; never a crash of its own.
      expect(exit.signal === 'SIGKILL' || exit.code === 0, exit.stderr).toBe(true);
    }
    // The last process recovers what is left and runs it to the end.
    const last = startNode({ STORE: 'sqlite', DB: db, NODE: 'drain', MODE: 'work', ROUND: 'drain', TASKS: '0' });
    const exit = await last.exit;
    lines.push(...last.lines);
    expect(exit, exit.stderr).toMatchObject({ code: 0, signal: null });
    expect(last.lines.filter((l) => l.e === 'store-error')).toEqual([]);
    const outcome = readSqlite(db);
    summary('SQLite', plans, lines);
    checkMatrix(lines, outcome);
  });

  it('a task that SIGKILLs its process on every run ends dead-lettered after maxAttempts', async () => {
    const db = join(dir, 'poison.db');
    const { lines, exits } = await poisonRuns({ STORE: 'sqlite', DB: db });
    checkPoison(lines, exits, readSqlite(db), true);
  });
});

const available = await postgresAvailable();

describe.skipIf(!available)('crash matrix: PostgreSQL', () => {
  const schemas: string[] = [];
  afterAll(async () => {
    for (const schema of schemas) await dropSchema(schema);
  });

  it('a victim node killed at seeded points next to a surviving node: no committed task lost, each finished once, checkpoints never go backwards', async () => {
    const schema = uniqueSchema('po_crash');
    schemas.push(schema);
    const env = { STORE: 'postgres', SCHEMA: schema };
    const survivor = startNode({ ...env, NODE: 'survivor', MODE: 'serve' }, 80_000);
    await new Promise<void>((resolve) => survivor.onLine((l) => l.e === 'ready' && resolve()));
    const matrix = plansOf(seededRandom(SEED ^ 0x5eed));
    const lines: Line[] = [];
    const plans: { plan: Plan; reached: boolean; exit: Exit }[] = [];
    for (const [round, plan] of matrix.entries()) {
      const { child, reached, exit } = await killRound({ ...env, NODE: `victim-${round}`, MODE: 'work', ROUND: `p${round}`, TASKS: String(TASKS_PER_ROUND) }, plan, 1_000);
      lines.push(...child.lines);
      plans.push({ plan, reached, exit });
      expect(exit.signal === 'SIGKILL' || exit.code === 0, exit.stderr).toBe(true);
    }
    // The survivor finishes everything: the victims' leases expire and it takes their tasks over.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const n = (await sql<{ n: string }>(`select count(*) as n from ${schema}.tasks where status not in ('completed', 'failed', 'timeout', 'cancelled')`))[0]?.n;
      if (Number(n) === 0) break;
      expect(Date.now(), `${n} tasks still unfinished`).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    survivor.onLine(() => {});
    process.kill((survivor.lines.find((l) => l.e === 'ready') as unknown as { pid: number }).pid, 'SIGTERM');
    const exit = await survivor.exit;
    lines.push(...survivor.lines);
    expect(exit, exit.stderr).toMatchObject({ code: 0, signal: null });
    const outcome = await readPostgres(schema);
    summary('PostgreSQL', plans, lines);
    checkMatrix(lines, outcome);
  });

  it('a task that SIGKILLs every node that runs it ends dead-lettered after maxAttempts', async () => {
    const schema = uniqueSchema('po_poison');
    schemas.push(schema);
    const { lines, exits } = await poisonRuns({ STORE: 'postgres', SCHEMA: schema });
    checkPoison(lines, exits, await readPostgres(schema), false);
  });
});
