import type { AgentRole, TaskPriority } from '../enums.js';
import type { AuditEvent, JsonPatchOperation, RetryPolicy } from '../index.js';

/** The results of a workflow's steps, by step name. */
export type WorkflowResults = Record<string, unknown>;

/** What a `run` step receives. */
export interface StepContext<I = unknown, R extends WorkflowResults = WorkflowResults> {
  readonly runId: string;
  readonly workflowId: string;
  /** This step's name. */
  readonly step: string;
  /** The workflow's input (as given to `runWorkflow`). */
  readonly input: I;
  /** Results of the steps completed so far (every dependency of this step among them). Read-only. */
  readonly results: Readonly<Partial<R>>;
  /** Aborted when the step times out, the run fails or is cancelled, or the orchestrator shuts down. */
  readonly signal: AbortSignal;
  /** 1 for the first try, 2 for the first retry, … */
  readonly attempt: number;
  /** Streams a progress state of this step to the run's `step:progress` listeners. */
  progress(state: unknown): void;
}

/** Why a rollback runs. */
export type RollbackReason = 'failed' | 'cancelled';

/** What a step's `compensate` receives. */
export interface CompensationContext<I = unknown, R extends WorkflowResults = WorkflowResults, T = unknown> {
  readonly runId: string;
  readonly workflowId: string;
  /** The step being compensated. */
  readonly step: string;
  readonly input: I;
  /** This step's result. */
  readonly result: T;
  /** Results of every step that completed. */
  readonly results: Readonly<Partial<R>>;
  /** Why the run rolls back. */
  readonly reason: RollbackReason;
  /** The step whose failure started the rollback (null when the run was cancelled). */
  readonly failedStep: string | null;
  /** Aborted when the compensation times out (`compensationTimeout`) or the orchestrator shuts down. */
  readonly signal: AbortSignal;
}

/**
 * One step of a workflow: either a **task step** (`capabilities`: submitted to the orchestrator,
 * so it gets priorities, routing, breakers, retries and streaming) or a **function step**
 * (`run`: executed inside the run's coordinator). `T` is its result.
 */
export interface StepDefinition<I = unknown, R extends WorkflowResults = WorkflowResults, T = unknown> {
  /** Steps that must complete before this one starts. Their results reach it. @default [] */
  dependsOn?: readonly (keyof R & string)[];
  /** Function step: its result is the step's result. Give this or `capabilities`. */
  run?: (ctx: StepContext<I, R>) => T | Promise<T>;
  /** Task step: the capabilities of the task (non-empty). Give this or `run`. */
  capabilities?: readonly string[];
  /** Task step: the task's `type`. @default the step's name */
  type?: string;
  /** Task step: the task's priority. @default the run's priority (`TaskPriority.NORMAL` unless given to runWorkflow) */
  priority?: TaskPriority;
  /**
   * Task step: builds the task's payload from the results so far and the workflow's input.
   * @default `{ input, results }` with the results of this step's dependencies only
   */
  input?: (results: Readonly<Partial<R>>, input: I) => unknown;
  /** Task step: the task's retry policy (fields over `taskQueue.retry`). Function step: tries it gets (only with this option: `{ maxAttempts: 1 }` by default). */
  retry?: Partial<RetryPolicy>;
  /** Run-time limit per attempt, ms (0 = none). @default task steps: `taskQueue.defaultTimeout`; function steps: 0 */
  timeout?: number;
  /** Task step: prefer agents of this role. */
  preferredRole?: AgentRole;
  /** Task step: wait for a capable agent to register instead of failing with `NoCapableAgentError`. @default false */
  waitForAgent?: boolean;
  /** Undoes the step's effect when the run rolls back after it completed. Failures are reported, not thrown. */
  compensate?: (ctx: CompensationContext<I, R, T>) => void | Promise<void>;
  /** Longest a compensation of this step may run, ms. @default the workflow's `compensationTimeout` */
  compensationTimeout?: number;
}

/** A step in the array form of `steps`: a step definition with its name. */
export interface NamedStepDefinition<I = unknown, R extends WorkflowResults = WorkflowResults> extends StepDefinition<I, R> {
  name: keyof R & string;
}

/** What `defineWorkflow` takes. */
export interface WorkflowDefinition<I = unknown, R extends WorkflowResults = WorkflowResults> {
  /** Names the workflow in every process that runs it (a recovered run finds its definition by this id). */
  id: string;
  /** The steps, by name (or as an array of steps with a `name` each). */
  steps: { [K in keyof R]: StepDefinition<I, R, R[K]> } | readonly NamedStepDefinition<I, R>[];
  /** Longest a compensation may run, ms (a step's own `compensationTimeout` wins). @default 30000 */
  compensationTimeout?: number;
  /**
   * Least time between two saves of the run's progress (its checkpoint) while steps complete, ms.
   * Rollback progress is saved at once, every time. @default 100
   */
  checkpointInterval?: number;
  /** How long a failing or cancelled run waits for its function steps to stop after their signal aborted, ms. @default 5000 */
  cancelGrace?: number;
}

/** Options of `runWorkflow`. */
export interface RunWorkflowOptions {
  /** The run's id; must not be that of a queued or running task. @default `<workflow id>-<random UUID>` */
  runId?: string;
  /** Priority of the run's coordinator and default of its task steps. @default TaskPriority.NORMAL */
  priority?: TaskPriority;
}

/** Options of `registerWorkflows`. */
export interface RegisterWorkflowsOptions {
  /**
   * Runs this process coordinates at once. Each running run's coordinator holds one worker slot
   * (of `workerPool.maxWorkers`), so this must leave slots for the steps.
   * @default max(1, workerPool.maxWorkers - 1)
   */
  maxConcurrentRuns?: number;
}

/** An error as a run's result reports it (plain data, so it reads the same from a store). */
export interface WorkflowErrorInfo {
  name: string;
  message: string;
  code: string;
}

/** How a run ended. */
export type WorkflowStatus = 'completed' | 'failed' | 'cancelled';

/** A run's state: queued (coordinator not started), running, rolling back, or how it ended (`error`: the run itself could not finish). */
export type WorkflowRunStatus = 'queued' | 'running' | 'rolling-back' | WorkflowStatus | 'error';

/** How a step ended, in a finished run. `skipped`: never started (the run failed or was cancelled first). */
export type StepOutcome = 'completed' | 'failed' | 'cancelled' | 'skipped' | 'compensated' | 'compensation-failed';

/** A step's state in `getWorkflow`. */
export type StepStatus = 'pending' | 'queued' | 'running' | 'retrying' | StepOutcome;

/** The final result of a run (also the result of its coordinator task). */
export interface WorkflowResult<R extends WorkflowResults = WorkflowResults> {
  runId: string;
  workflowId: string;
  status: WorkflowStatus;
  /** Results of the steps that completed. */
  results: Partial<R>;
  /** The step whose failure (after its retries) failed the run; null otherwise. */
  failedStep: string | null;
  /** That step's error (or the cancel reason); null for a completed run. */
  error: WorkflowErrorInfo | null;
  /** True when the run failed or was cancelled and every compensation it needed succeeded. */
  rolledBack: boolean;
  /** Steps whose compensation ran and succeeded, in the order they ran. */
  compensated: string[];
  /** Compensations that failed or timed out. */
  compensationFailures: { step: string; error: WorkflowErrorInfo }[];
  /** How each step ended. */
  steps: Record<string, StepOutcome>;
  /** Epoch ms of `runWorkflow` and of the end. */
  startedAt: number;
  finishedAt: number;
}

/** Events of a `WorkflowRun`, each payload carrying its name as `type`. */
export interface WorkflowEvents<R extends WorkflowResults = WorkflowResults> {
  /** The coordinator started (again, `resumed: true`, after a crash or a coordinator retry). */
  'workflow:started': { type: 'workflow:started'; runId: string; workflowId: string; resumed: boolean; attempt: number };
  /** An attempt of a step started. `taskId` and `agentId` are null for function steps. */
  'step:started': { type: 'step:started'; runId: string; step: string; taskId: string | null; agentId: string | null; attempt: number };
  /** A step's progress: its `ctx.progress(state)`; `delta` is the task's JSON Patch (task steps with delta compression). */
  'step:progress': { type: 'step:progress'; runId: string; step: string; taskId: string | null; sequence: number; data: unknown; delta?: JsonPatchOperation[] };
  /** An attempt failed and another follows after `delay` ms. */
  'step:retry': { type: 'step:retry'; runId: string; step: string; attempt: number; delay: number; error: Error };
  /** A step completed. `resumed`: found completed when the run resumed. */
  'step:completed': { type: 'step:completed'; runId: string; step: string; result: unknown; attempts: number; duration: number | null; resumed: boolean };
  /** A step failed for good (its retries used up): the run fails. */
  'step:failed': { type: 'step:failed'; runId: string; step: string; error: Error; code: string; attempts: number };
  /** A running step was cancelled because the run failed or was cancelled. */
  'step:cancelled': { type: 'step:cancelled'; runId: string; step: string; reason: string };
  /** The run rolls back: `steps` will be compensated, in this order. */
  'rollback:started': { type: 'rollback:started'; runId: string; reason: RollbackReason; failedStep: string | null; steps: string[] };
  'compensation:started': { type: 'compensation:started'; runId: string; step: string };
  'compensation:completed': { type: 'compensation:completed'; runId: string; step: string; duration: number };
  /** A compensation threw or timed out; the rollback goes on with the next. */
  'compensation:failed': { type: 'compensation:failed'; runId: string; step: string; error: Error; code: string };
  'rollback:completed': { type: 'rollback:completed'; runId: string; compensated: string[]; failures: { step: string; error: WorkflowErrorInfo }[] };
  /** The run ended (completed, failed or cancelled); `result()` resolves with the same result. */
  'workflow:finished': { type: 'workflow:finished'; result: WorkflowResult<R> };
  /**
   * The run could not finish here: its coordinator was cancelled (`orchestrator.cancel(runId)`,
   * or a shutdown: with a durable store the run resumes at the next `start()`) or failed for
   * good. `result()` rejects with `error`.
   */
  'workflow:error': { type: 'workflow:error'; runId: string; error: Error };
}

/** Any event of a `WorkflowRun`. */
export type WorkflowEvent<R extends WorkflowResults = WorkflowResults> = WorkflowEvents<R>[keyof WorkflowEvents<R>];

/** A step's state in `getWorkflow`. */
export interface WorkflowStepInfo {
  status: StepStatus;
  /** Its task's id (task steps), else null. */
  taskId: string | null;
  /** Attempts started (as far as known). */
  attempts: number;
}

/** What `getWorkflow` returns. */
export interface WorkflowInfo<R extends WorkflowResults = WorkflowResults> {
  runId: string;
  workflowId: string;
  status: WorkflowRunStatus;
  steps: Record<string, WorkflowStepInfo>;
  /** The result, once finished. */
  result: WorkflowResult<R> | null;
  /** Why the run could not finish (status `error`, or a cancelled coordinator), else null. */
  error: WorkflowErrorInfo | null;
}

/** One entry of `workflowHistory`: an audit entry of the run's coordinator (`step: null`) or of one of its task steps. */
export interface WorkflowHistoryEntry extends AuditEvent {
  step: string | null;
}
