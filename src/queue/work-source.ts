import type { CapabilitySignature } from '../routing/capability-signature.js';
import type { DeadLetter } from '../types.js';
import type { LaneNode } from './task-queue.js';
import type { Lane } from './lane.js';

/** What a work source needs of a task. */
export interface SourcedTask<T extends SourcedTask<T>> extends LaneNode<T, CapabilitySignature> {
  readonly id: string;
  readonly priority: number;
  readonly waitForAgent: boolean;
  /** True while linked into a lane. */
  readonly inQueue: boolean;
}

/**
 * What dispatch can serve right now: implemented by the agent directory (agents with a free slot
 * and a worker of their kind). `canServe` is pure: asking moves no cursor and reserves nothing.
 */
export interface Demand {
  canServe(signature: CapabilitySignature): boolean;
}

/** Told by a work source when it decides about a task outside a call of the engine's. */
export interface WorkSourceHost<T> {
  /** No registered agent could ever serve the task (and it does not wait for one): it fails. */
  unservable(task: T): void;
  /** A task waited out its retry delay and is queued again. */
  requeued(task: T): void;
  /** Work may have become available: dispatch should run. */
  wake(): void;
}

/** The final outcome of a task, as the work source records it. */
export type Settlement = { kind: 'completed' } | { kind: 'failed'; deadLetter: DeadLetter } | { kind: 'cancelled' };

/**
 * Where tasks wait between submit and start: the seam between dispatch and the backend that
 * holds queued work. The local source keeps lanes and timers in this process, synchronously on
 * the hot path; a shared-database source claims rows under leases and keeps what it claimed in
 * the same local lanes.
 *
 *   offer ──▶ waiting ──claim──▶ running (the engine's) ──settle──▶ done
 *      ▲         │ withdraw (cancel)              │ failed attempt
 *      └─────────┴────────── offer(delay) ◀───────┘
 */
export interface WorkSource<T extends SourcedTask<T>> {
  /** The lane of a canonical capability key; a task is created in one and stays in it. */
  lane(key: string): Lane<T, CapabilitySignature>;
  /** A task to run: new or recovered (`delayMs` 0) or retried (after `delayMs`). */
  offer(task: T, delayMs: number): void;
  /** Takes back a task that waits here (queued or waiting out a retry delay); false when it does not. */
  withdraw(task: T): boolean;
  /**
   * Removes and returns the best waiting task that `demand` can serve now (most urgent level,
   * then earliest submitted), or null. `room` is how many starts the pool could make now.
   */
  claim(demand: Demand, room: number): T | null;
  /**
   * Records a task's final outcome. False when this process no longer holds the task (its
   * claim was lost to another process): the outcome is stale and must be discarded.
   */
  settle(task: T, settlement: Settlement): boolean;
  /** Agents of these signatures went away: tasks none can serve any more fail, unless they wait for an agent. */
  agentsLeft(signatures: readonly CapabilitySignature[]): void;
  /** From now on a task no agent could serve fails at offer (before, tasks wait for agents to come). */
  enforceServability(): void;

  /** Tasks waiting to start (not those waiting out a retry delay). */
  readonly size: number;
  /** Tasks waiting out a retry delay. */
  readonly retrying: number;
  /** Waiting tasks per priority level (by their current, possibly aged, level). */
  readonly depth: readonly number[];
  readonly maxSize: number;
  readonly full: boolean;
  /** Resolves once there is room for one more task (FIFO among waiters). @throws AbortedError */
  waitForRoom(signal: AbortSignal | undefined): Promise<void>;
  /** Hands the room a woken waiter did not use to the next one. */
  passRoom(): void;
  /** Rejects every waiter for room (at shutdown). */
  rejectWaiters(): void;

  /** Dead letters, oldest first. */
  deadLetters(): Promise<DeadLetter[]>;
  /** Removes a dead letter to submit it again; undefined when there is none for the id. */
  takeDeadLetter(taskId: string): Promise<DeadLetter | undefined>;
  /** Puts back a dead letter taken by `takeDeadLetter` whose resubmission failed. */
  restoreDeadLetter(entry: DeadLetter): void;
  isDeadLetter(taskId: string): Promise<boolean>;
  /** Dead letters held, and dropped to stay bounded. */
  readonly deadLetterCount: number;
  readonly deadLettersDropped: number;

  /** Stops timers; returns the tasks that were waiting out a retry delay, for the engine to end. */
  close(): T[];
}
