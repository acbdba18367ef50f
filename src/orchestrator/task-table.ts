import { LiveTasks } from './live-tasks.js';
import { RecentTasks } from './recent-tasks.js';
import type { TaskRecord } from './task-record.js';

const COMMITTED: Promise<void> = Promise.resolve();
// Long enough never to fire in practice; the interval only exists to hold the event loop.
const KEEP_ALIVE_MS = 2 ** 31 - 1;

/**
 * Every task this process knows: the live ones (queued, running, retrying) by id, and the
 * recently finished ones kept for late observers. While any task is live the process stays
 * alive (one ref'd handle); every other timer of the orchestrator is unref'd, so an idle
 * orchestrator never holds the process.
 */
export class TaskTable {
  readonly #live: LiveTasks<TaskRecord>;
  readonly #recent: RecentTasks<TaskRecord>;
  readonly #idleWaiters: (() => void)[] = [];
  #keepAlive: NodeJS.Timeout | null = null;
  #seq = 0;

  constructor(
    idPrefix: string,
    retainMax: number,
    retainMs: number,
    clock: () => number,
    /** The last live task of a lane no agent serves ended (the lane may go: see `Lanes`). */
    readonly laneIdle: (lane: TaskRecord['lane']) => void,
  ) {
    this.#live = new LiveTasks(idPrefix);
    this.#recent = new RecentTasks(retainMax, retainMs, clock);
  }

  get liveCount(): number {
    return this.#live.size;
  }

  /** The submission sequence of the next task. */
  nextSeq(): number {
    return ++this.#seq;
  }

  generatedId(seq: number): string {
    return this.#live.generatedId(seq);
  }

  add(record: TaskRecord, callerChosenId: boolean): void {
    this.#live.add(record, callerChosenId);
    record.lane.holders++;
    if (this.#keepAlive === null) this.#keepAlive = setInterval(noop, KEEP_ALIVE_MS);
  }

  /** The task ended here (`finishedAt` by the monotonic clock); it stays findable for a while. */
  finished(record: TaskRecord, finishedAt: number): void {
    const live = this.#live;
    // Only a lane of a set no agent serves goes when its last task ends (see `Lanes`): the common case skips the call.
    if (live.delete(record) && --record.lane.holders === 0 && record.lane.key.agents.length === 0) this.laneIdle(record.lane);
    this.#recent.add(record, finishedAt);
    if (live.size === 0) this.#becameIdle();
  }

  live(taskId: string): TaskRecord | undefined {
    return this.#live.get(taskId);
  }

  /** A live task, or a finished one still retained. */
  find(taskId: string): TaskRecord | undefined {
    return this.#live.get(taskId) ?? this.#recent.get(taskId);
  }

  hasLive(taskId: string): boolean {
    return this.#live.has(taskId);
  }

  liveTasks(): IterableIterator<TaskRecord> {
    return this.#live.values();
  }

  recentTasks(): IterableIterator<TaskRecord> {
    return this.#recent.values();
  }

  /** Resolves once no task is live. */
  onIdle(): Promise<void> {
    if (this.#live.size === 0) return COMMITTED;
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Forgets the finished tasks and lets the process go (at shutdown). */
  close(): void {
    this.#recent.clear();
    if (this.#keepAlive !== null) clearInterval(this.#keepAlive);
    this.#keepAlive = null;
  }

  #becameIdle(): void {
    if (this.#keepAlive !== null) clearInterval(this.#keepAlive);
    this.#keepAlive = null;
    if (this.#idleWaiters.length > 0) for (const wake of this.#idleWaiters.splice(0)) wake();
  }
}

function noop(): void {}
