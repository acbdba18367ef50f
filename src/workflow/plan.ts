import { InvalidWorkflowError } from '../errors.js';
import type { StepDefinition } from './types.js';

/** A step as the coordinator runs it. */
export interface StepPlan {
  readonly name: string;
  readonly index: number;
  readonly kind: 'task' | 'run';
  readonly definition: StepDefinition;
  readonly deps: readonly number[];
  readonly dependents: readonly number[];
}

/** A validated workflow: its steps by index, in a topological order, and their graph. */
export interface WorkflowPlan {
  readonly id: string;
  readonly steps: readonly StepPlan[];
  readonly byName: ReadonlyMap<string, number>;
  /** Step indexes, dependencies first. */
  readonly order: readonly number[];
  /** Position of each step in `order`. */
  readonly rank: Int32Array;
  /** Hash of the step names, kinds, dependencies and capabilities: a resumed run checks it. */
  readonly fingerprint: string;
  readonly hasTaskSteps: boolean;
  readonly compensationTimeout: number;
  readonly checkpointInterval: number;
  readonly cancelGrace: number;
}

// Keyed by the Workflow object: its plan stays out of the public shape.
const plans = new WeakMap<object, WorkflowPlan>();

export function attachPlan(workflow: object, plan: WorkflowPlan): void {
  plans.set(workflow, plan);
}

/** The plan of a workflow made by `defineWorkflow`. @throws InvalidWorkflowError for anything else */
export function planOf(workflow: unknown): WorkflowPlan {
  const plan = typeof workflow === 'object' && workflow !== null ? plans.get(workflow) : undefined;
  if (plan === undefined) throw new InvalidWorkflowError('workflow', 'must be a workflow made by defineWorkflow()');
  return plan;
}
