// A real crash: workflows running in a child process on a SQLite store, killed with SIGKILL in
// the middle of a run and in the middle of a rollback; a second process on the same file
// carries both on. Executions are counted from a log the steps append to, not from memory.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WorkflowResult } from '../src/index.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/workflow-crash.mjs', import.meta.url));

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts the fixture; killed after `guardMs` so that a hang fails the test instead of stalling it. */
function start(args: string[], guardMs = 30_000) {
  const child = spawn(process.execPath, [FIXTURE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => (stdout += `${line}\n`));
  const guard = setTimeout(() => child.kill('SIGKILL'), guardMs);
  const exit = new Promise<Exit>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr });
    });
  });
  const line = (prefix: string) =>
    new Promise<string>((resolve, reject) => {
      lines.on('line', (l) => {
        if (l.startsWith(prefix)) resolve(l);
      });
      void exit.then((e) => reject(new Error(`the fixture exited (${e.code ?? e.signal}) before printing '${prefix}': ${e.stderr}`)));
    });
  return { kill: () => child.kill('SIGKILL'), line, exit };
}

function counts(logPath: string): Record<string, number> {
  const out: Record<string, number> = {};
  if (!existsSync(logPath)) return out;
  for (const line of readFileSync(logPath, 'utf8').split('\n').filter(Boolean)) out[line] = (out[line] ?? 0) + 1;
  return out;
}

describe('workflows survive SIGKILL (SQLite)', () => {
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'workflow-crash-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('a run killed mid-run resumes without re-running done steps; one killed mid-rollback resumes its rollback', async () => {
    const db = join(dir, 'orchestrator.db');
    const log = join(dir, 'executions.log');

    const first = start([db, log, 'first']);
    await first.line('holding');
    first.kill();
    const firstExit = await first.exit;
    expect(firstExit.signal).toBe('SIGKILL');
    expect(counts(log)).toEqual({
      'step extract': 1,
      'step transform-a': 1,
      'step transform-b': 1,
      'step enrich': 1,
      'step load': 1,
      'step reserve': 1,
      'step charge': 1,
      'step ship': 1,
      'step confirm': 1,
      'undo ship': 1,
      'undo charge': 1,
    });

    const second = start([db, log, 'second']);
    const output = await second.line('results ');
    const secondExit = await second.exit;
    expect(secondExit.code, secondExit.stderr).toBe(0);
    expect(secondExit.stdout).toMatch(/^recovered [1-9]/m);
    const results = JSON.parse(output.slice('results '.length)) as Record<string, WorkflowResult>;

    const etl = results['etl-1']!;
    expect(etl.status).toBe('completed');
    expect(etl.results).toEqual({
      extract: 'extract:',
      'transform-a': 'transform-a:extract',
      'transform-b': 'transform-b:extract',
      enrich: 'enriched transform-a:extract transform-b:extract',
      load: 'load:enrich',
      report: 'report of load:enrich',
    });

    const saga = results['saga-1']!;
    expect(saga).toMatchObject({ status: 'failed', failedStep: 'confirm', rolledBack: true, compensated: ['ship', 'charge', 'reserve'] });
    expect(saga.error?.message).toBe('customer unreachable');

    expect(counts(log)).toEqual({
      // Completed before the kill: not run again.
      'step extract': 1,
      'step transform-a': 1,
      'step transform-b': 1,
      'step enrich': 1,
      'step reserve': 1,
      'step charge': 1,
      'step ship': 1,
      'step confirm': 1,
      'undo ship': 1,
      // Running at the kill: run again (at least once).
      'step load': 2,
      'undo charge': 2,
      // After the kill: once.
      'step report': 1,
      'undo reserve': 1,
    });
  });
});
