import { createHash } from 'node:crypto';
import { AgentRole } from '../enums.js';
import { DependencyCycleError, DuplicateStepError, InvalidWorkflowError, UnknownDependencyError } from '../errors.js';
import type { ParallelOrchestrator } from '../index.js';
import { cycleThrough, dependentsOf, isCycle, stronglyConnectedComponents, topologicalOrder, wavesOf } from './graph.js';
import { runWorkflow } from './host.js';
import { attachPlan, planOf, type StepPlan, type WorkflowPlan } from './plan.js';
import type { RunWorkflowOptions, StepDefinition, WorkflowDefinition, WorkflowResults } from './types.js';
import type { WorkflowRun } from './run.js';

const ROLES = new Set<string>(Object.values(AgentRole));

declare const inputType: unique symbol;
declare const resultsType: unique symbol;

/**
 * A workflow made by `defineWorkflow`: validated, its steps in dependency order. Run it with
 * `runWorkflow(orchestrator, workflow, input)` or `orchestrator.runWorkflow(workflow, input)`.
 * `I` is its input, `R` its steps' results by name.
 */
export class Workflow<I = unknown, R extends WorkflowResults = WorkflowResults> {
  declare readonly [inputType]?: I;
  declare readonly [resultsType]?: R;
  /** The workflow's id. */
  readonly id: string;
  /** Step names, every step after its dependencies. */
  readonly steps: readonly string[];
  /** Steps in waves: each step is in the wave after the last of its dependencies (the first wave has none). */
  readonly waves: readonly (readonly string[])[];

  /** @internal Use `defineWorkflow`. */
  constructor(plan: WorkflowPlan) {
    this.id = plan.id;
    this.steps = Object.freeze(plan.order.map((i) => plan.steps[i]!.name));
    const { wave, count } = wavesOf(
      plan.steps.map((s) => s.deps),
      plan.order.map((i) => [i]),
    );
    const waves: string[][] = Array.from({ length: count }, () => []);
    for (const i of plan.order) waves[wave[i]!]!.push(plan.steps[i]!.name);
    this.waves = Object.freeze(waves.map((w) => Object.freeze(w)));
    attachPlan(this, plan);
    Object.freeze(this);
  }

  /** The names of the steps `step` depends on. @throws InvalidWorkflowError for an unknown step */
  dependenciesOf(step: string): readonly string[] {
    const plan = planOf(this);
    const index = plan.byName.get(step);
    if (index === undefined) throw new InvalidWorkflowError('step', `'${step}' is not a step of workflow ${this.id}`);
    return plan.steps[index]!.deps.map((d) => plan.steps[d]!.name);
  }

  /**
   * Starts a run on `orchestrator`: the same as `runWorkflow(orchestrator, this, input, options)`,
   * and what `orchestrator.runWorkflow(this, input, options)` calls.
   */
  start(orchestrator: ParallelOrchestrator, input: I, options?: RunWorkflowOptions): WorkflowRun<R> {
    return runWorkflow(orchestrator, this, input, options);
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const describe = (value: unknown): string => (typeof value === 'string' ? `'${value}'` : Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value);

function positive(field: string, value: unknown, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new InvalidWorkflowError(field, `must be a finite number ${allowZero ? '≥ 0' : '> 0'} (ms) (received ${describe(value)}${typeof value === 'number' ? ` ${value}` : ''})`);
  }
  return value;
}

/** Where a step is in the definition, for messages: `steps.<name>` or `steps[<i>]` (made only for an error). */
type StepPath = { readonly name: string; readonly index: number; readonly inArray: boolean };
const pathOf = (at: StepPath): string => (at.inArray ? `steps[${at.index}]` : `steps.${at.name}`);

const STEP_KEYS = new Set(['name', 'dependsOn', 'run', 'capabilities', 'type', 'priority', 'input', 'retry', 'timeout', 'preferredRole', 'waitForAgent', 'compensate', 'compensationTimeout']);
const DEFINITION_KEYS = new Set(['id', 'steps', 'compensationTimeout', 'checkpointInterval', 'cancelGrace']);

/** @throws InvalidWorkflowError naming the first key of `value` not in `known` (a misspelt option would be ignored) */
function checkKeys(where: string, value: Record<string, unknown>, known: ReadonlySet<string>): void {
  for (const key of Object.keys(value)) {
    if (!known.has(key)) throw new InvalidWorkflowError(where === '' ? key : `${where}.${key}`, 'is not a known option (check its spelling)');
  }
}

function checkStep(at: StepPath, step: Record<string, unknown>): 'task' | 'run' {
  checkKeys(pathOf(at), step, STEP_KEYS);
  const quick = step.run !== undefined ? typeof step.run === 'function' && step.capabilities === undefined : Array.isArray(step.capabilities) && typeof step.run === 'undefined';
  // The common shapes need only the checks below; anything else goes through every check, for its message.
  if (quick && step.input === undefined && step.compensate === undefined && step.retry === undefined && step.timeout === undefined && step.compensationTimeout === undefined && step.type === undefined && step.priority === undefined && step.preferredRole === undefined && step.waitForAgent === undefined) {
    const dependsOn = step.dependsOn;
    if (dependsOn === undefined || Array.isArray(dependsOn)) {
      if (step.run !== undefined) return 'run';
      const capabilities = step.capabilities as unknown[];
      if (capabilities.length > 0 && capabilities.every((c) => typeof c === 'string' && c.length > 0)) return 'task';
    }
  }
  return checkStepFully(pathOf(at), step);
}

function checkStepFully(where: string, step: Record<string, unknown>): 'task' | 'run' {
  for (const key of ['run', 'input', 'compensate'] as const) {
    if (step[key] !== undefined && typeof step[key] !== 'function') throw new InvalidWorkflowError(`${where}.${key}`, `must be a function (received ${describe(step[key])})`);
  }
  const hasRun = step.run !== undefined;
  const capabilities = step.capabilities;
  if (capabilities !== undefined) {
    if (!Array.isArray(capabilities) || capabilities.length === 0 || !capabilities.every((c) => typeof c === 'string' && c.length > 0)) {
      throw new InvalidWorkflowError(`${where}.capabilities`, `must be a non-empty array of non-empty strings (received ${describe(capabilities)})`);
    }
  }
  if (hasRun && capabilities !== undefined) throw new InvalidWorkflowError(where, 'has both run and capabilities: give run (a function step) or capabilities (a task step)');
  if (!hasRun && capabilities === undefined) {
    throw new InvalidWorkflowError(where, 'needs run (a function step) or capabilities (a task step); a task with no capabilities could go to any agent');
  }
  if (!hasRun) {
    if (step.type !== undefined && (typeof step.type !== 'string' || step.type.length === 0)) throw new InvalidWorkflowError(`${where}.type`, `must be a non-empty string (received ${describe(step.type)})`);
    if (step.priority !== undefined && !(Number.isInteger(step.priority) && (step.priority as number) >= 0 && (step.priority as number) <= 4)) {
      throw new InvalidWorkflowError(`${where}.priority`, `must be a TaskPriority, 0..4 (received ${String(step.priority)})`);
    }
    if (step.preferredRole !== undefined && !ROLES.has(step.preferredRole as string)) throw new InvalidWorkflowError(`${where}.preferredRole`, `must be an AgentRole (received ${describe(step.preferredRole)})`);
    if (step.waitForAgent !== undefined && typeof step.waitForAgent !== 'boolean') throw new InvalidWorkflowError(`${where}.waitForAgent`, `must be a boolean (received ${describe(step.waitForAgent)})`);
  } else {
    for (const key of ['type', 'priority', 'input', 'preferredRole', 'waitForAgent'] as const) {
      if (step[key] !== undefined) throw new InvalidWorkflowError(`${where}.${key}`, 'applies to task steps only (this step has run)');
    }
  }
  if (step.retry !== undefined) {
    if (!isRecord(step.retry)) throw new InvalidWorkflowError(`${where}.retry`, `must be an object (received ${describe(step.retry)})`);
    const { maxAttempts, initialDelay, factor, maxDelay, jitter } = step.retry;
    if (maxAttempts !== undefined && !(Number.isInteger(maxAttempts) && (maxAttempts as number) >= 1)) throw new InvalidWorkflowError(`${where}.retry.maxAttempts`, `must be an integer ≥ 1 (received ${String(maxAttempts)})`);
    positive(`${where}.retry.initialDelay`, initialDelay, 0, true);
    positive(`${where}.retry.maxDelay`, maxDelay, 0, true);
    if (factor !== undefined && !(typeof factor === 'number' && Number.isFinite(factor) && factor >= 1)) throw new InvalidWorkflowError(`${where}.retry.factor`, `must be a number ≥ 1 (received ${String(factor)})`);
    if (jitter !== undefined && !(typeof jitter === 'number' && jitter >= 0 && jitter <= 1)) throw new InvalidWorkflowError(`${where}.retry.jitter`, `must be a number in 0..1 (received ${String(jitter)})`);
  }
  positive(`${where}.timeout`, step.timeout, 0, true);
  positive(`${where}.compensationTimeout`, step.compensationTimeout, 1);
  if (step.dependsOn !== undefined && !(Array.isArray(step.dependsOn) && step.dependsOn.every((d) => typeof d === 'string'))) {
    throw new InvalidWorkflowError(`${where}.dependsOn`, `must be an array of step names (received ${describe(step.dependsOn)})`);
  }
  return hasRun ? 'run' : 'task';
}

/**
 * Validates a workflow definition, and everything about it that can be checked before a run:
 * step fields, unknown dependencies, duplicate names, cycles.
 *
 * @throws InvalidWorkflowError naming the field, UnknownDependencyError, DuplicateStepError,
 *   DependencyCycleError naming a cycle
 * @example
 * const deploy = defineWorkflow({
 *   id: 'deploy',
 *   steps: {
 *     build: { capabilities: ['build'] },
 *     test: { capabilities: ['test'], dependsOn: ['build'] },
 *     publish: { dependsOn: ['test'], run: async (ctx) => `published ${ctx.results.build}`, compensate: async () => unpublish() },
 *   },
 * });
 */
export function defineWorkflow<I = unknown, R extends WorkflowResults = WorkflowResults>(definition: WorkflowDefinition<I, R>): Workflow<I, R> {
  if (!isRecord(definition)) throw new InvalidWorkflowError('definition', `must be an object (received ${describe(definition)})`);
  checkKeys('', definition, DEFINITION_KEYS);
  const id = definition.id;
  if (typeof id !== 'string' || id.length === 0) throw new InvalidWorkflowError('id', `must be a non-empty string (received ${describe(id)})`);
  const where = `workflow ${id}`;
  const raw = definition.steps as unknown;
  const entries: [string, Record<string, unknown>][] = [];
  const inArray = Array.isArray(raw);
  if (Array.isArray(raw)) {
    raw.forEach((step: unknown, i) => {
      if (!isRecord(step)) throw new InvalidWorkflowError(`steps[${i}]`, `must be an object (received ${describe(step)})`);
      if (typeof step.name !== 'string' || step.name.length === 0) throw new InvalidWorkflowError(`steps[${i}].name`, `must be a non-empty string (received ${describe(step.name)})`);
      entries.push([step.name, step]);
    });
  } else if (isRecord(raw)) {
    for (const name of Object.keys(raw)) {
      const step = raw[name];
      if (name.length === 0) throw new InvalidWorkflowError('steps', 'has a step with an empty name');
      if (!isRecord(step)) throw new InvalidWorkflowError(`steps.${name}`, `must be an object (received ${describe(step)})`);
      entries.push([name, step]);
    }
  } else {
    throw new InvalidWorkflowError('steps', `must be an object of steps by name, or an array of named steps (received ${describe(raw)})`);
  }
  if (entries.length === 0) throw new InvalidWorkflowError('steps', 'must hold at least one step');

  const byName = new Map<string, number>();
  entries.forEach(([name], i) => {
    if (byName.has(name)) throw new DuplicateStepError(id, name);
    byName.set(name, i);
  });
  const kinds = entries.map(([name, step], index) => checkStep({ name, index, inArray }, step));
  // Duplicates in dependsOn count once (a stamp per step instead of a Set each).
  const stamp = new Int32Array(entries.length);
  const deps = entries.map(([name, step], i) => {
    const list: number[] = [];
    const dependsOn = step.dependsOn as string[] | undefined;
    if (dependsOn === undefined) return list;
    for (const dep of dependsOn) {
      const d = byName.get(dep);
      if (d === undefined) throw new UnknownDependencyError(id, name, dep);
      if (stamp[d] !== i + 1) {
        stamp[d] = i + 1;
        list.push(d);
      }
    }
    return list;
  });
  const dependents = dependentsOf(deps);
  const order = topologicalOrder(deps, dependents);
  if (order === null) {
    const names = (nodes: readonly number[]) => nodes.map((i) => entries[i]![0]);
    const cycles = stronglyConnectedComponents(deps).filter((c) => isCycle(c, deps));
    const sorted = cycles.map((c) => names(c).sort()).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
    throw new DependencyCycleError(names(cycleThrough(cycles[0]!, deps)), sorted, where);
  }
  const rank = new Int32Array(entries.length);
  order.forEach((i, position) => (rank[i] = position));

  const steps: StepPlan[] = entries.map(([name, step], index) => ({ name, index, kind: kinds[index]!, definition: step as StepDefinition, deps: deps[index]!, dependents: dependents[index]! }));
  // Independent of the order the steps are written in; fed to the hash piece by piece.
  const hash = createHash('sha256').update(JSON.stringify(id));
  const byNameOrder = steps.map((step) => step.index).sort((a, b) => (steps[a]!.name < steps[b]!.name ? -1 : steps[a]!.name > steps[b]!.name ? 1 : 0));
  for (const i of byNameOrder) {
    const step = steps[i]!;
    const capabilities = step.kind === 'task' ? [...(step.definition.capabilities ?? [])].sort() : null;
    hash.update(JSON.stringify([step.name, step.kind, step.deps.map((d) => steps[d]!.name).sort(), capabilities]));
  }
  const fingerprint = hash.digest('hex').slice(0, 32);
  const plan: WorkflowPlan = Object.freeze({
    id,
    steps,
    byName,
    order,
    rank,
    fingerprint,
    hasTaskSteps: kinds.includes('task'),
    compensationTimeout: positive('compensationTimeout', definition.compensationTimeout, 30_000),
    checkpointInterval: positive('checkpointInterval', definition.checkpointInterval, 100, true),
    cancelGrace: positive('cancelGrace', definition.cancelGrace, 5_000, true),
  });
  return new Workflow<I, R>(plan);
}
