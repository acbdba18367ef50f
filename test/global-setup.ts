import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// Thread agents, examples and child-process tests run the built package (worker threads load
// dist/workers/thread-main.js), so the suite builds once before any test file runs.
export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' });
}
