import { randomUUID } from 'node:crypto';
import { AgentRole } from '../enums.js';
import { DuplicateWorkflowRunError, InvalidArgumentError, InvalidOptionsError, InvalidWorkflowError, MisroutedTaskError, TaskCancelledError, WorkflowDefinitionChangedError } from '../errors.js';
import type { ParallelOrchestrator, Task, TaskContext, TaskObservable, Unsubscribe } from '../index.js';
import { Coordinator, type CoordinatorPayload, type CoordinatorState } from './coordinator.js';
import { planOf, type WorkflowPlan } from './plan.js';
import { RunChannel, WorkflowRun } from './run.js';
import type { RegisterWorkflowsOptions, RunWorkflowOptions, WorkflowResult, WorkflowResults } from './types.js';
import { hasCode, isRecord, requireRunId } from './util.js';
import type { Workflow } from './definition.js';

/** The `type` of a coordinator task. */
export const COORDINATOR_TYPE = 'workflow';
/** The capability a coordinator task asks for: only the coordinator agent of a process that registered the workflow has it. */
const coordinatorCapability = (workflowId: string): string => `workflow:${workflowId}`;

/**
 * A coordinator survives crashes (each recovery counts as an attempt) and its own bugs (retried,
 * resuming from its checkpoint); it never fails because a step failed (that is a result).
 */
const COORDINATOR_RETRY = { maxAttempts: 100, initialDelay: 100, factor: 2, maxDelay: 5_000, jitter: 0.2 };
const TERMINAL = new Set(['completed', 'failed', 'timeout', 'cancelled']);

const hosts = new WeakMap<ParallelOrchestrator, WorkflowHost>();

/** The workflow side of one orchestrator in this process. */
export function hostOf(orchestrator: ParallelOrchestrator): WorkflowHost {
  if (typeof orchestrator !== 'object' || orchestrator === null || typeof (orchestrator as { submit?: unknown }).submit !== 'function') {
    throw new InvalidArgumentError('orchestrator', 'must be an orchestrator made by createParallelOrchestrator()');
  }
  let host = hosts.get(orchestrator);
  if (host === undefined) hosts.set(orchestrator, (host = new WorkflowHost(orchestrator)));
  return host;
}

function isCoordinatorPayload(value: unknown): value is CoordinatorPayload {
  return isRecord(value) && typeof value.workflowId === 'string' && typeof value.fingerprint === 'string' && typeof value.incarnation === 'string';
}

/**
 * Registers workflows, owns the coordinator agent (one, whose capabilities are those of every
 * registered workflow: its `maxConcurrent` bounds the runs this process coordinates), and keeps
 * the public views of the runs it knows.
 */
export class WorkflowHost {
  readonly orchestrator: ParallelOrchestrator;
  readonly #workflows = new Map<string, { workflow: Workflow; plan: WorkflowPlan }>();
  readonly #channels = new Map<string, { channel: RunChannel; run: WorkflowRun }>();
  readonly #coordinators = new Map<string, Coordinator>();
  /** Cancels asked for coordinators not started yet (a recovered run): applied when they start. */
  readonly #pendingCancels = new Map<string, string>();
  /** Runs whose coordinator gave its slot to a more urgent task: they started, though their task's attempt count (not used up) is 0. */
  readonly #gaveWay = new Set<string>();
  #agentId: string | null = null;
  #agentWorkflows = new Set<string>();
  #generation = 0;
  #maxConcurrentRuns: number | undefined;

  constructor(orchestrator: ParallelOrchestrator) {
    this.orchestrator = orchestrator;
    // A coordinator's failures say nothing of the coordinator agent's health (a misrouted task,
    // a changed definition): its circuit must never hold every run back, so it is closed again.
    orchestrator.on('agent:circuit-state', ({ agentId, to }) => {
      if (to !== 'open' || agentId !== this.#agentId) return;
      queueMicrotask(() => {
        try {
          orchestrator.resetCircuit(agentId);
        } catch {
          // unregistered meanwhile
        }
      });
    });
  }

  /** Registers workflows (and the coordinator agent that runs them). Idempotent per workflow. */
  register(workflows: readonly Workflow[], options: RegisterWorkflowsOptions = {}): void {
    checkKeys(options, ['maxConcurrentRuns']);
    const limit: unknown = options.maxConcurrentRuns;
    if (limit !== undefined && !(typeof limit === 'number' && Number.isInteger(limit) && limit >= 1)) throw new InvalidArgumentError('maxConcurrentRuns', `must be an integer ≥ 1 (received ${String(limit)})`);
    const plans = workflows.map((workflow) => ({ workflow, plan: planOf(workflow) }));
    for (const { plan } of plans) {
      const known = this.#workflows.get(plan.id);
      if (known !== undefined && known.plan.fingerprint !== plan.fingerprint) {
        throw new InvalidWorkflowError('id', `'${plan.id}' is the id of another workflow registered on this orchestrator (its steps or dependencies differ); give each workflow its own id`);
      }
    }
    const changedLimit = limit !== undefined && limit !== this.#maxConcurrentRuns;
    if (changedLimit) this.#maxConcurrentRuns = limit;
    for (const entry of plans) this.#workflows.set(entry.plan.id, entry);
    this.#checkSlots();
    this.#ensureAgent(changedLimit);
  }

  /** A workflow with task steps needs a worker slot besides its coordinator's. */
  #checkSlots(): void {
    const maxWorkers = this.orchestrator.getStats().workerPool.maxWorkers;
    const withTasks = [...this.#workflows.values()].find((entry) => entry.plan.hasTaskSteps);
    if (withTasks === undefined) return;
    if (maxWorkers < 2) {
      throw new InvalidOptionsError('workerPool.maxWorkers', `must be at least 2 to run workflow ${withTasks.plan.id}: a running workflow's coordinator holds one worker slot and its task steps need another (received ${maxWorkers})`);
    }
    if (this.#maxConcurrentRuns !== undefined && this.#maxConcurrentRuns >= maxWorkers) {
      throw new InvalidArgumentError('maxConcurrentRuns', `must be below workerPool.maxWorkers (${maxWorkers}): each running workflow's coordinator holds a worker slot, and the task steps of workflow ${withTasks.plan.id} need one too (received ${this.#maxConcurrentRuns})`);
    }
  }

  #ensureAgent(force: boolean): void {
    if (!force && this.#agentId !== null && [...this.#workflows.keys()].every((id) => this.#agentWorkflows.has(id))) return;
    const previous = this.#agentId;
    const ids = [...this.#workflows.keys()];
    const maxConcurrent = this.#maxConcurrentRuns ?? Math.max(1, this.orchestrator.getStats().workerPool.maxWorkers - 1);
    // Register the new agent first, so that queued runs always have one (they wait for it anyway).
    for (;;) {
      const agentId = this.#generation === 0 ? 'workflow-coordinator' : `workflow-coordinator-${this.#generation}`;
      this.#generation++;
      try {
        this.orchestrator.registerAgent({
          agentId,
          role: AgentRole.COORDINATOR,
          capabilities: ids.map(coordinatorCapability),
          maxConcurrent,
          handler: (task: Task, ctx: TaskContext) => this.#coordinate(task, ctx as TaskContext<CoordinatorState>, agentId),
        });
        this.#agentId = agentId;
        this.#agentWorkflows = new Set(ids);
        break;
      } catch (error) {
        if (!hasCode(error, 'DUPLICATE_AGENT')) throw error;
      }
    }
    // Its running coordinators finish; it takes no new ones.
    if (previous !== null) {
      try {
        this.orchestrator.unregisterAgent(previous);
      } catch {
        // already gone
      }
    }
  }

  /** Starts a run: submits its coordinator task. */
  run(workflow: Workflow, input: unknown, options: RunWorkflowOptions = {}): WorkflowRun {
    const plan = planOf(workflow);
    checkKeys(options, ['runId', 'priority']);
    const { runId = `${plan.id}-${randomUUID()}`, priority = 2 }: { runId?: unknown; priority?: unknown } = options;
    if (typeof runId !== 'string' || runId.length === 0) throw new InvalidArgumentError('runId', `must be a non-empty string (received ${String(runId)})`);
    if (!(typeof priority === 'number' && Number.isInteger(priority) && priority >= 0 && priority <= 4)) throw new InvalidArgumentError('priority', `must be a TaskPriority, 0..4 (received ${String(priority)})`);
    this.register([workflow]);
    if (this.#channels.has(runId)) throw new DuplicateWorkflowRunError(runId);
    const payload: CoordinatorPayload = { workflowId: plan.id, fingerprint: plan.fingerprint, input, incarnation: randomUUID(), startedAt: Date.now(), priority };
    let observable: TaskObservable;
    try {
      observable = this.orchestrator.submit({
        id: runId,
        type: COORDINATOR_TYPE,
        priority: priority as 0,
        capabilities: [coordinatorCapability(plan.id)],
        payload,
        metadata: { workflowId: plan.id },
        timeout: 0,
        retry: COORDINATOR_RETRY,
        waitForAgent: true,
        preferredRole: AgentRole.COORDINATOR,
      });
    } catch (error) {
      if (hasCode(error, 'DUPLICATE_TASK')) throw new DuplicateWorkflowRunError(runId);
      throw error;
    }
    return this.#view(runId, plan.id, observable);
  }

  /** The public view of a run, bound to its coordinator task's end. */
  #view(runId: string, workflowId: string, observable: TaskObservable): WorkflowRun {
    const known = this.#channels.get(runId);
    if (known !== undefined) return known.run;
    const channel = new RunChannel(runId, workflowId);
    const run = new WorkflowRun(channel);
    channel.cancel = (reason) => this.cancel(runId, reason);
    this.#channels.set(runId, { channel, run });
    const offs: Unsubscribe[] = [];
    const end = () => {
      for (const off of offs) off();
      if (this.#channels.get(runId)?.channel === channel) this.#channels.delete(runId);
      this.#pendingCancels.delete(runId);
      this.#gaveWay.delete(runId);
    };
    offs.push(
      observable.on('complete', (event) => {
        end();
        channel.emit('workflow:finished', { type: 'workflow:finished', result: event.result as WorkflowResult });
      }),
      observable.on('error', (event) => {
        end();
        channel.emit('workflow:error', { type: 'workflow:error', runId, error: event.error });
      }),
      observable.on('cancelled', (event) => {
        const cancelledQueued = this.#pendingCancels.get(runId) === event.reason && channel.status === 'queued';
        end();
        if (cancelledQueued) {
          // Cancelled before it started: nothing ran, nothing to undo.
          const now = Date.now();
          channel.emit('workflow:finished', {
            type: 'workflow:finished',
            result: { runId, workflowId, status: 'cancelled', results: {}, failedStep: null, error: { name: 'TaskCancelledError', message: event.reason, code: 'TASK_CANCELLED' }, rolledBack: true, compensated: [], compensationFailures: [], steps: {}, startedAt: now, finishedAt: now },
          });
        } else {
          channel.emit('workflow:error', { type: 'workflow:error', runId, error: new TaskCancelledError(runId, event.reason) });
        }
      }),
    );
    return run;
  }

  /** A run this process knows (started here, or a live coordinator task of a workflow). */
  async observe(runId: string): Promise<WorkflowRun | undefined> {
    const known = this.#channels.get(runId);
    if (known !== undefined) return known.run;
    const details = await this.orchestrator.findTask(runId);
    const payload = details?.payload;
    if (details === undefined || details.type !== COORDINATOR_TYPE || !isCoordinatorPayload(payload)) return undefined;
    const observable = this.orchestrator.observe(runId);
    if (observable === undefined) return undefined;
    return this.#view(runId, payload.workflowId, observable);
  }

  /** Cancels a run (see `cancelWorkflow`). */
  async cancel(runId: string, reason: string): Promise<boolean> {
    if (typeof reason !== 'string') throw new InvalidArgumentError('reason', 'must be a string');
    const coordinator = this.#coordinators.get(runId);
    if (coordinator !== undefined) return coordinator.cancel(reason);
    const info = this.orchestrator.getTask(runId);
    if (info === undefined || info.type !== COORDINATOR_TYPE || TERMINAL.has(info.status)) return false;
    if (info.status === 'running') {
      // Coordinated by another process (a shared store): it cannot be asked; stop it (no rollback).
      return this.orchestrator.cancel(runId, reason);
    }
    if (this.#pendingCancels.has(runId)) return false;
    this.#pendingCancels.set(runId, reason);
    // Never started: no step can exist, so it just ends. Started before (a recovered, retried or
    // preempted coordinator): its steps may live, so it rolls back when it starts.
    if (info.attempt === 0 && !this.#gaveWay.has(runId)) return this.orchestrator.cancel(runId, reason);
    return true;
  }

  // Coordinators.

  async #coordinate(task: Task, ctx: TaskContext<CoordinatorState>, agentId: string): Promise<WorkflowResult<WorkflowResults>> {
    const payload = task.payload;
    if (task.type !== COORDINATOR_TYPE || !isCoordinatorPayload(payload)) throw new MisroutedTaskError(task.id, agentId);
    const entry = this.#workflows.get(payload.workflowId);
    if (entry === undefined) throw new MisroutedTaskError(task.id, agentId);
    if (entry.plan.fingerprint !== payload.fingerprint) throw new WorkflowDefinitionChangedError(payload.workflowId, task.id);
    const observable = this.orchestrator.observe(task.id);
    const channel = observable === undefined ? new RunChannel(task.id, payload.workflowId) : this.#channelOf(this.#view(task.id, payload.workflowId, observable));
    const coordinator = new Coordinator(this, entry.plan, channel, task.id, payload, ctx);
    this.#coordinators.set(task.id, coordinator);
    const pendingCancel = this.#pendingCancels.get(task.id);
    this.#pendingCancels.delete(task.id);
    try {
      const result = await coordinator.execute(pendingCancel);
      this.#gaveWay.delete(task.id);
      return result;
    } catch (error) {
      if (hasCode(error, 'PREEMPTED')) this.#gaveWay.add(task.id);
      else this.#gaveWay.delete(task.id);
      throw error;
    } finally {
      if (this.#coordinators.get(task.id) === coordinator) this.#coordinators.delete(task.id);
    }
  }

  #channelOf(run: WorkflowRun): RunChannel {
    return this.#channels.get(run.runId)!.channel;
  }

  /** A registered workflow's plan, by id. */
  planOf(workflowId: string): WorkflowPlan | undefined {
    return this.#workflows.get(workflowId)?.plan;
  }

  /** The run being coordinated here. */
  coordinatorOf(runId: string): Coordinator | undefined {
    return this.#coordinators.get(runId);
  }
}

/**
 * Starts a run of `workflow` on `orchestrator` and returns its live view at once. The first run
 * of a workflow registers it (see `registerWorkflows`). The run is a task of the orchestrator
 * (its coordinator, id `runId`, type `'workflow'`); each task step is a task `<runId>/<step>`.
 *
 * @throws InvalidWorkflowError (not a workflow made by defineWorkflow, or another workflow with its id registered),
 *   InvalidArgumentError (options), InvalidOptionsError (`workerPool.maxWorkers` below 2 with task steps),
 *   DuplicateWorkflowRunError, OrchestratorShutdownError, and `submit`'s errors for the coordinator
 *   (InvalidTaskError when a durable store cannot encode `input` as JSON)
 */
export function runWorkflow<I, R extends WorkflowResults>(orchestrator: ParallelOrchestrator, workflow: Workflow<I, R>, input: I, options?: RunWorkflowOptions): WorkflowRun<R> {
  return hostOf(orchestrator).run(workflow as Workflow, input, options) as unknown as WorkflowRun<R>;
}

/**
 * Registers workflows on an orchestrator, so that runs of them left by a crashed process (durable
 * store) or another node resume here: every process that may carry runs on registers the same
 * definitions (workflow definitions are code). Runs of a workflow not registered wait, queued.
 * Idempotent.
 *
 * @throws InvalidWorkflowError when another workflow with the same id is registered,
 *   InvalidArgumentError (options), InvalidOptionsError (`workerPool.maxWorkers` below 2 with task steps)
 */
export function registerWorkflows(orchestrator: ParallelOrchestrator, workflows: readonly Workflow<never, never>[] | readonly Workflow[], options?: RegisterWorkflowsOptions): void {
  if (!Array.isArray(workflows)) throw new InvalidArgumentError('workflows', 'must be an array of workflows made by defineWorkflow()');
  hostOf(orchestrator).register(workflows as readonly Workflow[], options);
}

/**
 * The live view of a run by its id: one started or coordinated in this process, or a queued or
 * running coordinator task (a run recovered at `start()`). Undefined for an unknown or finished run
 * (use `getWorkflow`).
 */
export async function observeWorkflow<R extends WorkflowResults = WorkflowResults>(orchestrator: ParallelOrchestrator, runId: string): Promise<WorkflowRun<R> | undefined> {
  requireRunId(runId);
  return hostOf(orchestrator).observe(runId) as Promise<WorkflowRun<R> | undefined>;
}

/**
 * Cancels a run: no new steps start, its running steps are cancelled and its completed steps
 * compensated; it ends with status `cancelled`. Resolves false when the run is unknown, ended,
 * or already stopping or rolling back. A run coordinated by another process is stopped without
 * a rollback (its coordinator task is cancelled).
 */
export async function cancelWorkflow(orchestrator: ParallelOrchestrator, runId: string, reason = 'cancelled by caller'): Promise<boolean> {
  requireRunId(runId);
  return hostOf(orchestrator).cancel(runId, reason);
}

/** @throws InvalidArgumentError when `options` is not an object or has a key not in `known` */
function checkKeys(options: unknown, known: readonly string[]): void {
  if (!isRecord(options)) throw new InvalidArgumentError('options', 'must be an object');
  const unknown = Object.keys(options).find((key) => !known.includes(key));
  if (unknown !== undefined) throw new InvalidArgumentError(`options.${unknown}`, 'is not a known option (check its spelling)');
}
