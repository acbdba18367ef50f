// Store faults end to end, each a regression test: unreadable rows at recovery, results JSON
// cannot carry, the memory store's audit trail and what it keeps alive, and two processes on
// one SQLite file. Real files, and real child processes where a process is the subject.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentRole, createParallelOrchestrator, NonRetryableError, type ParallelOrchestrator } from '../dist/index.js';
import { settle, useOrchestrators } from './helpers.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

let dir = '';
let path = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'store-faults-'));
  path = join(dir, 'tasks.db');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const orchestrator = useOrchestrators<ParallelOrchestrator>(createParallelOrchestrator);

/** Runs `use` on a connection of the test's own, as another process would. */
function raw<T>(use: (db: Database.Database) => T): T {
  const db = new Database(path);
  try {
    return use(db);
  } finally {
    db.close();
  }
}

interface Child {
  /** Resolves with the first stdout line starting with `prefix`; rejects if the child exits first. */
  line(prefix: string): Promise<string>;
  kill(): void;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** A fixture in a fresh Node process, killed after `guardMs` so that a hang fails the test. */
function child(args: string[], guardMs = 30_000): Child {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const lines = createInterface({ input: proc.stdout });
  lines.on('line', (line) => (stdout += `${line}\n`));
  const guard = setTimeout(() => proc.kill('SIGKILL'), guardMs);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    line: (prefix) =>
      new Promise((resolve, reject) => {
        lines.on('line', (line) => {
          if (line.startsWith(prefix)) resolve(line);
        });
        void exit.then((e) => reject(new Error(`the child exited (${e.code ?? e.signal}) before printing '${prefix}': ${e.stderr}`)));
      }),
    kill: () => proc.kill('SIGKILL'),
    exit,
  };
}

/** The last stdout line of a child that exited cleanly, as JSON. */
async function summary<T>(c: Child): Promise<T> {
  const { code, stdout, stderr } = await c.exit;
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
}

describe('unreadable rows at recovery', () => {
  it('dead-letters a task whose payload or checkpoint cannot be read, runs every other, and loses nothing to a shutdown in between', async () => {
    const store = { type: 'sqlite' as const, path };
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const first = await orchestrator({ store });
    for (const id of ids) first.submit({ id, type: 'work', capabilities: ['work'], payload: { id }, waitForAgent: true });
    await first.checkpoint('d', { step: 1 });
    await first.checkpoint('e', { step: 2 });
    await first.flush();
    await first.shutdown({ graceful: false });
    raw((db) => {
      db.prepare('UPDATE tasks SET payload = ? WHERE id = ?').run('{"id":"b', 'b');
      db.prepare('UPDATE checkpoints SET state = ? WHERE task_id = ?').run('{step:', 'd');
    });

    // start() resolves; the two bad rows are dead letters naming the file and the task.
    const second = await orchestrator({ store });
    expect(second.getStats().recovered).toBe(5);
    const dead = await second.deadLetters();
    expect(dead.map((d) => d.taskId).sort()).toEqual(['b', 'd']);
    for (const d of dead) {
      expect(d.code).toBe('STORE_ERROR');
      expect(d.error.message).toContain(path);
      expect(d.error.message).toMatch(new RegExp(`task ${d.taskId} cannot be read back`));
    }
    // Stopped before any agent came: the other three stay in the file.
    await second.shutdown({ graceful: false });

    const third = await orchestrator({ store });
    expect(third.getStats().recovered).toBe(3);
    third.registerAgent({
      agentId: 'worker',
      role: AgentRole.EXECUTOR,
      capabilities: ['work'],
      handler: async (task, ctx) => ({ id: (task.payload as { id: string }).id, resumed: ctx.resumeState ?? null }),
    });
    const results = await Promise.all(['a', 'c', 'e'].map((id) => third.observe(id)!.result()));
    expect(results.map((r) => r.result)).toEqual([
      { id: 'a', resumed: null },
      { id: 'c', resumed: null },
      { id: 'e', resumed: { step: 2 } },
    ]);
    expect((await third.deadLetters()).map((d) => d.taskId).sort()).toEqual(['b', 'd']);
    await third.shutdown();
    const rows = raw((db) => db.prepare('SELECT id, status FROM tasks ORDER BY id').all());
    expect(rows).toEqual([
      { id: 'a', status: 'completed' },
      { id: 'b', status: 'failed' },
      { id: 'c', status: 'completed' },
      { id: 'd', status: 'failed' },
      { id: 'e', status: 'completed' },
    ]);
  });
});

describe('results JSON cannot carry', () => {
  it('fail their attempt for good, and the row and the trail say failed, though the submit was not committed yet', async () => {
    // A long batch interval: the submit's row is still queued when the result comes.
    const o = await orchestrator({ store: { type: 'sqlite', path, flushIntervalMs: 1000 } });
    o.registerAgent({ agentId: 'counter', role: AgentRole.EXECUTOR, capabilities: ['count'], handler: async () => ({ total: 10n }) });
    const outcome = await settle(o.submit({ id: 'big', type: 'count', capabilities: ['count'], retry: { maxAttempts: 3 } }).result());
    expect(outcome.ok).toBe(false);
    const error = (outcome as { error: Error }).error;
    expect(error).toBeInstanceOf(NonRetryableError);
    expect(error.message).toMatch(/result of task big cannot be stored as JSON/);
    await expect(o.flush()).resolves.toBeUndefined();

    expect(await o.findTask('big')).toMatchObject({ status: 'failed', attempt: 1, error: { name: 'NonRetryableError', code: 'NON_RETRYABLE' } });
    expect((await o.history('big')).map((e) => e.type)).toEqual(['submitted', 'started', 'failed', 'dead-lettered']);
    await o.shutdown();
    expect(raw((db) => db.prepare('SELECT status, attempt, result FROM tasks WHERE id = ?').get('big'))).toEqual({ status: 'failed', attempt: 1, result: null });
    expect(raw((db) => db.prepare('SELECT task_id FROM dead_letters').all())).toEqual([{ task_id: 'big' }]);
  });
});

describe('the memory store keeps ids, not tasks', () => {
  it('holds no result alive past retention and after shutdown (2,000 tasks with 100 KB results)', async () => {
    const run = child(['--expose-gc', fixture('audit-heap.mjs')], 60_000);
    const heap = await summary<{ baseline: number; afterRun: number; afterShutdown: number; completed: number }>(run);
    expect(heap.completed).toBe(2_100);
    // 200 MB of results went through; the trail's 6,000 entries of ids are a few hundred KB.
    const MB = 1024 * 1024;
    expect((heap.afterRun - heap.baseline) / MB).toBeLessThan(20);
    expect((heap.afterShutdown - heap.baseline) / MB).toBeLessThan(10);
  });
});

describe('two processes on one SQLite file', () => {
  it("a second process does not take the first one's tasks while it lives, and a new one takes them once it is killed", async () => {
    const first = child([fixture('owner-worker.mjs'), path, 'hold']);
    const pid = Number((await first.line('ready ')).split(' ')[1]);
    try {
      const rows = raw((db) => db.prepare("SELECT id, status, owner FROM tasks WHERE id LIKE 'job-%' ORDER BY id").all() as { status: string; owner: string }[]);
      expect(rows.map((r) => r.status).sort()).toEqual(['queued', 'queued', 'queued', 'queued', 'running', 'running']);
      const owner = rows[0]!.owner;
      expect(rows.every((r) => r.owner === owner)).toBe(true);
      expect(raw((db) => db.prepare('SELECT pid FROM nodes WHERE id = ?').get(owner))).toEqual({ pid });

      // Alive: its queued and running tasks stay its own.
      expect(await summary(child([fixture('owner-worker.mjs'), path, 'probe']))).toEqual({ recovered: 0 });
      expect(raw((db) => db.prepare("SELECT count(*) AS n FROM tasks WHERE owner = ? AND status IN ('queued', 'running')").get(owner))).toEqual({ n: 6 });
    } finally {
      first.kill();
    }
    expect((await first.exit).signal).toBe('SIGKILL');

    const next = await summary<{ recovered: number; completed: string[] }>(child([fixture('owner-worker.mjs'), path, 'finish']));
    expect(next).toEqual({ recovered: 6, completed: ['job-0', 'job-1', 'job-2', 'job-3', 'job-4', 'job-5'] });
    const done = raw((db) => db.prepare("SELECT id, status, attempt, result FROM tasks WHERE id LIKE 'job-%' ORDER BY id").all() as { attempt: number; result: string }[]);
    expect(done.every((r) => r.attempt === 1 || r.attempt === 2)).toBe(true);
    expect(done.filter((r) => r.attempt === 2)).toHaveLength(2);
    expect(done.map((r) => JSON.parse(r.result))).toEqual(done.map((r) => expect.stringMatching(new RegExp(`attempt ${r.attempt}$`))));
  });
});
