import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import type { AgentSpec, OrchestratorOptions, TaskSpec, Workflow, WorkflowDefinition } from '../index.js';
import { UsageError } from './usage-error.js';

/**
 * What an agents file (`porch run|serve|worker --agents <file>`) exports by default: an ES module
 * whose default export is this object, or a function (possibly async) returning it.
 *
 * @example
 * // agents.mjs
 * export default {
 *   config: { workerPool: { maxWorkers: 4 } },
 *   agents: [{ agentId: 'echo', role: 'α₉-executor', capabilities: ['echo'], handler: async (task) => task.payload }],
 *   tasks: [{ type: 'echo', capabilities: ['echo'], payload: 'hi' }],
 * };
 */
export interface AgentsFile {
  /** Agents to register, as `registerAgent()` takes them. */
  agents: AgentSpec<never, unknown, never>[];
  /** Tasks to submit, as `submit()` takes them (`porch run` and `porch serve`; `porch worker` ignores them). */
  tasks?: TaskSpec[];
  /** A workflow to run (`porch run`): a `defineWorkflow(...)` result or its definition. */
  workflow?: Workflow | WorkflowDefinition;
  /** The workflow's input. */
  workflowInput?: unknown;
  /** `createParallelOrchestrator` options; command-line flags (`--store`, `--max-workers`) win over them. */
  config?: OrchestratorOptions;
}

const fileSchema = z.strictObject({
  agents: z.array(z.record(z.string(), z.unknown(), { error: 'must be an object (registerAgent options)' }), { error: 'must be an array of agents' }),
  tasks: z.array(z.record(z.string(), z.unknown(), { error: 'must be an object (submit options)' }), { error: 'must be an array of tasks' }).optional(),
  workflow: z.unknown().optional(),
  workflowInput: z.unknown().optional(),
  config: z.record(z.string(), z.unknown(), { error: 'must be an object (createParallelOrchestrator options)' }).optional(),
});

/**
 * Imports and checks an agents file. The agents and tasks themselves are checked by
 * `registerAgent` and `submit`, whose errors name the field. @throws UsageError
 */
export async function loadAgentsFile(path: string): Promise<AgentsFile> {
  const absolute = resolve(path);
  const info = await stat(absolute).catch(() => null);
  if (info === null || !info.isFile()) throw new UsageError(`--agents: no file at ${path}`);
  let module: { default?: unknown };
  try {
    module = (await import(pathToFileURL(absolute).href)) as { default?: unknown };
  } catch (error) {
    throw new UsageError(`--agents ${path} could not be loaded: ${firstLine(error)}`);
  }
  let value = module.default;
  if (typeof value === 'function') {
    try {
      value = await (value as () => unknown)();
    } catch (error) {
      throw new UsageError(`--agents ${path}: its default export threw: ${firstLine(error)}`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`--agents ${path} must have a default export { agents: [...], tasks?, workflow?, config? } (see docs/cli.md#the-agents-file)`);
  }
  const checked = fileSchema.safeParse(value);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    const where = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
    const detail = issue.code === 'unrecognized_keys' ? `${issue.keys[0]} is not a known field (agents, tasks, workflow, workflowInput, config)` : `${where} ${issue.message}`;
    throw new UsageError(`--agents ${path}: ${detail}`);
  }
  return value as AgentsFile;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0]!.slice(0, 300);
}
