import { TaskStatus } from '../enums.js';
import type { TransitionSink } from './task-lifecycle.js';
import type { TaskRecord, TaskRun } from './task-record.js';

/** The counts behind `getStats()`, kept from the transitions. */
export class Counters implements TransitionSink {
  readonly counts = {
    submitted: 0,
    completed: 0,
    failed: 0,
    cancelled: 0,
    timeouts: 0,
    retries: 0,
    deadLettered: 0,
    preemptions: 0,
    recovered: 0,
    failedAttempts: 0,
    durationTotal: 0,
  };
  /** Whether the attempt that just failed timed out: `retrying` follows `attemptFailed` synchronously. */
  #attemptTimedOut = false;

  submitted(): void {
    this.counts.submitted++;
  }

  recovered(): void {
    this.counts.submitted++;
    this.counts.recovered++;
  }

  started(): void {}

  completed(_record: TaskRecord, run: TaskRun): void {
    this.counts.completed++;
    this.counts.durationTotal += run.duration;
  }

  attemptFailed(_record: TaskRecord, _run: TaskRun | null, _error: Error, status: TaskStatus): void {
    this.counts.failedAttempts++;
    this.#attemptTimedOut = status === TaskStatus.TIMEOUT;
  }

  // A timeout counts with the event that tells it (task:retry or task:failed): on a shared store
  // a last attempt's failure is told once committed, and getStats() must agree with the events.
  retrying(): void {
    this.counts.retries++;
    if (this.#attemptTimedOut) this.counts.timeouts++;
  }

  requeued(): void {}

  failed(_record: TaskRecord, _error: Error, status: TaskStatus): void {
    if (status === TaskStatus.TIMEOUT) this.counts.timeouts++;
    this.counts.failed++;
    this.counts.deadLettered++;
  }

  cancelled(): void {
    this.counts.cancelled++;
  }

  preempted(): void {
    this.counts.preemptions++;
  }
}
