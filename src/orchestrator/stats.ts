import type { AgentRole, TaskPriority, TaskStatus } from '../enums.js';
import type { AgentInfo } from '../types.js';
import type { WorkerPoolStats } from '../workers/worker-pool.js';

/** What `getStats()` returns. Counts are since `start()`. */
export interface OrchestratorStats {
  /** ms since `start()`. */
  uptime: number;
  /**
   * The sequence of the last item of `orchestrator.events()` (0 until it is first called): a
   * snapshot of these stats lines up with the stream from `fromSequence: eventSequence + 1`.
   */
  eventSequence: number;
  totalSubmitted: number;
  totalCompleted: number;
  /** Tasks that failed for good (including timeouts on their last attempt). */
  totalFailed: number;
  totalCancelled: number;
  /** Attempts that timed out (retried or not). */
  totalTimeouts: number;
  totalRetries: number;
  /** Runs that gave their slot to a more urgent task (not counted as failed attempts). */
  totalPreemptions: number;
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
  /**
   * PostgreSQL store only: the cluster as this node's last heartbeat saw it (refreshed every
   * third of `leaseMs`): tasks queued and running in the table, and the live nodes.
   */
  cluster?: {
    queued: number;
    running: number;
    nodes: { nodeId: string; host: string; pid: number; agents: number; running: number; heartbeatAt: number }[];
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

