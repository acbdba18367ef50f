import type { AgentRole, TaskPriority, TaskStatus } from '../enums.js';
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
  /** 'memory' or 'sqlite'. */
  store: 'memory' | 'sqlite';
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

/** What `getTask()` returns for a live task. */
export interface TaskInfo {
  taskId: string;
  type: string;
  status: TaskStatus;
  priority: TaskPriority;
  attempt: number;
  agentId: string | undefined;
}
