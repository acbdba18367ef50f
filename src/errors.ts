const BRAND = Symbol.for('parallel-orchestrator.error');

/** Stable machine-readable error codes. */
export type ErrorCode =
  | 'INVALID_OPTIONS'
  | 'INVALID_TASK'
  | 'INVALID_AGENT'
  | 'INVALID_ARGUMENT'
  | 'QUEUE_FULL'
  | 'NO_CAPABLE_AGENT'
  | 'TASK_TIMEOUT'
  | 'TASK_CANCELLED'
  | 'TASK_FAILED'
  | 'NON_RETRYABLE'
  | 'DUPLICATE_TASK'
  | 'DUPLICATE_AGENT'
  | 'AGENT_NOT_FOUND'
  | 'TASK_NOT_FOUND'
  | 'SHUTDOWN'
  | 'ABORTED'
  | 'CIRCUIT_OPEN'
  | 'WORKER_CRASHED'
  | 'CLAIM_LOST'
  | 'PREEMPTED'
  | 'STORE_ERROR'
  | 'DEPENDENCY_CYCLE'
  | 'UNKNOWN_DEPENDENCY'
  | 'DUPLICATE_STEP'
  | 'INVALID_WORKFLOW'
  | 'DUPLICATE_WORKFLOW_RUN'
  | 'WORKFLOW_DEFINITION_CHANGED'
  | 'COMPENSATION_TIMEOUT'
  | 'MISROUTED_TASK'
  | 'UNKNOWN_PACKAGE'
  | 'INVALID_WORKSPACE';

/** Base class of every error this library throws or reports. */
export class OrchestratorError extends Error {
  override readonly name: string = 'OrchestratorError';
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, BRAND, { value: true });
  }
}

/**
 * True for any error of this library, even one created by a second copy of the package
 * (the brand is a global symbol, not a class identity).
 */
export function isOrchestratorError(error: unknown): error is OrchestratorError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[BRAND] === true;
}

/** An option passed to `createParallelOrchestrator` is invalid. `field` is its dotted path. */
export class InvalidOptionsError extends OrchestratorError {
  override readonly name = 'InvalidOptionsError';
  constructor(readonly field: string, detail: string) {
    super('INVALID_OPTIONS', `${field} ${detail}`);
  }
}

/** A submitted task is invalid. `field` is its dotted path inside the task. */
export class InvalidTaskError extends OrchestratorError {
  override readonly name = 'InvalidTaskError';
  constructor(readonly field: string, detail: string, options?: { cause?: unknown }) {
    super('INVALID_TASK', `${field} ${detail}`, options);
  }
}

/** An argument of an orchestrator method is invalid (`shutdown` options, `cancel`'s id, an `audit` query, ...). `field` names it. */
export class InvalidArgumentError extends OrchestratorError {
  override readonly name = 'InvalidArgumentError';
  constructor(readonly field: string, detail: string) {
    super('INVALID_ARGUMENT', `${field} ${detail}`);
  }
}

/** An agent definition passed to `registerAgent` is invalid. */
export class InvalidAgentError extends OrchestratorError {
  override readonly name = 'InvalidAgentError';
  constructor(readonly field: string, detail: string) {
    super('INVALID_AGENT', `${field} ${detail}`);
  }
}

/** `submit` was called while `taskQueue.maxSize` tasks were already queued. */
export class QueueFullError extends OrchestratorError {
  override readonly name = 'QueueFullError';
  constructor(readonly maxSize: number) {
    super('QUEUE_FULL', `the task queue is full (maxSize ${maxSize}); use submitAsync() to wait for room`);
  }
}

/** No registered agent has every capability the task needs. */
export class NoCapableAgentError extends OrchestratorError {
  override readonly name = 'NoCapableAgentError';
  constructor(readonly taskId: string, readonly capabilities: readonly string[]) {
    super(
      'NO_CAPABLE_AGENT',
      `no registered agent has all of [${capabilities.join(', ')}] for task ${taskId}; register one, or submit with waitForAgent: true`,
    );
  }
}

/** A task ran longer than its timeout. */
export class TaskTimeoutError extends OrchestratorError {
  override readonly name = 'TaskTimeoutError';
  constructor(readonly taskId: string, readonly timeout: number) {
    super('TASK_TIMEOUT', `task ${taskId} timed out after ${timeout} ms`);
  }
}

/** A task was cancelled (by `cancel()`, by its own signal, or by a forced shutdown). */
export class TaskCancelledError extends OrchestratorError {
  override readonly name = 'TaskCancelledError';
  constructor(readonly taskId: string, readonly reason: string, options?: { cause?: unknown }) {
    super('TASK_CANCELLED', `task ${taskId} was cancelled: ${reason}`, options);
  }
}

/**
 * Throw this from a handler to fail the task at once, without retries.
 * (Any error with `retryable: false` has the same effect.)
 */
export class NonRetryableError extends OrchestratorError {
  override readonly name = 'NonRetryableError';
  readonly retryable = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super('NON_RETRYABLE', message, options);
  }
}

/** A task with this id is already queued or running. */
export class DuplicateTaskError extends OrchestratorError {
  override readonly name = 'DuplicateTaskError';
  constructor(readonly taskId: string) {
    super('DUPLICATE_TASK', `a task with id ${taskId} is already queued or running`);
  }
}

/** An agent with this id is already registered. */
export class DuplicateAgentError extends OrchestratorError {
  override readonly name = 'DuplicateAgentError';
  constructor(readonly agentId: string) {
    super('DUPLICATE_AGENT', `agent ${agentId} is already registered`);
  }
}

/** No agent with this id is registered. */
export class AgentNotFoundError extends OrchestratorError {
  override readonly name = 'AgentNotFoundError';
  constructor(readonly agentId: string) {
    super('AGENT_NOT_FOUND', `no agent ${agentId} is registered`);
  }
}

/** No live task (queued, running, retrying) or dead letter has this id. */
export class TaskNotFoundError extends OrchestratorError {
  override readonly name = 'TaskNotFoundError';
  constructor(readonly taskId: string) {
    super('TASK_NOT_FOUND', `no task ${taskId} is known`);
  }
}

/** The orchestrator has been shut down and accepts no more work. */
export class OrchestratorShutdownError extends OrchestratorError {
  override readonly name = 'OrchestratorShutdownError';
  constructor(options?: { cause?: unknown }) {
    super('SHUTDOWN', 'the orchestrator has been shut down', options);
  }
}

/** A wait (for example `submitAsync` waiting for room) was aborted by its signal. */
export class AbortedError extends OrchestratorError {
  override readonly name = 'AbortedError';
  constructor(what: string, reason: unknown) {
    super('ABORTED', `${what} was aborted`, { cause: reason });
  }
}

/**
 * The worker thread running a task died (uncaught error, `process.exit`, out of memory) or was
 * terminated because it was stuck. Retried per the task's retry policy.
 */
export class WorkerCrashedError extends OrchestratorError {
  override readonly name = 'WorkerCrashedError';
  constructor(readonly taskId: string, readonly workerId: string, detail: string, options?: { cause?: unknown }) {
    super('WORKER_CRASHED', `worker ${workerId} running task ${taskId} ${detail}`, options);
  }
}

/**
 * The reason a preempted run's `ctx.signal` aborts with: a more urgent task needs its slot. The
 * task goes back to the front of its priority lane and resumes from its latest checkpoint; a
 * preemption uses up no attempt and does not count against the agent's breaker.
 */
export class PreemptedError extends OrchestratorError {
  override readonly name = 'PreemptedError';
  constructor(readonly taskId: string, readonly by: string) {
    super('PREEMPTED', `task ${taskId} was preempted by the more urgent task ${by}; it resumes from its latest checkpoint`);
  }
}

/**
 * Shared store only: another node took over a task this node was running (this node's lease
 * expired, say while it was frozen or cut off). The run's signal aborts with it; whatever the run
 * returns is discarded, and `task:claim-lost` is emitted.
 */
export class ClaimLostError extends OrchestratorError {
  override readonly name = 'ClaimLostError';
  constructor(readonly taskId: string, detail: string) {
    super('CLAIM_LOST', `task ${taskId}: ${detail}`);
  }
}

/**
 * The store could not be opened or written: a corrupt, locked or unreadable database file, or a
 * schema from a newer version of this library. Thrown by `start()` (or by `shutdown()` when
 * the last writes fail), naming the file.
 */
export class StoreError extends OrchestratorError {
  override readonly name = 'StoreError';
  constructor(readonly path: string, detail: string, options?: { cause?: unknown }) {
    super('STORE_ERROR', `store ${path}: ${detail}`, options);
  }
}

/**
 * Turns anything thrown into an Error, keeping the original as `cause` when it was not one.
 * Never throws: a handler may throw a value that cannot be read (a null-prototype object, a
 * Proxy, a getter that throws), and the task must still fail rather than hang.
 */
export function coerceError(thrown: unknown): Error {
  let isError = false;
  try {
    if (thrown instanceof Error) {
      isError = true;
      // What the engine reads of an error later (its message, name, code, retryability): a getter
      // that throws there would strand the task half-failed.
      void [thrown.message, thrown.name, (thrown as { code?: unknown }).code, (thrown as { retryable?: unknown }).retryable];
      return thrown;
    }
    if (typeof thrown === 'object' && thrown !== null && typeof (thrown as { message?: unknown }).message === 'string') {
      return Object.assign(new Error((thrown as { message: string }).message, { cause: thrown }), thrown);
    }
  } catch {
    // Its prototype, message or properties could not be read: it is described below.
  }
  if (isError) return new Error('an error was thrown whose message, name, code or retryable cannot be read', { cause: thrown });
  return new Error(typeof thrown === 'string' ? thrown : `non-error thrown: ${describeThrown(thrown)}`, { cause: thrown });
}

/** `String(thrown)`, or its type when even that throws (no toString, or one that throws). */
export function describeThrown(thrown: unknown): string {
  try {
    return String(thrown);
  } catch {
    return `a value that cannot be converted to a string (${typeof thrown})`;
  }
}

/** The code reported for an error: its own string `code`, or TASK_FAILED. */
export function errorCode(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'TASK_FAILED';
}

/** False when the error was marked non-retryable (`NonRetryableError` or `retryable: false`). */
export function isRetryable(error: Error): boolean {
  return (error as { retryable?: unknown }).retryable !== false;
}

/**
 * A dependency graph has a cycle: workflow steps (thrown by `defineWorkflow`, before anything
 * runs) or workspace packages (`executeWorkflow` with `failOnCycle: true`). `cycle` is one cycle
 * in dependency order (each member depends on the next, the last on the first); `cycles` lists
 * the members of every cycle (each strongly connected component), sorted.
 */
export class DependencyCycleError extends OrchestratorError {
  override readonly name = 'DependencyCycleError';
  constructor(
    readonly cycle: readonly string[],
    readonly cycles: readonly (readonly string[])[],
    /** What has the cycle: `workflow <id>` or `packages`. */
    readonly where: string,
  ) {
    const more = cycles.length > 1 ? ` (and ${cycles.length - 1} more cycle${cycles.length > 2 ? 's' : ''}: ${cycles.slice(1).map((c) => `[${c.join(', ')}]`).join(', ')})` : '';
    super('DEPENDENCY_CYCLE', `${where} has a dependency cycle: ${[...cycle, cycle[0]].join(' → ')}${more}`);
  }
}

/** A workflow step depends on a step the workflow does not have. Thrown by `defineWorkflow`. */
export class UnknownDependencyError extends OrchestratorError {
  override readonly name = 'UnknownDependencyError';
  constructor(readonly workflowId: string, readonly step: string, readonly dependency: string) {
    super('UNKNOWN_DEPENDENCY', `step '${step}' of workflow ${workflowId} depends on '${dependency}', which is not a step of the workflow`);
  }
}

/** Two workflow steps have the same name. Thrown by `defineWorkflow`. */
export class DuplicateStepError extends OrchestratorError {
  override readonly name = 'DuplicateStepError';
  constructor(readonly workflowId: string, readonly step: string) {
    super('DUPLICATE_STEP', `workflow ${workflowId} has two steps named '${step}'`);
  }
}

/** A workflow definition (or its registration) is invalid. `field` is its dotted path. */
export class InvalidWorkflowError extends OrchestratorError {
  override readonly name = 'InvalidWorkflowError';
  constructor(readonly field: string, detail: string) {
    super('INVALID_WORKFLOW', `${field} ${detail}`);
  }
}

/** A workflow run with this id is already queued or running. */
export class DuplicateWorkflowRunError extends OrchestratorError {
  override readonly name = 'DuplicateWorkflowRunError';
  constructor(readonly runId: string) {
    super('DUPLICATE_WORKFLOW_RUN', `a workflow run with id ${runId} (or another task with that id) is already queued or running`);
  }
}

/**
 * A run was resumed (after a crash, or on another node) by a process whose definition of its
 * workflow has other steps or dependencies than the one it started with. The run's coordinator
 * fails without retries (it becomes a dead letter; `requeueDeadLetter` resumes it once the
 * matching definition is registered again).
 */
export class WorkflowDefinitionChangedError extends OrchestratorError {
  override readonly name = 'WorkflowDefinitionChangedError';
  readonly retryable = false;
  constructor(readonly workflowId: string, readonly runId: string) {
    super('WORKFLOW_DEFINITION_CHANGED', `run ${runId} of workflow ${workflowId} was started with another definition of the workflow (its steps or dependencies differ); register the definition it started with to resume it`);
  }
}

/** A step's compensation ran longer than its `compensationTimeout`: reported in the run's `compensationFailures`. */
export class CompensationTimeoutError extends OrchestratorError {
  override readonly name = 'CompensationTimeoutError';
  constructor(readonly runId: string, readonly step: string, readonly timeout: number) {
    super('COMPENSATION_TIMEOUT', `the compensation of step '${step}' of run ${runId} timed out after ${timeout} ms`);
  }
}

/**
 * A task reached the workflow coordinator agent without being a workflow run: a task with no
 * capabilities (which any agent may serve) was routed to it. Reported for that task, without
 * retries. Give such tasks capabilities.
 */
export class MisroutedTaskError extends OrchestratorError {
  override readonly name = 'MisroutedTaskError';
  readonly retryable = false;
  constructor(readonly taskId: string, readonly agentId: string) {
    super('MISROUTED_TASK', `task ${taskId} was routed to the workflow coordinator agent ${agentId}, which runs only workflow runs; give the task capabilities so that it goes to one of your agents`);
  }
}

/** A changed package named to `analyzeWorkflowImpact` / `executeWorkflow` is not a package of the workspace. */
export class UnknownPackageError extends OrchestratorError {
  override readonly name = 'UnknownPackageError';
  constructor(readonly packageName: string, known: readonly string[]) {
    super('UNKNOWN_PACKAGE', `'${packageName}' is not a package of the workspace${known.length > 0 && known.length <= 20 ? ` (its packages: ${known.join(', ')})` : ` (${known.length} packages)`}`);
  }
}

/** A workspace cannot be read: no workspaces configuration, an unreadable or invalid package.json, two packages with one name. `path` names the file. */
export class WorkspaceError extends OrchestratorError {
  override readonly name = 'WorkspaceError';
  constructor(readonly path: string, detail: string, options?: { cause?: unknown }) {
    super('INVALID_WORKSPACE', `${path}: ${detail}`, options);
  }
}
