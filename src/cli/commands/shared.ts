import { stat } from 'node:fs/promises';
import { Option } from 'commander';
import type { AgentsFile, OrchestratorStats, ParallelOrchestrator, TaskObservable, TaskSpec, WorkflowDefinition } from '../../index.js';
import { Workflow, defineWorkflow, isOrchestratorError } from '../../index.js';
import type { CliContext } from '../context.js';
import { LiveView, type ViewMode } from '../live-view.js';
import { integer, parseStore, type StoreSpec } from '../parse.js';
import { onSignals } from '../session.js';
import { EXIT, UsageError } from '../usage-error.js';

export const storeOption = (fallback?: string) => {
  const option = new Option('--store <spec>', 'where tasks are kept: memory, sqlite:<path> or a postgres:// URL').argParser(parseStore);
  return fallback === undefined ? option : option.default(parseStore(fallback), fallback);
};
export const agentsOption = () => new Option('--agents <file>', 'an agents file (ES module): agents, tasks, workflow, config (docs/cli.md#the-agents-file)');
export const jsonOption = (what: string) => new Option('--json', what);
export const maxWorkersOption = () => new Option('--max-workers <n>', 'most tasks running at once (workerPool.maxWorkers; wins over the file)').argParser(integer(1, 10_000));
export const plainOption = () => new Option('--plain', 'plain lines even on a terminal (the default when stdout is not a terminal)');
export const noColorOption = () => new Option('--no-color', 'no colours in the live view (also NO_COLOR=1)');
export const shutdownTimeoutOption = (fallback: number) =>
  new Option('--shutdown-timeout <ms>', 'on SIGINT/SIGTERM, longest wait for running tasks before they are cancelled').argParser(integer(0, 86_400_000)).default(fallback);

/** The view for `--json`, `--plain` and the terminal. */
export function viewMode(ctx: CliContext, options: { json?: boolean; plain?: boolean }): ViewMode {
  if (options.json === true) return 'json';
  return options.plain === true || !ctx.term.isTTY ? 'plain' : 'tty';
}

/** A store that can be inspected: durable, and (SQLite) an existing file, never created by a typo. */
export async function requireDurableStore(store: StoreSpec | undefined): Promise<StoreSpec> {
  if (store === undefined || store.type === 'memory') {
    throw new UsageError('--store must name a durable store to inspect: sqlite:<path> or a postgres:// URL');
  }
  if (store.type === 'sqlite') {
    const info = await stat(store.path).catch(() => null);
    if (info === null || !info.isFile()) throw new UsageError(`--store: no SQLite file at ${store.path}`);
  }
  return store;
}

/**
 * Runs a one-shot command against a store: starts the orchestrator, runs `fn`, then stops it at
 * once. `recover: false` (inspection) leaves the tasks a dead process left alone; otherwise a
 * SQLite store keeps any task it recovered unfinished for the next start.
 */
export async function withOrchestrator<T>(orchestrator: ParallelOrchestrator, fn: (o: ParallelOrchestrator) => Promise<T>, recover = true): Promise<T> {
  await orchestrator.start({ recover });
  try {
    const value = await fn(orchestrator);
    await orchestrator.flush();
    return value;
  } finally {
    await orchestrator.shutdown({ graceful: false });
  }
}

export interface RunPlan {
  orchestrator: ParallelOrchestrator;
  file: AgentsFile | undefined;
  /** Registers the agents (called before start, so recovered tasks find them). */
  register(): void;
  tasks: readonly TaskSpec[];
  title: string;
  mode: ViewMode;
  durable: boolean;
}

/**
 * Submits the tasks (and runs the workflow) with the live view, until every one ended.
 * SIGINT/SIGTERM stop at once: running tasks are cancelled (a durable store keeps them for the
 * next start). Resolves with the exit code: 0 only if every task succeeded.
 */
export async function runWithView(ctx: CliContext, plan: RunPlan): Promise<number> {
  const { orchestrator: o, mode } = plan;
  const view = new LiveView(o, mode, ctx.term, plan.title);
  const watching = view.watch();
  let interrupted = false;
  const removeSignals = onSignals(ctx.term, (signal) => {
    interrupted = true;
    view.stop();
    const kept = plan.durable ? '; unfinished tasks stay in the store for the next start' : '';
    ctx.term.error(`porch: ${signal}: stopping, running tasks are cancelled${kept} (again to exit now)`);
    void o.shutdown({ graceful: false }).catch(() => undefined);
  });
  let stats: OrchestratorStats | undefined;
  let outcomes: boolean[];
  try {
    plan.register();
    await o.start();
    const pending: Promise<boolean>[] = [];
    plan.tasks.forEach((spec, i) => pending.push(track(o, spec, i, ctx)));
    if (plan.file?.workflow !== undefined) pending.push(runWorkflow(o, plan.file.workflow, plan.file.workflowInput, ctx));
    outcomes = await Promise.all(pending);
    stats = o.getStats();
    await o.shutdown();
  } catch (error) {
    await o.shutdown({ graceful: false }).catch(() => undefined);
    throw error;
  } finally {
    removeSignals();
    await watching.catch(() => undefined);
    view.stop();
  }
  if (stats !== undefined && !interrupted) view.printStats(stats);
  if (interrupted) return EXIT.interrupted;
  return outcomes.every(Boolean) ? EXIT.ok : EXIT.failed;
}

/** Submits one task and resolves with whether it succeeded. A task recovered from the store with the same id is followed, not submitted again. */
function track(o: ParallelOrchestrator, spec: TaskSpec, index: number, ctx: CliContext): Promise<boolean> {
  let observable: TaskObservable | undefined = spec.id === undefined ? undefined : o.observe(spec.id);
  if (observable !== undefined && ['completed', 'failed', 'timeout', 'cancelled'].includes(observable.state)) observable = undefined;
  if (observable !== undefined) {
    ctx.term.error(`porch: task ${spec.id} was left unfinished by an earlier run: following it, not submitting it again`);
  } else {
    try {
      observable = o.submit(spec);
    } catch (error) {
      if (isOrchestratorError(error) && (error.code === 'INVALID_TASK' || error.code === 'DUPLICATE_TASK')) throw new UsageError(`tasks[${index}]: ${error.message}`);
      throw error;
    }
  }
  return observable.result().then(
    () => true,
    () => false,
  );
}

/** `orchestrator.runWorkflow`, in builds that have workflows. @throws Error saying they are not available */
/**
 * Runs the agents file's workflow: a `defineWorkflow(...)` result, or its definition (checked
 * now, with typed errors naming what is wrong), with the file's `workflowInput`.
 */
function runWorkflow(o: ParallelOrchestrator, workflow: unknown, input: unknown, ctx: CliContext): Promise<boolean> {
  const definition = workflow instanceof Workflow ? workflow : defineWorkflow(workflow as WorkflowDefinition);
  return o.runWorkflow(definition, input).result().then(
    (result) => {
      if (result.status === 'completed') return true;
      ctx.term.error(`porch: the workflow ${result.status}${result.failedStep === null ? '' : ` at step ${result.failedStep}`}${result.error === null ? '' : `: ${result.error.message}`}`);
      return false;
    },
    (error: unknown) => {
      ctx.term.error(`porch: the workflow failed: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    },
  );
}
