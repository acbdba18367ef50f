#!/usr/bin/env node
// The `porch` command (package.json `bin`). Everything is in program.ts; this file only runs it.
import { runCli } from './program.js';

// A reader that went away (`porch demo | head`) is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
}

// The live view hides the cursor while it draws: show it again however porch ends.
process.on('exit', () => {
  if (process.stdout.isTTY) process.stdout.write('\x1b[?25h');
});

const code = await runCli(process.argv);
// Exit once stdout and stderr are flushed, even if an agents file left a handle open (a pool, a timer).
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
