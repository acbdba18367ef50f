import type { CapabilitySignature } from '../routing/capability-signature.js';
import type { DeadLetter, JsonPatchOperation } from '../types.js';
import type { SerializedError } from '../workers/protocol.js';
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

/** A task another process submitted, claimed from a shared store by this one. */
export interface ClaimedTask {
  id: string;
  type: string;
  priority: number;
  capabilities: string[];
  payload: unknown;
  metadata: Record<string, unknown>;
  options: Record<string, unknown>;
  /** Attempts started so far, the claimed one included. */
  attempt: number;
  /** Its latest committed checkpoint, if any. */
  checkpoint: { state: unknown } | null;
  /** The submitter's tracing context, when it sent one. */
  trace: Record<string, string> | null;
}

/** A transition another process made, of a task this process watches. */
export type RemoteUpdate =
  | { kind: 'started'; taskId: string; agentId: string; workerId: string; nodeId: string; attempt: number }
  | { kind: 'progress'; taskId: string; sequence: number; agentId: string; timestamp: number; delta: JsonPatchOperation[] | null; state: unknown }
  | { kind: 'retrying'; taskId: string; attempt: number; delay: number; error: SerializedError }
  | { kind: 'requeued'; taskId: string; attempt: number }
  | { kind: 'preempted'; taskId: string; attempt: number; by: string; agentId: string; preemptions: number }
  | {
      kind: 'ended';
      taskId: string;
      status: 'completed' | 'failed' | 'timeout' | 'cancelled';
      result: unknown;
      error: SerializedError | null;
      attempts: number;
      agentId: string | null;
      workerId: string | null;
      duration: number;
      updateCount: number;
    }
  | { kind: 'missing'; taskId: string };

/** What a work source shared by several processes also asks of the engine. */
export interface SharedSourceHost<T> extends WorkSourceHost<T> {
  /** The record for a claimed task: the live one of a task submitted here, else a new one. */
  adopt(claim: ClaimedTask): T;
  /** The task left this process (handed back to the shared store): it ends here without a final event. */
  release(task: T): void;
  /** Another process took over a task this one runs (its claim expired): the run is abandoned. */
  claimLost(task: T, reason: string): void;
  /** The shared store refused a task (its id is live elsewhere): it fails. */
  rejected(task: T, error: Error): void;
  /** Another process asked to cancel a task this one holds. */
  cancelRequested(taskId: string, reason: string): void;
  /** Another process watches a task this one runs and needs its state: send it the start and a snapshot. */
  resync(taskId: string, nodeId: string): void;
  /** A transition made elsewhere, of a task watched here. */
  remote(update: RemoteUpdate): void;
  /** The capability sets of the agents here that take work now (circuit not open). */
  capabilitySets(): readonly (readonly string[])[];
  /** This process's agents, for the node registry (JSON). */
  agentsJson(): string;
  /** Tasks running here now. */
  running(): number;
  /** Tasks this process could start now: free agent slots, as far as the pool has workers for them. */
  freeSlots(): number;
  /** A live task of this process, by id. */
  live(taskId: string): T | undefined;
}

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
  /** No live task holds the lane any more (`holders` is 0): it goes unless an agent serves its set. */
  laneIdle(lane: Lane<T, CapabilitySignature>): void;
  /** A task to run: new or recovered (`delayMs` 0) or retried (after `delayMs`). */
  offer(task: T, delayMs: number): void;
  /** The most urgent waiting task of each lane (for preemption). */
  waitingHeads(): Iterable<T>;
  /** A task whose run was preempted: queued again here, ahead of every task of its level. */
  returnToFront(task: T): void;
  /**
   * Takes back a task that waits here (queued or waiting out a retry delay); false when it does
   * not. `keepInStore`: the process is stopping and the task stays in a shared store for others.
   */
  withdraw(task: T, keepInStore: boolean): boolean;
  /**
   * Removes and returns the best waiting task that `demand` can serve now (most urgent level,
   * then earliest submitted), or null. `room` is how many starts the pool could make now.
   */
  claim(demand: Demand, room: number): T | null;
  /**
   * Records a task's final outcome. False when this process no longer holds the task (its
   * claim was lost to another process): the outcome is stale and must be discarded. A shared
   * source answers once the outcome is committed.
   */
  settle(task: T, settlement: Settlement): boolean | Promise<boolean>;
  /** True while this process holds the task (claimed here: waiting to start or running). */
  holds(task: T): boolean;
  /**
   * True when the task runs or waits in another process and this one follows it (a shared
   * source: a task submitted here that another process holds, its claim here lost among others).
   */
  watches(task: T): boolean;
  /** True for a source shared by several processes (tasks are recovered by leases, not at start()). */
  readonly shared: boolean;
  /** Resolves once no task this process holds waits or runs (graceful shutdown waits for it). */
  drained(): Promise<void>;
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

  /** Stops timers and hands back what this process holds but did not start. */
  close(): Promise<void>;
}
