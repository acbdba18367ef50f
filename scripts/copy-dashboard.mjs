// Part of `npm run build`: the dashboard ships as the hand-written files in src/dashboard
// (no bundler), copied next to the compiled server; and the CLI entry is made executable.
import { chmodSync, cpSync, rmSync } from 'node:fs';

rmSync('dist/dashboard', { recursive: true, force: true });
cpSync('src/dashboard', 'dist/dashboard', { recursive: true });
chmodSync('dist/cli/main.js', 0o755);
