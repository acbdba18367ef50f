import { Command, Option } from 'commander';
import { createServer, isOrchestratorError, type AgentsFile } from '../../index.js';
import type { CliContext } from '../context.js';
import { loadAgentsFile } from '../agents-file.js';
import { describeStore, integer, parsePort, type StoreSpec } from '../parse.js';
import { createOrchestrator, mergeConfig, onSignals, registerAgents } from '../session.js';
import { EXIT, UsageError } from '../usage-error.js';
import { agentsOption, maxWorkersOption, shutdownTimeoutOption, storeOption } from './shared.js';

interface ServeOptions {
  port: number;
  host: string;
  store?: StoreSpec;
  agents?: string;
  token?: string;
  maxWorkers?: number;
  bodyLimit: number;
  shutdownTimeout: number;
}

/** `porch serve`: the HTTP API, the event streams and the dashboard. */
export function serveCommand(ctx: CliContext): Command {
  return new Command('serve')
    .description('serve the HTTP API, its event streams and the live dashboard for an orchestrator')
    .addOption(new Option('--port <n>', 'port to listen on (0: any free port)').argParser(parsePort).default(7070))
    .addOption(new Option('--host <address>', 'address to listen on; any other than loopback needs a token').default('127.0.0.1'))
    .addOption(storeOption())
    .addOption(agentsOption())
    .addOption(new Option('--token <token>', 'bearer token every /api request and /metrics must carry (default: $PORCH_TOKEN)'))
    .addOption(maxWorkersOption())
    .addOption(new Option('--body-limit <bytes>', 'largest request body').argParser(integer(1, 1024 ** 3)).default(1024 * 1024))
    .addOption(shutdownTimeoutOption(30_000))
    .addHelpText(
      'after',
      `
Prints the URL, then serves until SIGINT or SIGTERM: the server stops, running tasks get up
to --shutdown-timeout to finish, then porch exits 0 (a second signal exits at once). The
agents file's agents are registered and its tasks submitted at start.

Examples:
  $ porch serve                                       http://127.0.0.1:7070/
  $ porch serve --agents examples/porch/agents.mjs --store sqlite:porch.db
  $ PORCH_TOKEN=$(openssl rand -hex 16) porch serve --host 0.0.0.0 --port 8080
  $ curl -s localhost:7070/api/stats | jq .taskQueue`,
    )
    .action(async (options: ServeOptions) => {
      const token = options.token ?? (ctx.env.PORCH_TOKEN === '' ? undefined : ctx.env.PORCH_TOKEN);
      if (token !== undefined && token.length < 16) ctx.term.error(`porch serve: warning: the token has ${token.length} characters; use 16 or more random ones (openssl rand -hex 16)`);
      let file: AgentsFile | undefined;
      if (options.agents !== undefined) file = await loadAgentsFile(options.agents);
      const config = mergeConfig(file?.config, { store: options.store, maxWorkers: options.maxWorkers });
      const orchestrator = createOrchestrator(config, options.agents === undefined ? '--store' : `--agents ${options.agents} config`);
      let server;
      try {
        server = createServer(orchestrator, { token, bodyLimit: options.bodyLimit, onError: (error) => ctx.term.error(`porch serve: ${error instanceof Error ? error.message : String(error)}`) });
      } catch (error) {
        if (isOrchestratorError(error)) throw new UsageError(error.message);
        throw error;
      }
      if (file !== undefined) registerAgents(orchestrator, file, options.agents!);
      // The first SIGINT/SIGTERM stops gracefully; a second one exits at once.
      let stop!: (signal: NodeJS.Signals) => void;
      const stopped = new Promise<NodeJS.Signals>((resolve) => (stop = resolve));
      const removeSignals = onSignals(ctx.term, (signal) => stop(signal));
      try {
        await orchestrator.start();
        let url: string;
        try {
          url = await server.listen({ port: options.port, host: options.host });
        } catch (error) {
          if (isOrchestratorError(error) && error.code === 'INVALID_ARGUMENT') throw new UsageError(`--host ${options.host}: ${error.message.replace(/^token /, 'a token ')} (--token or PORCH_TOKEN)`);
          throw new Error(`cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`, { cause: error });
        }
        const store = (config.store ?? { type: 'memory' }) as StoreSpec;
        ctx.term.write(`porch serve: listening on ${url}\n`);
        ctx.term.write(`  store ${describeStore(store)} · ${orchestrator.listAgents().length} agents · ${token === undefined ? 'no token (loopback only)' : 'token required'} · Ctrl-C to stop\n`);
        (file?.tasks ?? []).forEach((spec, i) => {
          try {
            void orchestrator.submit(spec);
          } catch (error) {
            ctx.term.error(`porch serve: tasks[${i}] not submitted: ${(error as Error).message}`);
          }
        });
        const signal = await stopped;
        ctx.term.write(`porch serve: ${signal}: stopping (running tasks get up to ${options.shutdownTimeout} ms)\n`);
      } catch (error) {
        removeSignals();
        await server.close();
        await orchestrator.shutdown({ graceful: false }).catch(() => undefined);
        throw error;
      }
      await server.close();
      await orchestrator.shutdown({ graceful: true, timeout: options.shutdownTimeout });
      removeSignals();
      ctx.term.write('porch serve: stopped\n');
      ctx.exit(EXIT.ok);
    });
}
