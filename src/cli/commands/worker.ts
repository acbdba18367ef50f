import { Command } from 'commander';
import type { CliContext } from '../context.js';
import { loadAgentsFile } from '../agents-file.js';
import { LiveView } from '../live-view.js';
import { describeStore, type StoreSpec } from '../parse.js';
import { createOrchestrator, mergeConfig, onSignals, registerAgents } from '../session.js';
import { EXIT, UsageError } from '../usage-error.js';
import { agentsOption, jsonOption, maxWorkersOption, noColorOption, plainOption, shutdownTimeoutOption, storeOption, viewMode } from './shared.js';

interface WorkerOptions {
  store?: StoreSpec;
  agents?: string;
  maxWorkers?: number;
  json?: boolean;
  plain?: boolean;
  shutdownTimeout: number;
}

/** `porch worker`: joins a PostgreSQL cluster as a node running the file's agents. */
export function workerCommand(ctx: CliContext): Command {
  return new Command('worker')
    .description("join a cluster as a node: run the agents file's agents on the tasks of a shared PostgreSQL store")
    .addOption(storeOption().makeOptionMandatory())
    .addOption(agentsOption().makeOptionMandatory())
    .addOption(maxWorkersOption())
    .addOption(jsonOption('one JSON object per event on stdout'))
    .addOption(plainOption())
    .addOption(noColorOption())
    .addOption(shutdownTimeoutOption(30_000))
    .addHelpText(
      'after',
      `
The node claims the tasks its agents can serve from the shared queue until SIGINT or SIGTERM;
then it takes no new task, lets running ones finish (up to --shutdown-timeout; what is left
is taken over by the other nodes) and exits 0. The file's tasks are not submitted: submit
with porch run, the HTTP API (porch serve) or your own code.

Examples:
  $ porch worker --store postgres://porch@db.internal/porch --agents agents.mjs
  $ porch worker --store 'postgres://porch@db/porch?schema=team_a' --agents agents.mjs --max-workers 32`,
    )
    .action(async (options: WorkerOptions) => {
      const store = options.store!;
      if (store.type !== 'postgres') throw new UsageError('--store must be a postgres:// URL: a worker joins a cluster through a shared PostgreSQL database');
      const path = options.agents!;
      const file = await loadAgentsFile(path);
      if (file.agents.length === 0) throw new UsageError(`--agents ${path} has no agents: a worker without agents runs nothing`);
      const orchestrator = createOrchestrator(mergeConfig(file.config, { store, maxWorkers: options.maxWorkers }), `--agents ${path} config`);
      registerAgents(orchestrator, file, path);
      const view = new LiveView(orchestrator, viewMode(ctx, options), ctx.term, `porch worker · ${file.agents.length} agents · ${describeStore(store)}`);
      const watching = view.watch();
      let stop!: (signal: NodeJS.Signals) => void;
      const stopped = new Promise<NodeJS.Signals>((resolve) => (stop = resolve));
      const removeSignals = onSignals(ctx.term, (signal) => stop(signal));
      try {
        await orchestrator.start();
        // Once flushed, the cluster's registry shows this node's agents: other nodes route to them.
        await orchestrator.flush();
        ctx.term.error(`porch worker: joined ${describeStore(store)} with ${file.agents.length} agents; Ctrl-C to leave`);
        const signal = await stopped;
        ctx.term.error(`porch worker: ${signal}: leaving (running tasks get up to ${options.shutdownTimeout} ms)`);
        await orchestrator.shutdown({ graceful: true, timeout: options.shutdownTimeout });
      } catch (error) {
        await orchestrator.shutdown({ graceful: false }).catch(() => undefined);
        throw error;
      } finally {
        removeSignals();
        await watching.catch(() => undefined);
        view.stop();
      }
      ctx.exit(EXIT.ok);
    });
}
