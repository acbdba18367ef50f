import type { CapabilitySignature } from '../routing/capability-signature.js';
import type { DeadLetter } from '../types.js';
import { DeadLetterQueue } from './dead-letter-queue.js';
import type { Lane } from './lane.js';
import { Lanes, type SignatureIndex } from './lanes.js';
import { TaskQueue } from './task-queue.js';
import type { Demand, Settlement, SourcedTask, WorkSource, WorkSourceHost } from './work-source.js';

export interface LocalWorkSourceOptions {
  maxSize: number;
  agingMs: number;
  deadLetterLimit: number;
  /** The signatures (with their agents) of canonical capability keys. */
  signatures: SignatureIndex;
  /** Told when a dead letter is dropped to stay bounded (its checkpoint can go too). */
  onDeadLetterEvicted(entry: DeadLetter): void;
  clock(): number;
  /** Resolves once no task is live in this process. */
  idle(): Promise<void>;
}

/**
 * The work source of one process: lanes of queued tasks (one per capability signature, FIFO
 * per priority level), retry timers, and the dead-letter queue. Synchronous: a claim is a lane
 * head lookup, never a scan of the queued tasks.
 */
export class LocalWorkSource<T extends SourcedTask<T>> implements WorkSource<T> {
  readonly #queue: TaskQueue<T, CapabilitySignature>;
  readonly #lanes: Lanes<T>;
  readonly #retryTimers = new Map<T, NodeJS.Timeout>();
  /** Offered tasks no agent can serve now, whose verdict waits for a microtask. */
  readonly #awaitingVerdict = new Set<T>();
  readonly #deadLetters: DeadLetterQueue;
  readonly #options: LocalWorkSourceOptions;
  readonly #host: WorkSourceHost<T>;
  #enforcing = false;

  constructor(options: LocalWorkSourceOptions, host: WorkSourceHost<T>) {
    this.#options = options;
    this.#host = host;
    this.#queue = new TaskQueue(options.maxSize, options.agingMs);
    this.#lanes = new Lanes(options.signatures);
    this.#deadLetters = new DeadLetterQueue(options.deadLetterLimit, options.onDeadLetterEvicted);
  }

  lane(key: string): Lane<T, CapabilitySignature> {
    return this.#lanes.get(key);
  }

  laneIdle(lane: Lane<T, CapabilitySignature>): void {
    this.#lanes.prune(lane);
  }

  get agingMs(): number {
    return this.#queue.agingMs;
  }

  offer(task: T, delayMs: number): void {
    // The closures live in their own methods: V8 would allocate their captured variables on every offer.
    if (delayMs > 0) this.#offerLater(task, delayMs);
    else if (this.#enforcing && this.#unservable(task)) this.#awaitVerdict(task);
    else this.#enqueue(task);
  }

  #offerLater(task: T, delayMs: number): void {
    const timer = setTimeout(() => {
      this.#retryTimers.delete(task);
      this.#host.requeued(task);
      this.#enqueueOrReject(task);
    }, delayMs);
    // The engine holds the process open while tasks are live; its own timers never do.
    timer.unref();
    this.#retryTimers.set(task, timer);
  }

  /**
   * Decided on a microtask, so listeners added right after submit() see the failure; unless an
   * agent came meanwhile. Queued already, so it keeps its place (FIFO) if one does.
   */
  #awaitVerdict(task: T): void {
    this.#enqueue(task);
    this.#awaitingVerdict.add(task);
    queueMicrotask(() => {
      if (!this.#awaitingVerdict.delete(task) || !task.inQueue || !this.#unservable(task)) return;
      this.#queue.remove(task);
      task.level = -1;
      this.#host.unservable(task);
    });
  }

  #enqueueOrReject(task: T): void {
    if (this.#enforcing && this.#unservable(task)) this.#host.unservable(task);
    else this.#enqueue(task);
  }

  /** The one rule: no registered agent has every capability the task needs, and it does not wait for one. */
  #unservable(task: T): boolean {
    return task.lane.key.agents.length === 0 && !task.waitForAgent;
  }

  #enqueue(task: T, front = false): void {
    task.level = task.priority;
    task.enqueuedAt = this.#queue.agingMs > 0 ? this.#options.clock() : 0;
    this.#queue.push(task, front);
    this.#host.wake();
  }

  waitingHeads(): Iterable<T> {
    return this.#queue.heads();
  }

  returnToFront(task: T): void {
    this.#enqueue(task, true);
  }

  withdraw(task: T, _keepInStore: boolean): boolean {
    if (this.#awaitingVerdict.size > 0) this.#awaitingVerdict.delete(task);
    if (task.inQueue) {
      this.#queue.remove(task);
      task.level = -1;
      return true;
    }
    const timer = this.#retryTimers.get(task);
    if (timer === undefined) return false;
    clearTimeout(timer);
    this.#retryTimers.delete(task);
    return true;
  }

  claim(demand: Demand, _room: number): T | null {
    const queue = this.#queue;
    if (queue.size === 0) return null;
    if (queue.agingMs > 0) queue.age(this.#options.clock());
    const task = queue.take(demand);
    if (task !== null) task.level = -1;
    return task;
  }

  settle(_task: T, settlement: Settlement): boolean {
    if (settlement.kind === 'failed') this.#deadLetters.add(settlement.deadLetter);
    return true;
  }

  agentsLeft(signatures: readonly CapabilitySignature[]): void {
    for (const signature of signatures) {
      if (signature.agents.length > 0) continue;
      const lane = this.#lanes.find(signature.key);
      if (lane === undefined) continue;
      for (const task of lane.tasks()) {
        if (task.waitForAgent) continue;
        this.withdraw(task, false);
        this.#host.unservable(task);
      }
      this.#lanes.prune(lane);
    }
  }

  enforceServability(): void {
    this.#enforcing = true;
  }

  get size(): number {
    return this.#queue.size;
  }

  get retrying(): number {
    return this.#retryTimers.size;
  }

  get depth(): readonly number[] {
    return this.#queue.depth;
  }

  get maxSize(): number {
    return this.#queue.maxSize;
  }

  get full(): boolean {
    return this.#queue.full;
  }

  waitForRoom(signal: AbortSignal | undefined): Promise<void> {
    return this.#queue.waitForRoom(signal);
  }

  passRoom(): void {
    this.#queue.passRoom();
  }

  rejectWaiters(): void {
    this.#queue.rejectWaiters();
  }

  deadLetters(): Promise<DeadLetter[]> {
    return Promise.resolve(this.#deadLetters.list());
  }

  takeDeadLetter(taskId: string): Promise<DeadLetter | undefined> {
    return Promise.resolve(this.#deadLetters.take(taskId));
  }

  restoreDeadLetter(entry: DeadLetter): void {
    this.#deadLetters.add(entry);
  }

  isDeadLetter(taskId: string): Promise<boolean> {
    return Promise.resolve(this.#deadLetters.has(taskId));
  }

  get deadLetterCount(): number {
    return this.#deadLetters.size;
  }

  get deadLettersDropped(): number {
    return this.#deadLetters.dropped;
  }

  holds(task: T): boolean {
    return task.inQueue;
  }

  watches(): boolean {
    return false;
  }

  readonly shared = false;

  drained(): Promise<void> {
    return this.#options.idle();
  }

  close(): Promise<void> {
    for (const timer of this.#retryTimers.values()) clearTimeout(timer);
    this.#retryTimers.clear();
    this.#queue.rejectWaiters();
    return Promise.resolve();
  }
}
