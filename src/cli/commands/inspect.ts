import { Command, InvalidArgumentError, Option } from 'commander';
import type { AuditEvent, ParallelOrchestrator, TaskStatus } from '../../index.js';
import { AUDIT_EVENT_TYPES, TaskPriority, TaskStatus as Statuses } from '../../index.js';
import { stringify, wireError } from '../../server/json.js';
import type { CliContext } from '../context.js';
import { integer, parseSince, type StoreSpec } from '../parse.js';
import { createOrchestrator } from '../session.js';
import { cut, table } from '../terminal.js';
import { EXIT } from '../usage-error.js';
import { jsonOption, requireDurableStore, storeOption, withOrchestrator } from './shared.js';

const STATUSES = Object.values(Statuses) as string[];
const PRIORITY_NAMES = Object.fromEntries(Object.entries(TaskPriority).map(([name, value]) => [value, name]));
const PAGE = 10_000;

interface StoreFlags {
  store?: StoreSpec;
  json?: boolean;
}

/** `porch inspect task <id> | tasks | dlq | audit`: read a durable store. */
export function inspectCommand(ctx: CliContext): Command {
  const inspect = new Command('inspect')
    .description('read a durable store: a task with its audit trail, the tasks, the dead letters, the audit trail')
    .addHelpText(
      'after',
      `
Examples:
  $ porch inspect task import-7 --store sqlite:porch.db
  $ porch inspect tasks --status failed,timeout --store sqlite:porch.db
  $ porch inspect dlq --store sqlite:porch.db --json | jq '.[].taskId'
  $ porch inspect audit --since 15m --type failed --store sqlite:porch.db`,
    );

  inspect.addCommand(
    withStoreFlags(new Command('task'))
      .description('one task: status, payload, result or error, latest progress, and its audit trail')
      .argument('<id>', 'the task id')
      .addHelpText('after', '\nExample:\n  $ porch inspect task import-7 --store sqlite:porch.db --json')
      .action(async (id: string, options: StoreFlags) => {
        const found = await onStore(options, async (o) => {
          const details = await o.findTask(id);
          return details === undefined ? undefined : { details, history: await o.history(id) };
        });
        if (found === undefined) {
          ctx.term.error(`porch: no task ${id} in the store`);
          ctx.exit(EXIT.failed);
          return;
        }
        const { details, history } = found;
        const error = details.error === undefined ? undefined : wireError(details.error);
        if (options.json === true) {
          ctx.term.write(`${stringify({ ...details, error, history }, 2)}\n`);
          return;
        }
        const rows: string[][] = [
          ['task', details.taskId],
          ['type', details.type],
          ['status', details.status],
          ['priority', `${PRIORITY_NAMES[details.priority] ?? details.priority} (${details.priority})`],
          ['attempts', String(details.attempt)],
          ['agent', details.agentId ?? '-'],
          ['capabilities', details.capabilities.join(', ') || '(any agent)'],
          ['payload', cut(stringify(details.payload), 160)],
        ];
        if (details.result !== undefined) rows.push(['result', cut(stringify(details.result), 160)]);
        if (error !== undefined) rows.push(['error', `${error.code ?? error.name}: ${error.message}`]);
        if (details.progress !== undefined) rows.push(['progress', cut(stringify(details.progress), 160)]);
        ctx.term.write(`${table(['', ''], rows).split('\n').slice(1).join('\n')}\n\nhistory\n${auditTable(history)}\n`);
      }),
  );

  inspect.addCommand(
    withStoreFlags(new Command('tasks'))
      .description('tasks, newest first')
      .addOption(new Option('--status <list>', `only these statuses, comma-separated (${STATUSES.join(', ')})`).argParser(statusList))
      .addOption(new Option('--type <type>', 'only tasks of this type'))
      .addOption(new Option('--limit <n>', 'most tasks shown').argParser(integer(1, 10_000)).default(50))
      .addHelpText('after', '\nExample:\n  $ porch inspect tasks --status running,queued --store sqlite:porch.db')
      .action(async (options: StoreFlags & { status?: TaskStatus[]; type?: string; limit: number }) => {
        const tasks = await onStore(options, (o) => o.listTasks({ status: options.status, type: options.type, limit: options.limit }));
        if (options.json === true) {
          ctx.term.write(`${stringify(tasks, 2)}\n`);
          return;
        }
        const rows = tasks.map((t) => [t.taskId, t.type, t.status, PRIORITY_NAMES[t.priority] ?? String(t.priority), String(t.attempt), t.agentId ?? '-']);
        ctx.term.write(`${table(['task', 'type', 'status', 'priority', 'attempts', 'agent'], rows)}\n`);
        if (tasks.length === 0) ctx.term.write('(no tasks)\n');
      }),
  );

  inspect.addCommand(
    withStoreFlags(new Command('dlq'))
      .description('the dead-letter queue: tasks whose attempts ran out, oldest first')
      .addHelpText('after', '\nExamples:\n  $ porch inspect dlq --store sqlite:porch.db\n  $ porch requeue <id> --store sqlite:porch.db --agents agents.mjs')
      .action(async (options: StoreFlags) => {
        const letters = await onStore(options, (o) => o.deadLetters());
        if (options.json === true) {
          const out = letters.map((d) => ({ taskId: d.taskId, type: d.type, code: d.code, attempts: d.attempts, failedAt: d.failedAt, error: wireError(d.error), spec: d.spec }));
          ctx.term.write(`${stringify(out, 2)}\n`);
          return;
        }
        const rows = letters.map((d) => [d.taskId, d.type, d.code, String(d.attempts), new Date(d.failedAt).toISOString(), d.error.message]);
        ctx.term.write(`${table(['task', 'type', 'code', 'attempts', 'failed at', 'error'], rows)}\n`);
        if (letters.length === 0) ctx.term.write('(no dead letters)\n');
      }),
  );

  inspect.addCommand(
    withStoreFlags(new Command('audit'))
      .description('the audit trail: every task transition and circuit change (the latest entries, or from --since on)')
      .addOption(new Option('--since <time>', 'entries from this time on: 2025-01-31T12:00:00Z, 2025-01-31, 15m, 2h, 7d, or epoch ms').argParser((v) => parseSince(v)))
      .addOption(new Option('--type <type>', 'only entries of this type').choices(AUDIT_EVENT_TYPES))
      .addOption(new Option('--limit <n>', 'most entries shown').argParser(integer(1, 10_000)).default(50))
      .addHelpText('after', '\nExamples:\n  $ porch inspect audit --store sqlite:porch.db\n  $ porch inspect audit --since 2h --type dead-lettered --store sqlite:porch.db --json')
      .action(async (options: StoreFlags & { since?: number; type?: string; limit: number }) => {
        const entries = await onStore(options, (o) => readAudit(o, options.since, options.type, options.limit));
        if (options.json === true) ctx.term.write(`${stringify(entries, 2)}\n`);
        else ctx.term.write(`${auditTable(entries)}\n`);
      }),
  );
  return inspect;
}

function withStoreFlags(command: Command): Command {
  return command.addOption(storeOption()).addOption(jsonOption('JSON instead of a table'));
}

async function onStore<T>(options: StoreFlags, fn: (o: ParallelOrchestrator) => Promise<T>): Promise<T> {
  const store = await requireDurableStore(options.store);
  // Reading only: the tasks a dead process left stay as they are for the process that runs them.
  return withOrchestrator(createOrchestrator({ store }, '--store'), fn, false);
}

/**
 * The audit trail pages by sequence, oldest first: entries from `since` (a time) on are found by
 * paging forward; without it, the last `limit` entries are kept while paging to the end.
 */
async function readAudit(o: ParallelOrchestrator, since: number | undefined, type: string | undefined, limit: number): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let after = 0;
  for (;;) {
    const page = await o.audit({ since: after, limit: PAGE, ...(type !== undefined && { type: type as AuditEvent['type'] }) });
    for (const entry of page) {
      if (since !== undefined && entry.timestamp < since) continue;
      out.push(entry);
      if (since !== undefined && out.length >= limit) return out;
    }
    if (since === undefined && out.length > limit) out.splice(0, out.length - limit);
    if (page.length < PAGE) return out;
    after = page[page.length - 1]!.seq;
  }
}

function auditTable(entries: AuditEvent[]): string {
  if (entries.length === 0) return '(no entries)';
  const rows = entries.map((e) => [
    String(e.seq),
    new Date(e.timestamp).toISOString(),
    e.type,
    e.taskId ?? '-',
    e.agentId ?? '-',
    e.attempt === null ? '-' : String(e.attempt),
    e.details === null ? '' : cut(stringify(e.details), 100),
  ]);
  return table(['seq', 'time', 'type', 'task', 'agent', 'attempt', 'details'], rows);
}

function statusList(value: string): TaskStatus[] {
  const list = value.split(',').map((s) => s.trim());
  for (const status of list) {
    if (!STATUSES.includes(status)) throw new InvalidArgumentError(`must be one or more of ${STATUSES.join(', ')}`);
  }
  return list as TaskStatus[];
}
