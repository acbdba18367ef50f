import { Command } from 'commander';
import type { CliContext } from '../context.js';
import { loadAgentsFile } from '../agents-file.js';
import { describeStore, type StoreSpec } from '../parse.js';
import { createOrchestrator, mergeConfig, registerAgents } from '../session.js';
import { UsageError } from '../usage-error.js';
import { agentsOption, jsonOption, maxWorkersOption, noColorOption, plainOption, runWithView, storeOption, viewMode } from './shared.js';

interface RunOptions {
  agents?: string;
  store?: StoreSpec;
  maxWorkers?: number;
  json?: boolean;
  plain?: boolean;
}

/** `porch run --agents <file>`: registers the file's agents, runs its tasks (or workflow), exits 0 only if all succeeded. */
export function runCommand(ctx: CliContext): Command {
  return new Command('run')
    .description("register an agents file's agents, run its tasks (or its workflow) with the live view; exit 0 only if every task succeeded")
    .addOption(agentsOption().makeOptionMandatory())
    .addOption(storeOption())
    .addOption(maxWorkersOption())
    .addOption(jsonOption('one JSON object per event on stdout, then the final stats'))
    .addOption(plainOption())
    .addOption(noColorOption())
    .addHelpText(
      'after',
      `
Flags win over the file's config (--store over config.store, --max-workers over
config.workerPool.maxWorkers). Without --store: the file's store, else memory.

Examples:
  $ porch run --agents examples/porch/agents.mjs
  $ porch run --agents agents.mjs --store sqlite:run.db   (Ctrl-C, then run again: unfinished tasks resume)
  $ porch run --agents agents.mjs --json > events.jsonl; echo "exit $?"`,
    )
    .action(async (options: RunOptions) => {
      const path = options.agents!;
      const file = await loadAgentsFile(path);
      if ((file.tasks ?? []).length === 0 && file.workflow === undefined) {
        throw new UsageError(`--agents ${path} has no tasks and no workflow to run (porch serve or porch worker run agents without tasks)`);
      }
      const config = mergeConfig(file.config, { store: options.store, maxWorkers: options.maxWorkers });
      const orchestrator = createOrchestrator(config, `--agents ${path} config`);
      const store = (config.store ?? { type: 'memory' }) as StoreSpec;
      const code = await runWithView(ctx, {
        orchestrator,
        file,
        register: () => registerAgents(orchestrator, file, path),
        tasks: file.tasks ?? [],
        title: `porch run ${path} · ${file.agents.length} agents · store ${describeStore(store)}`,
        mode: viewMode(ctx, options),
        durable: store.type !== 'memory',
      });
      ctx.exit(code);
    });
}
