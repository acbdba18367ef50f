// A real crash: a child process running 2,000 tasks on a SQLite store is killed with SIGKILL
// mid-run; a second process on the same file finishes the work. The file is then read directly.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

// Kept in step with test/fixtures/crash-worker.mjs.
const TASKS = 2_000;
const DOOMED = 20;
const ROUNDS = 4;
const HASHES_PER_ROUND = 100;
const HELD = ['task-100', 'task-200', 'task-280'];
const TERMINAL = new Set(['completed', 'failed', 'timed-out', 'cancelled']);

const WORKER = fileURLToPath(new URL('./fixtures/crash-worker.mjs', import.meta.url));

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The guard killed it: it hung. */
  timedOut: boolean;
}

interface Child {
  kill(): void;
  /** Resolves with the first stdout line starting with `prefix`; rejects if the child exits first. */
  line(prefix: string): Promise<string>;
  exit: Promise<Exit>;
}

/** Starts the worker in a fresh Node process, killed after `guardMs` so a hang fails the test. */
function runWorker(dbPath: string, mode: 'first' | 'second', guardMs = 20_000): Child {
  const child = spawn(process.execPath, [WORKER, dbPath, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => (stdout += `${line}\n`));
  const guard = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, guardMs);
  const exit = new Promise<Exit>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
  return {
    kill: () => child.kill('SIGKILL'),
    line: (prefix) =>
      new Promise((resolve, reject) => {
        lines.on('line', (line) => {
          if (line.startsWith(prefix)) resolve(line);
        });
        void exit.then((e) => reject(new Error(`the worker exited (${e.code ?? e.signal}) before printing '${prefix}': ${e.stderr}`)));
      }),
    exit,
  };
}

/** What the fixture's handler computes for a task, with or without a resume half-way. */
function digestOf(taskId: string): string {
  let digest = taskId;
  for (let i = 0; i < ROUNDS * HASHES_PER_ROUND; i++) digest = createHash('sha256').update(digest).digest('hex');
  return digest;
}

interface Summary {
  recoveredAtStart: number;
  deadLettersAtStart: string[];
  resumed: { taskId: string; attempt: number; resumeState: { half: boolean; round: number; digest: string } }[];
  totalCompleted: number;
  totalFailed: number;
}

interface TaskRow {
  id: string;
  status: string;
  attempt: number;
  result: string | null;
}

describe('crash recovery with real processes', () => {
  let dir = '';
  let dbPath = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'crash-recovery-'));
    dbPath = join(dir, 'orchestrator.db');
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('a process killed mid-run leaves every task to be finished exactly once by the next', async () => {
    const normalIds = Array.from({ length: TASKS }, (_, i) => `task-${i}`);
    const doomedIds = Array.from({ length: DOOMED }, (_, i) => `doomed-${i}`);

    // 1. The first process runs until enough has finished, then dies without any shutdown.
    const first = runWorker(dbPath, 'first');
    const progress = await first.line('progress ');
    first.kill();
    const firstExit = await first.exit;
    expect(firstExit.timedOut).toBe(false);
    expect(firstExit.signal).toBe('SIGKILL');
    expect(Number(progress.split(' ')[1])).toBeGreaterThanOrEqual(300);

    // What the crash left: unfinished rows, among them the held tasks, running with their checkpoint.
    const crashed = new Database(dbPath, { readonly: true, fileMustExist: true });
    const unfinished = crashed.prepare("SELECT id, status, attempt FROM tasks WHERE status IN ('queued', 'running', 'retrying')").all() as TaskRow[];
    const checkpointedBefore = new Set((crashed.prepare('SELECT task_id FROM checkpoints').all() as { task_id: string }[]).map((r) => r.task_id));
    crashed.close();
    const unfinishedIds = new Set(unfinished.map((r) => r.id));
    for (const id of HELD) {
      expect(unfinished.find((r) => r.id === id)).toMatchObject({ status: 'running', attempt: 1 });
      expect(checkpointedBefore.has(id)).toBe(true);
    }

    // 2. The second process recovers and runs until idle.
    const second = runWorker(dbPath, 'second');
    const secondExit = await second.exit;
    expect(secondExit.timedOut, secondExit.stderr).toBe(false);
    expect(secondExit.code, secondExit.stderr).toBe(0);
    const summary = JSON.parse(secondExit.stdout.trim().split('\n').at(-1)!) as Summary;
    expect(summary.recoveredAtStart).toBe(unfinished.length);
    expect(summary.totalCompleted + summary.totalFailed).toBe(unfinished.length);
    // Dead letters of the first process survived the kill.
    expect(summary.deadLettersAtStart.length).toBeGreaterThan(0);
    for (const id of summary.deadLettersAtStart) expect(doomedIds).toContain(id);

    // 3. The file, read directly.
    const db = new Database(dbPath, { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare('SELECT id, status, attempt, result FROM tasks').all() as TaskRow[];
      expect(rows).toHaveLength(TASKS + DOOMED);
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (const id of normalIds) {
        const row = byId.get(id);
        expect(row?.status, id).toBe('completed');
        // Resumed or not, the work came out as if it had never been interrupted.
        expect((JSON.parse(row!.result!) as { digest: string }).digest, id).toBe(digestOf(id));
      }
      for (const id of doomedIds) expect(byId.get(id)?.status, id).toBe('failed');

      // Exactly one terminal audit entry per task: nothing finished twice, nothing lost.
      const terminal = new Map<string, string[]>();
      for (const { task_id, type } of db.prepare('SELECT task_id, type FROM audit WHERE task_id IS NOT NULL ORDER BY seq').all() as { task_id: string; type: string }[]) {
        if (TERMINAL.has(type)) terminal.set(task_id, [...(terminal.get(task_id) ?? []), type]);
      }
      for (const id of normalIds) expect(terminal.get(id), id).toEqual(['completed']);
      for (const id of doomedIds) expect(terminal.get(id), id).toEqual(['failed']);
      expect(terminal.size).toBe(TASKS + DOOMED);

      // Every unfinished task was recovered once, and those with a checkpoint resumed from it.
      const recovered = (db.prepare("SELECT task_id, details FROM audit WHERE type = 'recovered'").all() as { task_id: string; details: string }[]).map((r) => ({
        taskId: r.task_id,
        details: JSON.parse(r.details) as { previousStatus: string; resumeState: boolean },
      }));
      expect(recovered.map((r) => r.taskId).sort()).toEqual([...unfinishedIds].sort());
      const resumable = recovered.filter((r) => r.details.resumeState).map((r) => r.taskId);
      expect(resumable).toEqual(expect.arrayContaining(HELD));
      expect(summary.resumed.map((r) => r.taskId).sort()).toEqual([...resumable].sort());
      for (const run of summary.resumed) {
        expect(checkpointedBefore.has(run.taskId)).toBe(true);
        expect(run.resumeState).toMatchObject({ half: true, round: ROUNDS / 2 - 1 });
        const row = byId.get(run.taskId)!;
        expect(JSON.parse(row.result!)).toMatchObject({ resumed: true, attempt: run.attempt });
      }
      // A run cut short by the crash counts as an attempt.
      for (const { taskId, details } of recovered) {
        const before = unfinished.find((r) => r.id === taskId)!;
        expect(details.previousStatus).toBe(before.status);
        if (before.status === 'running' && normalIds.includes(taskId)) {
          expect((JSON.parse(byId.get(taskId)!.result!) as { attempt: number }).attempt, taskId).toBe(before.attempt + 1);
        }
      }

      // The dead letters of the always-failing tasks, from both processes; no checkpoint left behind.
      const deadLetters = db.prepare('SELECT task_id, attempts FROM dead_letters').all() as { task_id: string; attempts: number }[];
      expect(deadLetters.map((d) => d.task_id).sort()).toEqual([...doomedIds].sort());
      expect(deadLetters.every((d) => d.attempts === 1)).toBe(true);
      expect(db.prepare('SELECT count(*) AS n FROM checkpoints').get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
  });
});
