import { Command } from 'commander';
import type { AgentsFile } from '../../index.js';
import { stringify } from '../../server/json.js';
import type { CliContext } from '../context.js';
import { loadAgentsFile } from '../agents-file.js';
import { LiveView } from '../live-view.js';
import type { StoreSpec } from '../parse.js';
import { createOrchestrator, mergeConfig, registerAgents } from '../session.js';
import { EXIT } from '../usage-error.js';
import { agentsOption, jsonOption, requireDurableStore, storeOption, withOrchestrator } from './shared.js';

interface RequeueOptions {
  store?: StoreSpec;
  agents?: string;
  json?: boolean;
}

/** `porch requeue <id>`: moves a dead letter back to the queue of a durable store. */
export function requeueCommand(ctx: CliContext): Command {
  return new Command('requeue')
    .description('move a dead letter back to the queue (same id, fresh attempts, its checkpoint); with --agents, run it here and wait for it')
    .argument('<id>', 'the id of the dead-lettered task')
    .addOption(storeOption())
    .addOption(agentsOption())
    .addOption(jsonOption('the outcome as JSON'))
    .addHelpText(
      'after',
      `
With --agents the task runs in this process and porch exits 0 if it completes, 1 if it fails
again. Without --agents it stays queued in the store for the process that will run it (on
PostgreSQL, any node with a capable agent; on SQLite, the next process that starts on the file
with one). While porch serve owns a SQLite file, use its API instead: POST /api/dlq/<id>/requeue.

Examples:
  $ porch requeue report-1 --store sqlite:porch.db --agents agents.mjs
  $ porch requeue report-1 --store postgres://porch@db/porch`,
    )
    .action(async (id: string, options: RequeueOptions) => {
      const store = await requireDurableStore(options.store);
      let file: AgentsFile | undefined;
      if (options.agents !== undefined) file = await loadAgentsFile(options.agents);
      const orchestrator = createOrchestrator(mergeConfig(file?.config, { store }), options.agents === undefined ? '--store' : `--agents ${options.agents} config`);
      if (file !== undefined) registerAgents(orchestrator, file, options.agents!);
      const view = file === undefined || options.json === true ? undefined : new LiveView(orchestrator, 'plain', ctx.term, 'porch requeue');
      const watching = view?.watch();
      const outcome = await withOrchestrator(orchestrator, async (o) => {
        const letter = (await o.deadLetters()).find((d) => d.taskId === id);
        if (letter === undefined) return { kind: 'missing' as const };
        const needs = letter.spec.capabilities ?? [];
        const capable = o.listAgents().some((a) => needs.every((c) => a.capabilities.includes(c)));
        // With no capable agent here, it waits in the store for the process that has one.
        const observable = await o.requeueDeadLetter(id, { waitForAgent: !capable });
        if (!capable) return { kind: 'queued' as const };
        try {
          return { kind: 'completed' as const, result: (await observable.result()).result };
        } catch (error) {
          return { kind: 'failed' as const, error };
        }
      });
      await watching;
      if (outcome.kind === 'missing') {
        ctx.term.error(`porch: ${id} is not a dead letter in the store (porch inspect dlq lists them)`);
        ctx.exit(EXIT.failed);
        return;
      }
      if (options.json === true) ctx.term.write(`${stringify({ taskId: id, ...outcome })}\n`);
      else if (outcome.kind === 'queued') ctx.term.write(`requeued ${id}: queued in the store for a node with a capable agent\n`);
      else if (outcome.kind === 'completed') ctx.term.write(`requeued ${id}: completed\n`);
      else ctx.term.write(`requeued ${id}: failed again (it is a dead letter again)\n`);
      ctx.exit(outcome.kind === 'failed' ? EXIT.failed : EXIT.ok);
    });
}
