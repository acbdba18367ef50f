import type { CircuitState, TaskStatus } from '../enums.js';
import type { Agent } from '../routing/agent.js';
import { errorCode } from '../errors.js';
import type { CompleteEvent, OrchestratorEvents } from '../types.js';
import type { Emitter } from '../util/emitter.js';
import type { TransitionSink } from './task-lifecycle.js';
import type { TaskRecord, TaskRun } from './task-record.js';

/**
 * Turns transitions into events: the task's own (on its observable, when anyone subscribed) and
 * the orchestrator's. A payload is built only when someone listens to its event.
 */
export class EventSink implements TransitionSink {
  constructor(readonly events: Emitter<OrchestratorEvents>) {}

  submitted(record: TaskRecord): void {
    if (this.events.has('task:submitted')) this.events.emit('task:submitted', { taskId: record.id, type: record.type, priority: record.priority });
  }

  recovered(): void {}

  started(record: TaskRecord, run: TaskRun): void {
    this.startedAs(record, run.agent.agentId, run.worker.workerId, run.attempt);
  }

  /** A start, here or in another process. */
  startedAs(record: TaskRecord, agentId: string, workerId: string, attempt: number): void {
    const own = record.events;
    if (own !== null && own.has('start')) own.emit('start', { type: 'start', taskId: record.id, agentId, workerId, attempt, timestamp: Date.now() });
    if (this.events.has('task:started')) this.events.emit('task:started', { taskId: record.id, type: record.type, agentId, workerId, attempt });
  }

  completed(record: TaskRecord, run: TaskRun): void {
    this.completedAs(record, run.agent.agentId, run.worker.workerId, run.duration);
  }

  /** A completion, here or in another process. */
  completedAs(record: TaskRecord, agentId: string, workerId: string, duration: number): void {
    const own = record.events;
    if (own !== null && own.has('complete')) own.emit('complete', record.terminalEvent() as CompleteEvent);
    if (this.events.has('task:completed')) {
      this.events.emit('task:completed', { taskId: record.id, type: record.type, agentId, workerId, duration, attempts: record.attempt, result: record.outcome });
    }
  }

  attemptFailed(): void {}

  retrying(record: TaskRecord, error: Error, delay: number): void {
    const attempt = record.attempt + 1;
    const own = record.events;
    if (own !== null && own.has('retry')) own.emit('retry', { type: 'retry', taskId: record.id, attempt, delay, error });
    if (this.events.has('task:retry')) this.events.emit('task:retry', { taskId: record.id, attempt, delay, error });
  }

  requeued(): void {}

  failed(record: TaskRecord, error: Error, status: TaskStatus): void {
    this.failedAs(record, error, status);
    if (this.events.has('task:dead-letter')) this.events.emit('task:dead-letter', { taskId: record.id, error, attempts: record.attempt });
  }

  /** A failure for good, here or in another process (which dead-lettered it). */
  failedAs(record: TaskRecord, error: Error, status: TaskStatus): void {
    const code = errorCode(error);
    const own = record.events;
    if (own !== null && own.has('error')) own.emit('error', { type: 'error', taskId: record.id, error, code, attempts: record.attempt });
    if (this.events.has('task:failed')) this.events.emit('task:failed', { taskId: record.id, type: record.type, error, code, attempts: record.attempt, status });
  }

  /** A task's outcome here was discarded: another process took it over. */
  claimLost(record: TaskRecord, reason: string): void {
    if (this.events.has('task:claim-lost')) this.events.emit('task:claim-lost', { taskId: record.id, agentId: record.agent?.agentId ?? null, reason });
  }

  preempted(record: TaskRecord, run: TaskRun, by: TaskRecord): void {
    this.preemptedAs(record, by.id, run.agent.agentId);
  }

  /** A preemption, here or in another process (`record.preemptions` counts it already). */
  preemptedAs(record: TaskRecord, by: string, agentId: string): void {
    const own = record.events;
    if (own !== null && own.has('preempted')) own.emit('preempted', { type: 'preempted', taskId: record.id, by, agentId, preemptions: record.preemptions });
    if (this.events.has('task:preempted')) this.events.emit('task:preempted', { taskId: record.id, by, agentId });
  }

  cancelled(record: TaskRecord, reason: string): void {
    const own = record.events;
    if (own !== null && own.has('cancelled')) own.emit('cancelled', { type: 'cancelled', taskId: record.id, reason });
    if (this.events.has('task:cancelled')) this.events.emit('task:cancelled', { taskId: record.id, reason });
  }

  agentRegistered(agent: Agent): void {
    if (this.events.has('agent:registered')) this.events.emit('agent:registered', { agentId: agent.agentId, role: agent.role, capabilities: agent.capabilities });
  }

  agentUnregistered(agentId: string): void {
    if (this.events.has('agent:unregistered')) this.events.emit('agent:unregistered', { agentId });
  }

  circuitChanged(agentId: string, from: CircuitState, to: CircuitState): void {
    if (this.events.has('agent:circuit-state')) this.events.emit('agent:circuit-state', { agentId, from, to });
  }
}
