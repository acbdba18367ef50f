import { TaskPriority, TaskStatus } from '../enums.js';
import type { TaskRow } from '../persistence/store.js';
import type { AgentDirectory } from '../routing/agent-directory.js';
import type { WorkerPool } from '../workers/worker-pool.js';
import type { Counters } from './counters.js';
import type { ClusterNode } from '../distributed/index.js';
import type { OrchestratorStats, TaskDetails, TaskInfo } from './stats.js';
import type { TaskRecord } from './task-record.js';

/** The summary of a task, from the engine's record or a stored row. */
export function taskInfo(task: TaskRecord | TaskRow): TaskInfo {
  if ('seq' in task) {
    // `remote`: the task runs, or ran, in another process (shared store).
    return { taskId: task.id, type: task.type, status: task.status, priority: task.priority, attempt: task.attempt, agentId: task.agent?.agentId ?? task.remote?.agentId };
  }
  return { taskId: task.id, type: task.type, status: task.status, priority: task.priority as TaskPriority, attempt: task.attempt, agentId: task.agentId ?? undefined };
}

/** A task's details from its row (taken from the record when the record is at hand). */
export function taskDetails(row: TaskRow, record: TaskRecord | undefined): TaskDetails {
  const details: TaskDetails = {
    ...taskInfo(record ?? row),
    capabilities: row.capabilities,
    payload: row.payload,
    metadata: row.metadata,
  };
  if (row.status === TaskStatus.COMPLETED) details.result = row.result;
  if (row.error != null) details.error = { name: row.error.name, message: row.error.message, code: String(row.error.props.code ?? 'TASK_FAILED') };
  if (record?.stream != null) details.progress = record.stream.currentState();
  return details;
}

/** What `getStats()` reads. */
export interface StatsSources {
  counts: Counters['counts'];
  uptime: number;
  checkpoints: number;
  store: OrchestratorStats['store'];
  pool: WorkerPool<unknown>;
  source: { size: number; maxSize: number; retrying: number; depth: readonly number[]; deadLetterCount: number; deadLettersDropped: number };
  directory: AgentDirectory;
  cluster: { nodes: readonly ClusterNode[]; queued: number; running: number } | undefined;
  eventSequence: number;
}

export function buildStats({ counts: c, uptime, checkpoints, store, pool, source, directory, cluster, eventSequence }: StatsSources): OrchestratorStats {
  const finished = c.completed + c.failed;
  const attempts = c.completed + c.failedAttempts;
  const depth = source.depth;
  const stats: OrchestratorStats = {
    uptime,
    eventSequence,
    totalSubmitted: c.submitted,
    totalCompleted: c.completed,
    totalFailed: c.failed,
    totalCancelled: c.cancelled,
    totalTimeouts: c.timeouts,
    totalRetries: c.retries,
    totalPreemptions: c.preemptions,
    successRate: finished === 0 ? 1 : c.completed / finished,
    averageDuration: c.completed === 0 ? 0 : c.durationTotal / c.completed,
    checkpoints,
    recovered: c.recovered,
    store,
    running: pool.busy,
    workerPool: { ...pool.stats(), successRate: attempts === 0 ? 1 : c.completed / attempts },
    taskQueue: {
      size: source.size,
      maxSize: source.maxSize,
      retrying: source.retrying,
      byPriority: {
        CRITICAL: depth[TaskPriority.CRITICAL]!,
        HIGH: depth[TaskPriority.HIGH]!,
        NORMAL: depth[TaskPriority.NORMAL]!,
        LOW: depth[TaskPriority.LOW]!,
        BACKGROUND: depth[TaskPriority.BACKGROUND]!,
      },
      deadLetters: source.deadLetterCount,
      deadLettersDropped: source.deadLettersDropped,
    },
    agentRouter: {
      agents: directory.size,
      routingDecisions: directory.routingDecisions,
      byRole: directory.countByRole(),
      agentStats: directory.list(),
    },
  };
  if (cluster !== undefined) {
    stats.cluster = {
      queued: cluster.queued,
      running: cluster.running,
      nodes: cluster.nodes.map((node) => ({ nodeId: node.nodeId, host: node.host, pid: node.pid, agents: node.agents.length, running: node.running, heartbeatAt: node.heartbeatAt })),
    };
  }
  return stats;
}
