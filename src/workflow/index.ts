// DAG workflows on the orchestrator's public API. Re-exported by src/index.ts.
export { defineWorkflow, Workflow } from './definition.js';
export { runWorkflow, registerWorkflows, observeWorkflow, cancelWorkflow } from './host.js';
export { getWorkflow, workflowHistory } from './inspect.js';
export { WorkflowRun } from './run.js';
export type {
  CompensationContext,
  NamedStepDefinition,
  RegisterWorkflowsOptions,
  RollbackReason,
  RunWorkflowOptions,
  StepContext,
  StepDefinition,
  StepOutcome,
  StepStatus,
  WorkflowDefinition,
  WorkflowErrorInfo,
  WorkflowEvent,
  WorkflowEvents,
  WorkflowHistoryEntry,
  WorkflowInfo,
  WorkflowResult,
  WorkflowResults,
  WorkflowRunStatus,
  WorkflowStatus,
  WorkflowStepInfo,
} from './types.js';
