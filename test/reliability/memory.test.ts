// A million tasks through the in-memory engine with subscribers (issue 13): the heap after them
// (full collections, --expose-gc) is within 10% of the heap before. Run in a child process so the
// measurement sees only the engine. MEMORY_TASKS=<n> runs fewer (or more) tasks.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const FIXTURE = fileURLToPath(new URL('./memory-fixture.mjs', import.meta.url));

it('keeps the heap within 10% after a million tasks with subscribers', { timeout: 300_000 }, async () => {
  const child = spawn(process.execPath, ['--expose-gc', FIXTURE], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  expect(code).toBe(0);
  const figures = JSON.parse(output) as { tasks: number; before: number; after: number; seconds: number; completed: number; failed: number; observed: number; totalCompleted: number; totalFailed: number };
  console.log(`memory: ${figures.tasks} tasks in ${figures.seconds.toFixed(1)} s; heap ${(figures.before / 1e6).toFixed(1)} MB before, ${(figures.after / 1e6).toFixed(1)} MB after`);
  expect(figures.completed + figures.failed).toBe(figures.tasks);
  expect(figures.totalCompleted).toBe(figures.completed);
  expect(figures.totalFailed).toBe(figures.failed);
  expect(figures.observed).toBe(Math.ceil(figures.tasks / 1000));
  expect(figures.after).toBeLessThanOrEqual(figures.before * 1.1);
});
