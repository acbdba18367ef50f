export { createParallelOrchestrator, ParallelOrchestrator, type RequeueOptions, type ShutdownOptions, type StartOptions } from './orchestrator/parallel-orchestrator.js';
export { defineAgent } from './orchestrator/define-agent.js';
export type { OrchestratorStats, TaskDetails, TaskInfo } from './orchestrator/stats.js';
export type { OrchestratorOptions, StoreOptions, ThreadResourceLimits } from './options.js';
export type { AuditEvent, AuditEventType, AuditQuery } from './persistence/store.js';
export { AgentRole, CircuitState, TaskPriority, TaskStatus, type AssignmentStrategy } from './enums.js';
export { TaskObservable } from './streaming/task-observable.js';
export type { Unsubscribe } from './util/emitter.js';
export type { WorkerPoolStats } from './workers/worker-pool.js';
export {
  BrokenCircuitError,
  createCircuitBreaker,
  withCircuitBreaker,
  type CircuitTransition,
  type StandaloneCircuitBreaker,
} from './resilience/circuit-breaker.js';
export type { CircuitBreakerOptions } from './resilience/breaker-options.js';
export type { RateLimit } from './resilience/rate-limiter.js';
export type {
  AgentHandler,
  AgentInfo,
  AgentSpec,
  CancelledEvent,
  CompleteEvent,
  DeadLetter,
  DeltaEvent,
  ErrorEvent,
  EventStreamOptions,
  JsonPatchOperation,
  OrchestratorStreamItem,
  ProgressEvent,
  SnapshotEvent,
  StreamGap,
  SubscribeOptions,
  UpdateEvent,
  UpdateMetadata,
  OrchestratorEvents,
  RetryEvent,
  RetryPolicy,
  StartEvent,
  Task,
  TaskContext,
  TaskEvent,
  TaskEvents,
  TaskQuery,
  TaskSpec,
  TypedAgent,
  TypedTaskSpec,
} from './types.js';
export {
  AbortedError,
  AgentNotFoundError,
  DuplicateAgentError,
  DuplicateTaskError,
  InvalidAgentError,
  InvalidArgumentError,
  InvalidOptionsError,
  InvalidTaskError,
  NoCapableAgentError,
  NonRetryableError,
  OrchestratorError,
  OrchestratorShutdownError,
  QueueFullError,
  TaskCancelledError,
  TaskNotFoundError,
  TaskTimeoutError,
  StoreError,
  WorkerCrashedError,
  isOrchestratorError,
  type ErrorCode,
} from './errors.js';
export { createServer, type ListenOptions, type PorchServer, type PorchServerOptions } from './server/index.js';
export type { AgentsFile } from './cli/agents-file.js';
