/** Task priorities: lower runs first. FIFO within a level. */
export const TaskPriority = {
  CRITICAL: 0,
  HIGH: 1,
  NORMAL: 2,
  LOW: 3,
  BACKGROUND: 4,
} as const;
export type TaskPriority = (typeof TaskPriority)[keyof typeof TaskPriority];
/** Number of priority levels; valid priorities are `0 .. PRIORITY_LEVELS - 1`. */
export const PRIORITY_LEVELS = 5;

/** The ten agent roles of the seed, with their exact string values. */
export const AgentRole = {
  OBSERVER: 'α₁-observer',
  COMPRESSOR: 'α₂-compressor',
  VALIDATOR: 'α₃-validator',
  ORCHESTRATOR: 'α₄-orchestrator',
  ANALYZER: 'α₅-analyzer',
  OPTIMIZER: 'α₆-optimizer',
  MONITOR: 'α₇-monitor',
  AGGREGATOR: 'α₈-aggregator',
  EXECUTOR: 'α₉-executor',
  COORDINATOR: 'α₁₀-coordinator',
} as const;
export type AgentRole = (typeof AgentRole)[keyof typeof AgentRole];

/**
 * Task lifecycle: queued → running → completed | failed | cancelled | timeout.
 * A failed or timed-out attempt with retries left goes running → retrying → queued.
 */
export const TaskStatus = {
  QUEUED: 'queued',
  RUNNING: 'running',
  RETRYING: 'retrying',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TIMEOUT: 'timeout',
} as const;
export type TaskStatus = (typeof TaskStatus)[keyof typeof TaskStatus];

/** Circuit breaker states. */
export const CircuitState = {
  CLOSED: 'closed',
  OPEN: 'open',
  HALF_OPEN: 'half-open',
} as const;
export type CircuitState = (typeof CircuitState)[keyof typeof CircuitState];

/** How a task picks among capable agents (and a free worker). */
export type AssignmentStrategy = 'least-busy' | 'round-robin' | 'random' | 'adaptive';
