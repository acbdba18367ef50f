import { Command, Option } from 'commander';
import { TaskPriority } from '../../index.js';
import type { CliContext } from '../context.js';
import { demoAgents, demoTasks } from '../demo-agents.js';
import { describeStore, integer, type StoreSpec } from '../parse.js';
import { createOrchestrator } from '../session.js';
import { jsonOption, noColorOption, plainOption, runWithView, storeOption, viewMode } from './shared.js';

interface DemoOptions {
  store: StoreSpec;
  rounds: number;
  pace?: number;
  json?: boolean;
  plain?: boolean;
}

/** `porch demo`: the seed's ten-agent example with the live view. */
export function demoCommand(ctx: CliContext): Command {
  return new Command('demo')
    .description("run the seed's example: ten agents (one per role) doing real work in parallel, shown live")
    .addOption(storeOption('memory'))
    .addOption(new Option('--rounds <n>', 'tasks per agent (each round submits one task per agent)').argParser(integer(1, 1000)).default(3))
    .addOption(new Option('--pace <ms>', 'pause between progress steps, to watch the view (default: 60 on a terminal, 0 otherwise)').argParser(integer(0, 10_000)))
    .addOption(jsonOption('one JSON object per event on stdout, then the final stats'))
    .addOption(plainOption())
    .addOption(noColorOption())
    .addHelpText(
      'after',
      `
Examples:
  $ porch demo                         live view on a terminal
  $ porch demo --rounds 10 --pace 200  more tasks, slower
  $ porch demo | cat                   plain lines (CI logs)
  $ porch demo --json | jq -c 'select(.event == "task:completed")'
  $ porch demo --store sqlite:demo.db  the same, durable`,
    )
    .action(async (options: DemoOptions) => {
      const mode = viewMode(ctx, options);
      const pace = options.pace ?? (mode === 'tty' ? 60 : 0);
      const orchestrator = createOrchestrator(
        {
          workerPool: { minWorkers: 2, maxWorkers: 4, assignmentStrategy: 'least-busy' },
          taskQueue: { maxSize: 100_000, defaultPriority: TaskPriority.NORMAL, retry: { maxAttempts: 4, initialDelay: 20 } },
          circuitBreaker: { failureThreshold: 3, successThreshold: 1, resetTimeout: 200 },
          store: options.store,
        },
        '--store',
      );
      const agents = demoAgents(pace);
      const code = await runWithView(ctx, {
        orchestrator,
        file: undefined,
        register: () => agents.forEach((agent) => orchestrator.registerAgent(agent)),
        tasks: demoTasks(options.rounds),
        title: `porch demo · 10 agents · store ${describeStore(options.store)}`,
        mode,
        durable: options.store.type !== 'memory',
      });
      ctx.exit(code);
    });
}
