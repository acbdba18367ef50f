import type { Terminal } from './terminal.js';

/** What every command gets: where to write, the environment, and a way to report its exit code. */
export interface CliContext {
  readonly term: Terminal;
  readonly env: NodeJS.ProcessEnv;
  /** Sets the exit code porch ends with (the highest one set wins, so a failure is never masked). */
  exit(code: number): void;
}
