import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import type { CliContext } from './context.js';
import { cancelCommand } from './commands/cancel.js';
import { demoCommand } from './commands/demo.js';
import { impactCommand } from './commands/impact.js';
import { inspectCommand } from './commands/inspect.js';
import { requeueCommand } from './commands/requeue.js';
import { runCommand } from './commands/run.js';
import { serveCommand } from './commands/serve.js';
import { workerCommand } from './commands/worker.js';
import { processTerminal, type Terminal } from './terminal.js';
import { EXIT, UsageError } from './usage-error.js';

/** Adds a command to porch: each lives in its own module under `commands/` and returns a `Command`. */
type CommandFactory = (ctx: CliContext) => Command;

/** The commands of porch, in the order `--help` lists them. */
const COMMANDS: readonly CommandFactory[] = [demoCommand, runCommand, serveCommand, workerCommand, inspectCommand, requeueCommand, cancelCommand, impactCommand];

export function version(): string {
  return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
}

/** The `porch` program with every command; `exit` records the exit code. */
function createProgram(ctx: CliContext): Command {
  const program = new Command('porch')
    .description('Run agents in parallel, watch them live, and steer them: the parallel-orchestrator command.')
    .version(version(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')
    .addHelpText(
      'after',
      `
Examples:
  $ porch demo                                  the seed's ten agents, live
  $ porch run --agents examples/porch/agents.mjs
  $ porch serve --agents examples/porch/agents.mjs --store sqlite:porch.db
  $ porch inspect dlq --store sqlite:porch.db

Exit codes: 0 success, 1 a task failed (or an error), 2 a bad flag or value, 130 interrupted.
Docs: docs/cli.md (commands), docs/server.md (HTTP API and dashboard).`,
    );
  for (const factory of COMMANDS) program.addCommand(factory(ctx));
  return program;
}

/**
 * Runs porch with `argv` (as process.argv) and resolves with its exit code. A bad flag or value
 * prints one line on stderr and gives 2; an error in a command prints one line and gives 1.
 */
export async function runCli(argv: readonly string[], term: Terminal = processTerminal(argv.includes('--no-color')), env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let code: number = EXIT.ok;
  const ctx: CliContext = { term, env, exit: (c) => void (code = Math.max(code, c)) };
  const program = createProgram(ctx);
  configure(program, term);
  if (argv.length <= 2) {
    term.write(program.helpInformation());
    return EXIT.usage;
  }
  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (error instanceof UsageError) {
      term.error(`porch: ${oneLine(error.message)}`);
      return EXIT.usage;
    }
    term.error(`porch: ${oneLine(error instanceof Error ? error.message : String(error))}`);
    return Math.max(code, EXIT.failed);
  }
  return code;
}

/** The same settings on every command: errors thrown (not exiting), printed on one line. */
function configure(command: Command, term: Terminal): void {
  command.exitOverride();
  command.configureOutput({
    writeOut: (text) => term.write(text),
    writeErr: (text) => term.write(text),
    outputError: (text) => term.error(`porch: ${oneLine(text.replace(/^error: /, ''))}`),
  });
  command.showHelpAfterError(false);
  for (const sub of command.commands) configure(sub, term);
}

function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, ' ');
}
