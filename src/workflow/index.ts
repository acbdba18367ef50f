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
export { analyzeWorkflowImpact, type ImpactInput, type PackageManifest, type WorkflowImpact } from './impact.js';
export {
  executeWorkflow,
  WORKFLOW_STAGES,
  type ExecuteWorkflowInput,
  type ExecuteWorkflowOptions,
  type PackageWorkflowResult,
  type StageCompensator,
  type StageContext,
  type StageExecutor,
  type StageName,
  type StagePackageStatus,
  type StageResult,
} from './package-workflow.js';
export { verifyReceipt, type Receipt, type ReceiptEntry, type ReceiptEntryKind, type ReceiptVerification } from './receipt.js';
export { readWorkspace, changedPackagesSince, type Workspace, type WorkspacePackage } from './workspace.js';
