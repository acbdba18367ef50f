import type { AuditEvent, ParallelOrchestrator } from '../index.js';
import type { CoordinatorPayload, CoordinatorState } from './coordinator.js';
import { COORDINATOR_TYPE, hostOf } from './host.js';
import type { StepStatus, WorkflowHistoryEntry, WorkflowInfo, WorkflowResult, WorkflowResults, WorkflowRunStatus, WorkflowStepInfo } from './types.js';
import { isRecord, requireRunId } from './util.js';

/** A step's state from its audit trail: the last transition says where it is. */
function statusFromHistory(entries: readonly AuditEvent[]): WorkflowStepInfo['status'] {
  const last = entries[entries.length - 1];
  switch (last?.type) {
    case undefined:
      return 'pending';
    case 'submitted':
    case 'recovered':
    case 'requeued':
      return 'queued';
    case 'started':
    case 'checkpoint':
      return 'running';
    case 'retried':
      return 'retrying';
    case 'completed':
      return 'completed';
    case 'cancelled':
      return 'cancelled';
    default:
      return 'failed';
  }
}

function attemptsOf(entries: readonly AuditEvent[]): number {
  let attempts = 0;
  for (const entry of entries) if (entry.type === 'started' && entry.attempt !== null && entry.attempt > attempts) attempts = entry.attempt;
  return attempts;
}

/** Step names of a run and which of them are tasks: from its registered definition, else from its result. */
function stepsOf(orchestrator: ParallelOrchestrator, workflowId: string, result: WorkflowResult | null): { name: string; task: boolean }[] | null {
  const plan = hostOf(orchestrator).planOf(workflowId);
  if (plan !== undefined) return plan.order.map((i) => ({ name: plan.steps[i]!.name, task: plan.steps[i]!.kind === 'task' }));
  if (result !== null && isRecord(result.steps)) return Object.keys(result.steps).map((name) => ({ name, task: true }));
  return null;
}

/**
 * A run's state, read from the audit trail and the store: its status, each step's status (task
 * steps from their tasks' audit entries; function steps from the run's checkpoint or result) and,
 * once it ended, its result. Works for runs of this process, recovered ones, and (with a durable
 * store) finished ones however long ago they ran. Undefined for an unknown id.
 */
export async function getWorkflow<R extends WorkflowResults = WorkflowResults>(orchestrator: ParallelOrchestrator, runId: string): Promise<WorkflowInfo<R> | undefined> {
  requireRunId(runId);
  const details = await orchestrator.findTask(runId);
  if (details === undefined || details.type !== COORDINATOR_TYPE || !isRecord(details.payload)) return undefined;
  const payload = details.payload as unknown as CoordinatorPayload;
  const result = details.status === 'completed' && isRecord(details.result) ? (details.result as unknown as WorkflowResult<R>) : null;
  const checkpoint = orchestrator.resumeFromCheckpoint<CoordinatorState>(runId);
  const done = new Set<string>();
  if (isRecord(checkpoint) && Array.isArray(checkpoint.done)) for (const [name] of checkpoint.done) done.add(name);
  const live = hostOf(orchestrator).coordinatorOf(runId);
  const rollingBack = live?.phase === 'rolling-back' || (isRecord(checkpoint) && checkpoint.phase === 'rolling-back');
  let status: WorkflowRunStatus;
  switch (details.status) {
    case 'queued':
      status = details.attempt === 0 ? 'queued' : rollingBack ? 'rolling-back' : 'running';
      break;
    case 'running':
    case 'retrying':
      status = rollingBack ? 'rolling-back' : 'running';
      break;
    case 'completed':
      status = result?.status ?? 'completed';
      break;
    case 'cancelled':
      status = 'cancelled';
      break;
    default:
      status = 'error';
  }
  const steps: Record<string, WorkflowStepInfo> = {};
  const names = stepsOf(orchestrator, payload.workflowId, result);
  if (names !== null) {
    const infos = await Promise.all(
      names.map(async ({ name, task }): Promise<WorkflowStepInfo> => {
        const taskId = task ? `${runId}/${name}` : null;
        if (result !== null && isRecord(result.steps) && typeof result.steps[name] === 'string') {
          const entries = taskId === null ? [] : await orchestrator.history(taskId);
          return { status: result.steps[name] as StepStatus, taskId, attempts: attemptsOf(entries) };
        }
        if (taskId !== null) {
          const entries = await orchestrator.history(taskId);
          return { status: statusFromHistory(entries), taskId, attempts: attemptsOf(entries) };
        }
        // A function step: the coordinator here knows it; else its checkpoint (saved now and then).
        return live?.stepInfo(name) ?? { status: done.has(name) ? 'completed' : 'pending', taskId: null, attempts: 0 };
      }),
    );
    // In dependency order.
    names.forEach(({ name }, k) => Object.defineProperty(steps, name, { value: infos[k], enumerable: true, writable: true, configurable: true }));
  }
  return {
    runId,
    workflowId: payload.workflowId,
    status,
    steps,
    result,
    error: details.status !== 'completed' && details.error !== undefined ? { name: details.error.name, message: details.error.message, code: details.error.code } : null,
  };
}

/**
 * A run's audit trail: the entries of its coordinator task (`step: null`: submitted, started,
 * checkpoints, recovered, completed, …) and of each of its task steps, in trail order. Function
 * steps run inside the coordinator and have no entries of their own. `[]` for an unknown run.
 */
export async function workflowHistory(orchestrator: ParallelOrchestrator, runId: string): Promise<WorkflowHistoryEntry[]> {
  requireRunId(runId);
  const details = await orchestrator.findTask(runId);
  const own = await orchestrator.history(runId);
  const entries: WorkflowHistoryEntry[] = own.map((entry) => ({ ...entry, step: null }));
  if (details !== undefined && details.type === COORDINATOR_TYPE && isRecord(details.payload)) {
    const result = details.status === 'completed' && isRecord(details.result) ? (details.result as unknown as WorkflowResult) : null;
    const names = stepsOf(orchestrator, (details.payload as unknown as CoordinatorPayload).workflowId, result) ?? [];
    const histories = await Promise.all(names.filter((s) => s.task).map(async ({ name }) => ({ name, entries: await orchestrator.history(`${runId}/${name}`) })));
    for (const { name, entries: stepEntries } of histories) for (const entry of stepEntries) entries.push({ ...entry, step: name });
  }
  return entries.sort((a, b) => a.seq - b.seq);
}
