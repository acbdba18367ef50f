import { PRIORITY_LEVELS } from '../enums.js';
import { AbortedError, OrchestratorShutdownError } from '../errors.js';
import { Lane, type QueueNode } from './lane.js';

/** A queued item that knows its lane. */
export interface LaneNode<Self extends QueueNode, K> extends QueueNode {
  readonly lane: Lane<Self, K>;
}

interface RoomWaiter {
  resolve(): void;
  reject(error: Error): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * The waiting tasks, split into one lane per capability signature. Picking the next task
 * looks only at the head of each non-empty lane (at most one per signature), so a task whose
 * agents are all busy never blocks tasks other agents could take, and nothing scans the
 * queued tasks themselves.
 */
export class TaskQueue<T extends LaneNode<T, K>, K> {
  readonly #active: Lane<T, K>[] = [];
  readonly #roomWaiters: RoomWaiter[] = [];
  readonly depth: number[] = new Array<number>(PRIORITY_LEVELS).fill(0);
  size = 0;
  #nextAgingCheck = 0;

  constructor(readonly maxSize: number, readonly agingMs: number) {}

  get full(): boolean {
    return this.size >= this.maxSize;
  }

  /** The most urgent item of each lane. */
  *heads(): IterableIterator<T> {
    for (const lane of this.#active) yield lane.head(lane.bestLevel)!;
  }

  push(node: T, front = false): void {
    const lane = node.lane;
    if (front) lane.pushFront(node);
    else lane.push(node);
    if (lane.activeIndex < 0) {
      lane.activeIndex = this.#active.length;
      this.#active.push(lane);
    }
    this.depth[node.level]!++;
    this.size++;
  }

  remove(node: T): void {
    const lane = node.lane;
    lane.remove(node);
    this.depth[node.level]!--;
    this.size--;
    if (lane.size === 0) this.#deactivate(lane);
    this.passRoom();
  }

  /**
   * Removes and returns the best task whose lane `demand` can serve: lowest level first, then
   * earliest submitted. `canServe` is asked only for lane heads that would beat the best so far,
   * and must be free of side effects (lanes passed over are left as they were).
   */
  take(demand: { canServe(key: K): boolean }): T | null {
    const active = this.#active;
    if (active.length === 1) {
      const lane = active[0]!;
      if (!demand.canServe(lane.key)) return null;
      const head = lane.head(lane.bestLevel)!;
      this.remove(head);
      return head;
    }
    let best: T | null = null;
    for (let i = 0; i < active.length; i++) {
      const lane = active[i]!;
      const head = lane.head(lane.bestLevel)!;
      if (best !== null && (head.level > best.level || (head.level === best.level && head.seq > best.seq))) continue;
      if (demand.canServe(lane.key)) best = head;
    }
    if (best !== null) this.remove(best);
    return best;
  }

  /** Moves tasks that waited `agingMs` at their level up one level (at most every agingMs/4). */
  age(now: number): void {
    const agingMs = this.agingMs;
    if (agingMs <= 0 || now < this.#nextAgingCheck || this.size === 0) return;
    this.#nextAgingCheck = now + agingMs / 4;
    for (const lane of this.#active) {
      for (let level = 1; level < PRIORITY_LEVELS; level++) {
        let head = lane.head(level);
        while (head !== null && now - head.enqueuedAt >= agingMs) {
          lane.remove(head);
          this.depth[level]!--;
          head.level = level - 1;
          head.enqueuedAt = now;
          lane.push(head);
          this.depth[level - 1]!++;
          head = lane.head(level);
        }
      }
    }
  }

  /** Resolves once the queue has room for one more task (FIFO among waiters). */
  waitForRoom(signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) return Promise.reject(new AbortedError('waiting for queue room', signal.reason));
    if (!this.full && this.#roomWaiters.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: RoomWaiter = { resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        waiter.onAbort = () => {
          const index = this.#roomWaiters.indexOf(waiter);
          if (index >= 0) this.#roomWaiters.splice(index, 1);
          reject(new AbortedError('waiting for queue room', signal.reason));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#roomWaiters.push(waiter);
    });
  }

  /** Rejects every waiter (at shutdown). */
  rejectWaiters(): void {
    for (const waiter of this.#roomWaiters.splice(0)) {
      if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener('abort', waiter.onAbort);
      waiter.reject(new OrchestratorShutdownError());
    }
  }

  /** Wakes the next waiter if there is room (also when a woken waiter gave its turn up). */
  passRoom(): void {
    if (this.#roomWaiters.length === 0 || this.full) return;
    const waiter = this.#roomWaiters.shift()!;
    if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener('abort', waiter.onAbort);
    waiter.resolve();
  }

  #deactivate(lane: Lane<T, K>): void {
    const index = lane.activeIndex;
    const last = this.#active.pop()!;
    if (last !== lane) {
      this.#active[index] = last;
      last.activeIndex = index;
    }
    lane.activeIndex = -1;
  }
}
