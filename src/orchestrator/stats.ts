import { TaskPriority, TaskStatus, type AgentRole } from '../enums.js';
import type { TaskRow } from '../persistence/store.js';
import type { AgentDirectory } from '../routing/agent-directory.js';
import type { WorkerPool } from '../workers/worker-pool.js';
import type { Counters } from './counters.js';
import type { TaskRecord } from './task-record.js';
import type { AgentInfo } from '../types.js';
import type { WorkerPoolStats } from '../workers/worker-pool.js';

/** What `getStats()` returns. Counts are since `start()`. */
export interface OrchestratorStats {
  /** ms since `start()`. */
  uptime: number;
  totalSubmitted: number;
  totalCompleted: number;
  /** Tasks that failed for good (including timeouts on their last attempt). */
  totalFailed: number;
  totalCancelled: number;
  /** Attempts that timed out (retried or not). */
  totalTimeouts: number;
  totalRetries: number;
  /** completed / (completed + failed); 1 before anything finished. */
  successRate: number;
  /** Mean run time of completed tasks, ms. */
  averageDuration: number;
  checkpoints: number;
  /** Tasks queued again at start() because a previous process left them unfinished (durable stores). */
  recovered: number;
  /** 'memory', 'sqlite' or 'postgres'. */
  store: 'memory' | 'sqlite' | 'postgres';
  /** Tasks running now. */
  running: number;
  /** The pool, with the share of finished attempts that succeeded (1 before any finished). */
  workerPool: WorkerPoolStats & { successRate: number };
  taskQueue: {
    size: number;
    maxSize: number;
    /** Tasks waiting out a retry delay. */
    retrying: number;
    byPriority: Record<'CRITICAL' | 'HIGH' | 'NORMAL' | 'LOW' | 'BACKGROUND', number>;
    deadLetters: number;
    /** Dead letters dropped because the dead-letter queue was full. */
    deadLettersDropped: number;
  };
  agentRouter: {
    agents: number;
    routingDecisions: number;
    byRole: Partial<Record<AgentRole, number>>;
    agentStats: AgentInfo[];
  };
}

/** What `getTask()` and `listTasks()` return for a task. */
export interface TaskInfo {
  taskId: string;
  type: string;
  status: TaskStatus;
  priority: TaskPriority;
  /** Attempts started so far. */
  attempt: number;
  /** The agent running it (running tasks), or that ran its last attempt. */
  agentId: string | undefined;
}

/** What `findTask()` returns: a task with what it was given and how it ended. */
export interface TaskDetails extends TaskInfo {
  capabilities: readonly string[];
  payload: unknown;
  metadata: Readonly<Record<string, unknown>>;
  /** Set once completed. */
  result?: unknown;
  /** Set once failed, timed out or cancelled (a cancel's reason is its message). */
  error?: { name: string; message: string; code: string };
  /** The latest progress state, while the task is live or retained in memory. */
  progress?: unknown;
}

/** The summary of a task, from the engine's record or a stored row. */
export function taskInfo(task: TaskRecord | TaskRow): TaskInfo {
  if ('seq' in task) {
    return { taskId: task.id, type: task.type, status: task.status, priority: task.priority, attempt: task.attempt, agentId: task.agent?.agentId };
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
}

export function buildStats({ counts: c, uptime, checkpoints, store, pool, source, directory }: StatsSources): OrchestratorStats {
  const finished = c.completed + c.failed;
  const attempts = c.completed + c.failedAttempts;
  const depth = source.depth;
  return {
    uptime,
    totalSubmitted: c.submitted,
    totalCompleted: c.completed,
    totalFailed: c.failed,
    totalCancelled: c.cancelled,
    totalTimeouts: c.timeouts,
    totalRetries: c.retries,
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
}
