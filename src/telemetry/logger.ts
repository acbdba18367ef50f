import { CircuitState } from '../enums.js';
import { InvalidOptionsError, describeThrown } from '../errors.js';
import type { OrchestratorEvents } from '../types.js';
import type { Emitter } from '../util/emitter.js';

/**
 * A pino-compatible logger: each method takes an object of fields, then a message (pino, or
 * anything with these four methods). `child`, when present, is called once with the bindings
 * `{ name: 'parallel-orchestrator', nodeId }`.
 */
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
  child?(bindings: Record<string, unknown>): Logger;
}

/**
 * Logs what the orchestrator reports as events, each at its level (docs/telemetry.md lists
 * them). Only rare events are listened to, never a task's normal transitions, so a logger costs
 * nothing per task. The listeners leave with the emitter's at shutdown. With a logger, store and
 * listener errors go to it rather than to `process.emitWarning` (the engine warns only when
 * nobody listens).
 */
export function attachLogger(events: Emitter<OrchestratorEvents>, logger: Logger, nodeId: string): void {
  const log = typeof logger.child === 'function' ? child(logger, nodeId) : logger;
  // Errors: something failed that the orchestrator works around, and an operator should know.
  events.on('store:error', ({ error }) => log.error({ err: error }, `store error: ${error.message}`));
  events.on('listener:error', ({ event, error }) => log.error({ err: error, event }, `a listener of '${event}' threw`));
  events.on('worker:failed', ({ workerId, error, taskId }) =>
    log.error({ err: error, workerId, taskId }, `worker thread ${workerId} died${taskId === undefined ? '' : ` running task ${taskId}`}: ${error.message}`),
  );
  // Warnings: work degraded or discarded.
  events.on('worker:stuck', ({ workerId, taskId, agentId }) =>
    log.warn({ workerId, taskId, agentId }, `worker ${workerId} is stuck on task ${taskId} past its timeout or cancellation; its slot is taken back`),
  );
  events.on('task:claim-lost', ({ taskId, agentId, reason }) => log.warn({ taskId, agentId }, `task ${taskId}: ${reason}`));
  events.on('task:dead-letter', ({ taskId, error, attempts }) => log.warn({ err: error, taskId, attempts }, `task ${taskId} failed for good after ${attempts} attempt(s) and was dead-lettered: ${error.message}`));
  events.on('agent:circuit-state', ({ agentId, from, to }) => {
    const fields = { agentId, from, to };
    const message = `circuit of agent ${agentId}: ${from} → ${to}`;
    if (to === CircuitState.OPEN) log.warn(fields, message);
    else log.info(fields, message);
  });
  // Information: the orchestrator's own lifecycle.
  events.on('orchestrator:started', () => log.info({}, 'orchestrator started'));
  events.on('orchestrator:shutdown', ({ graceful, cancelled }) => log.info({ graceful, cancelled }, `orchestrator shut down (${graceful ? 'graceful' : 'forced'}, ${cancelled} task(s) cancelled)`));
  events.on('worker:replaced', ({ workerId, replacementId }) => log.info({ workerId, replacementId }, `worker thread ${workerId} replaced by ${replacementId}`));
  // Debug: routine, but useful when following what happened.
  events.on('agent:registered', ({ agentId, role, capabilities }) => log.debug({ agentId, role, capabilities }, `agent ${agentId} registered`));
  events.on('agent:unregistered', ({ agentId }) => log.debug({ agentId }, `agent ${agentId} unregistered`));
  events.on('task:retry', ({ taskId, attempt, delay, error }) => log.debug({ err: error, taskId, attempt, delay }, `task ${taskId} will retry (attempt ${attempt}) in ${Math.round(delay)} ms: ${error.message}`));
  events.on('backpressure:conflated', ({ taskId, dropped }) => log.debug({ taskId, dropped }, `a subscriber of task ${taskId} fell behind: ${dropped} update(s) replaced by a snapshot`));
}

const METHODS = ['debug', 'info', 'warn', 'error'] as const;

/** The logger's child, checked like the logger itself. @throws InvalidOptionsError when `child()` throws or returns something else than a logger. */
function child(logger: Logger, nodeId: string): Logger {
  let log: unknown;
  try {
    log = logger.child!({ name: 'parallel-orchestrator', nodeId });
  } catch (error) {
    throw new InvalidOptionsError('logger', `threw from child(): ${describeThrown(error instanceof Error ? error.message : error)}`);
  }
  let valid = false;
  try {
    valid = typeof log === 'object' && log !== null && METHODS.every((name) => typeof (log as Record<string, unknown>)[name] === 'function');
  } catch {
    // A getter threw: not a logger.
  }
  if (!valid) throw new InvalidOptionsError('logger', `child() must return a logger with debug, info, warn and error methods (received ${log === null ? 'null' : typeof log})`);
  return log as Logger;
}
