import { Command, Option } from 'commander';
import { stringify } from '../../server/json.js';
import type { CliContext } from '../context.js';
import type { StoreSpec } from '../parse.js';
import { createOrchestrator } from '../session.js';
import { EXIT } from '../usage-error.js';
import { jsonOption, requireDurableStore, storeOption, withOrchestrator } from './shared.js';

interface CancelOptions {
  store?: StoreSpec;
  reason: string;
  json?: boolean;
}

/** `porch cancel <id>`: cancels a task left unfinished in a durable store. */
export function cancelCommand(ctx: CliContext): Command {
  return new Command('cancel')
    .description('cancel a queued or running task of a durable store')
    .argument('<id>', 'the task id')
    .addOption(storeOption())
    .addOption(new Option('--reason <text>', 'why (kept in the audit trail)').default('cancelled with porch cancel'))
    .addOption(jsonOption('the outcome as JSON'))
    .addHelpText(
      'after',
      `
porch opens the store as a node would: a task a stopped (or crashed) process left unfinished is
taken over and cancelled. A task that a live process runs is cancelled by that process: on
PostgreSQL through the store, on SQLite with that server's API (POST /api/tasks/<id>/cancel).
Exit 0 when cancelled, 1 when the task is unknown, finished, or owned by another process.

Examples:
  $ porch cancel import-7 --store sqlite:porch.db --reason "wrong input file"
  $ porch cancel import-7 --store postgres://porch@db/porch --json`,
    )
    .action(async (id: string, options: CancelOptions) => {
      const store = await requireDurableStore(options.store);
      const outcome = await withOrchestrator(createOrchestrator({ store }, '--store'), async (o) => {
        if (await o.cancel(id, options.reason)) return { cancelled: true as const };
        return { cancelled: false as const, status: (await o.findTask(id))?.status };
      });
      if (options.json === true) ctx.term.write(`${stringify({ taskId: id, ...outcome })}\n`);
      if (outcome.cancelled) {
        if (options.json !== true) ctx.term.write(`cancelled ${id}\n`);
        return;
      }
      const why =
        outcome.status === undefined
          ? `no task ${id} in the store`
          : ['queued', 'running', 'retrying'].includes(outcome.status)
            ? `task ${id} is ${outcome.status} in another process: cancel it there (porch serve: POST /api/tasks/${encodeURIComponent(id)}/cancel)`
            : `task ${id} is already ${outcome.status}`;
      ctx.term.error(`porch: ${why}`);
      ctx.exit(EXIT.failed);
    });
}
