import { StoreError } from '../errors.js';
import type { AuditSubject, Store } from '../persistence/store.js';
import { cloneJson } from '../streaming/json.js';
import type { Journal } from './journal.js';
import { TaskRecord } from './task-record.js';

const COMMITTED: Promise<void> = Promise.resolve();

/**
 * Checkpoints: the latest state of each live (or dead-lettered) task in memory, for
 * `resumeFromCheckpoint` and the next attempt's `resumeState`, written through to the store.
 * With `checkpointing.enabled`, the latest progress state of each running task that streamed
 * since the last pass is checkpointed every `interval` ms.
 */
export class Checkpoints {
  readonly #latest = new Map<string, unknown>();
  /** Running tasks whose progress changed since the last automatic checkpoint. */
  readonly #progressed = new Set<TaskRecord>();
  #timer: NodeJS.Timeout | null = null;
  count = 0;

  constructor(
    readonly store: Store,
    readonly journal: Journal,
    readonly automatic: { enabled: boolean; interval: number },
    readonly reportError: (error: StoreError) => void,
  ) {}

  /** Starts automatic checkpointing, if enabled. */
  start(): void {
    if (!this.automatic.enabled) return;
    this.#timer = setInterval(() => this.#checkpointProgress(), this.automatic.interval);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** True while automatic checkpoints are taken: progress of running tasks is tracked. */
  get tracking(): boolean {
    return this.#timer !== null;
  }

  /** The task streamed progress since the last automatic checkpoint. */
  progressed(record: TaskRecord): void {
    this.#progressed.add(record);
  }

  /** The latest checkpoint of a task, undefined when it has none (its id is built only when some task has one). */
  resumeState(record: TaskRecord): unknown {
    return this.#latest.size === 0 ? undefined : this.#latest.get(record.id);
  }

  /** `resumeFromCheckpoint`: the latest checkpoint, or null. */
  latest(taskId: string): unknown {
    return this.#latest.has(taskId) ? this.#latest.get(taskId) : null;
  }

  /** A checkpoint a previous process committed (recovery). */
  restore(taskId: string, state: unknown): void {
    this.#latest.set(taskId, state);
  }

  /**
   * Keeps a copy (the caller may go on changing `state`) and writes it to the store; resolves
   * once committed. Rejects with a TypeError when JSON cannot carry the state (a cycle, a BigInt).
   */
  save(task: AuditSubject, state: unknown, agentId: string | null, attempt: number | null, automatic: boolean): Promise<void> {
    let copy: unknown;
    try {
      copy = cloneJson(state);
    } catch (error) {
      return Promise.reject(error);
    }
    const taskId = task.id;
    if (task instanceof TaskRecord) task.preemptionsSinceCheckpoint = 0;
    this.#latest.set(taskId, copy);
    this.count++;
    this.journal.checkpointed(task, agentId, attempt, automatic);
    return this.journal.durable ? this.store.saveCheckpoint(taskId, copy) : COMMITTED;
  }

  /** The task ended for good (completed or cancelled): its checkpoint is released. */
  release(record: TaskRecord, keepInStore: boolean): void {
    if (this.#progressed.size > 0) this.#progressed.delete(record);
    if (this.#latest.size > 0 && this.#latest.delete(record.id) && this.journal.durable && !keepInStore) this.store.deleteCheckpoint(record.id);
  }

  /** The task stopped running (it may run again later, as a dead letter requeued): no more automatic checkpoints. */
  stopTracking(record: TaskRecord): void {
    if (this.#progressed.size > 0) this.#progressed.delete(record);
  }

  /** A dead letter dropped to keep the queue bounded cannot be requeued: its checkpoint goes (a durable store keeps both). */
  evict(taskId: string): void {
    this.#latest.delete(taskId);
  }

  #checkpointProgress(): void {
    for (const record of this.#progressed) {
      const run = record.run;
      if (run === null || record.stream === null) continue;
      let state: unknown;
      try {
        state = record.stream.currentState();
      } catch (error) {
        this.reportError(new StoreError('checkpoint', `of task ${record.id}: its progress state cannot be encoded: ${(error as Error).message}`, { cause: error }));
        continue;
      }
      this.save(record, state, run.agent.agentId, run.attempt, true).catch((error: unknown) => this.reportError(asStoreError(record.id, error)));
    }
    this.#progressed.clear();
  }
}

function asStoreError(taskId: string, error: unknown): StoreError {
  return error instanceof StoreError ? error : new StoreError('checkpoint', `of task ${taskId} failed: ${(error as Error).message}`, { cause: error });
}
