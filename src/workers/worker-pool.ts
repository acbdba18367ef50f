import type { RoutingStrategy, ThreadResourceLimits } from '../options.js';
import { ThreadWorker, type ThreadHost } from './thread-worker.js';
import { probesEnded } from './module-probe.js';

/** An execution slot for in-process handlers: one task at a time. */
export class InlineWorker {
  readonly kind = 'inline';
  busy = false;
  tasksRun = 0;
  idleSince = performance.now();
  constructor(readonly workerId: string) {}
}

export interface WorkerPoolStats {
  currentWorkers: number;
  minWorkers: number;
  maxWorkers: number;
  busy: number;
  idle: number;
  threads: number;
  peakWorkers: number;
  workersCreated: number;
  workersRetired: number;
  workersReplaced: number;
  tasksRun: number;
}

export interface WorkerPoolOptions {
  minWorkers: number;
  maxWorkers: number;
  assignmentStrategy: RoutingStrategy;
  idleTimeout: number;
  threadBatchSize: number;
  resourceLimits: ThreadResourceLimits | undefined;
}

/**
 * Execution workers, at most `maxWorkers` of them: in-process slots for `handler` agents (one
 * task each) and worker threads for `module` agents (about 5 ms of work handed over ahead, at
 * most `threadBatchSize` tasks, run in order; tasks waiting behind a long one move to a thread
 * that goes idle). It grows on demand, preferring an idle worker, and retires workers idle for
 * `idleTimeout` ms back down to `minWorkers`.
 */
export class WorkerPool<Run> {
  readonly #options: WorkerPoolOptions;
  readonly #host: ThreadHost<Run>;
  readonly #idleInline: InlineWorker[] = [];
  readonly #threads: ThreadWorker<Run>[] = [];
  #inlineCount = 0;
  #inlineBusy = 0;
  #peak = 0;
  #created = 0;
  #retired = 0;
  #replaced = 0;
  #tasksRun = 0;
  #roundRobin = 0;
  #retireTimer: NodeJS.Timeout | null = null;
  /** Set while a thread idles and another holds jobs behind one not yet running long enough to take them back. */
  #stealTimer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(options: WorkerPoolOptions, host: ThreadHost<Run>) {
    this.#options = options;
    this.#host = host;
    for (let i = 0; i < options.minWorkers; i++) this.#idleInline.push(this.#createInline());
  }

  get maxWorkers(): number {
    return this.#options.maxWorkers;
  }

  get size(): number {
    return this.#inlineCount + this.#threads.length;
  }

  /** Tasks running on in-process slots plus tasks handed to threads. */
  get busy(): number {
    let busy = this.#inlineBusy;
    for (const thread of this.#threads) busy += thread.inFlight.size;
    return busy;
  }

  /** True when an in-process task could start now. */
  get inlineAvailable(): boolean {
    return this.#idleInline.length > 0 || this.size < this.#options.maxWorkers;
  }

  /** True when a thread task could start now (asked without side effects). */
  get threadAvailable(): boolean {
    if (this.#closed) return false;
    if (this.size < this.#options.maxWorkers || this.#idleInline.length > 0) return true;
    for (const thread of this.#threads) if (!thread.busy || thread.hasRoom()) return true;
    return false;
  }

  /** About how many tasks could start now (a hint for sources that fetch work ahead). */
  get room(): number {
    let room = this.#options.maxWorkers - this.size + this.#idleInline.length;
    const limit = this.#options.threadBatchSize;
    for (const thread of this.#threads) room += limit - thread.inFlight.size;
    return room;
  }

  /** True when some kind of task could start now (a cheap guard for the dispatch loop). */
  get anyAvailable(): boolean {
    return this.inlineAvailable || this.threadAvailable;
  }

  acquireInline(): InlineWorker {
    const worker = this.#idleInline.pop() ?? this.#createInline();
    worker.busy = true;
    this.#inlineBusy++;
    return worker;
  }

  /** `at`: now, by performance.now() (the caller read the clock already). */
  releaseInline(worker: InlineWorker, at: number): void {
    worker.busy = false;
    worker.tasksRun++;
    this.#tasksRun++;
    this.#inlineBusy--;
    if (this.#closed) return;
    worker.idleSince = at;
    this.#idleInline.push(worker);
    this.#armRetirement();
  }

  /** A thread to hand a task to: an idle one, else a new one, else the least loaded with room; null when none has room. */
  acquireThread(): ThreadWorker<Run> | null {
    if (this.#closed) return null;
    const threads = this.#threads;
    for (const thread of threads) if (!thread.busy) return thread;
    if (this.size < this.#options.maxWorkers || this.#retireIdleInline()) return this.#createThread();
    return this.#threadWithRoom();
  }

  /** Drops a thread that exited; returns a replacement when the pool would fall below `minWorkers`. */
  removeThread(worker: ThreadWorker<Run>, replace: boolean): ThreadWorker<Run> | null {
    const index = this.#threads.indexOf(worker);
    if (index < 0) return null;
    this.#threads.splice(index, 1);
    this.#tasksRun += worker.tasksRun;
    if (worker.retiring && !replace) return null;
    if (this.#closed || (!replace && this.size >= this.#options.minWorkers)) return null;
    this.#replaced++;
    return this.#createThread();
  }

  stats(): WorkerPoolStats {
    let threadTasks = 0;
    for (const thread of this.#threads) threadTasks += thread.tasksRun;
    return {
      currentWorkers: this.size,
      minWorkers: this.#options.minWorkers,
      maxWorkers: this.#options.maxWorkers,
      busy: this.#inlineBusy + this.#threads.filter((thread) => thread.busy).length,
      idle: this.#idleInline.length + this.#threads.filter((thread) => !thread.busy).length,
      threads: this.#threads.length,
      peakWorkers: this.#peak,
      workersCreated: this.#created,
      workersRetired: this.#retired,
      workersReplaced: this.#replaced,
      tasksRun: this.#tasksRun + threadTasks,
    };
  }

  /** Terminates every thread (module probes included) and stops the retirement timer. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retireTimer !== null) clearTimeout(this.#retireTimer);
    if (this.#stealTimer !== null) clearTimeout(this.#stealTimer);
    this.#retireTimer = this.#stealTimer = null;
    await Promise.all([...this.#threads.map((thread) => thread.terminate()), probesEnded()]);
  }

  #threadWithRoom(): ThreadWorker<Run> | null {
    const threads = this.#threads;
    const n = threads.length;
    if (n === 0) return null;
    const strategy = this.#options.assignmentStrategy.name;
    switch (strategy) {
      // Threads of one pool run alike: nothing to learn, so adaptive spreads by load.
      case 'adaptive':
      case 'least-busy': {
        let best: ThreadWorker<Run> | null = null;
        for (const thread of threads) if ((best === null || thread.inFlight.size < best.inFlight.size) && thread.hasRoom()) best = thread;
        return best;
      }
      case 'round-robin':
      case 'random': {
        const start = strategy === 'random' ? Math.floor(Math.random() * n) : this.#roundRobin++;
        for (let i = 0; i < n; i++) {
          const thread = threads[(start + i) % n]!;
          if (thread.hasRoom()) return thread;
        }
        return null;
      }
    }
  }

  /**
   * A thread went idle with nothing left for it: jobs waiting in another thread behind a job
   * that has run BLOCKED_AFTER_MS are taken back and handed to the host to start again
   * elsewhere (the idle thread first); jobs behind a younger one are looked at again when it
   * would have run that long.
   */
  readonly #rebalance = (): void => {
    if (this.#stealTimer !== null) clearTimeout(this.#stealTimer);
    this.#stealTimer = null;
    if (this.#closed || this.#threads.every((thread) => thread.busy)) return;
    let nextLook = Infinity;
    for (const thread of [...this.#threads]) {
      const wait = thread.stealableIn();
      if (wait > 0) {
        nextLook = Math.min(nextLook, wait);
        continue;
      }
      const runs = thread.takeBack();
      if (runs.length > 0) this.#host.threadReturned(runs);
    }
    if (nextLook === Infinity) return;
    this.#stealTimer = setTimeout(this.#rebalance, Math.ceil(nextLook));
    this.#stealTimer.unref();
  };

  #createInline(): InlineWorker {
    this.#inlineCount++;
    this.#counted();
    return new InlineWorker(`worker-${this.#created}`);
  }

  #createThread(): ThreadWorker<Run> {
    const thread = new ThreadWorker<Run>(`thread-${this.#created + 1}`, this.#host, this.#rebalance, this.#options.threadBatchSize, this.#options.resourceLimits);
    this.#threads.push(thread);
    this.#counted();
    this.#armRetirement();
    return thread;
  }

  #counted(): void {
    this.#created++;
    if (this.size > this.#peak) this.#peak = this.size;
  }

  /** Frees room for a thread by retiring one idle in-process slot. */
  #retireIdleInline(): boolean {
    const worker = this.#idleInline.shift();
    if (worker === undefined) return false;
    this.#inlineCount--;
    this.#retired++;
    return true;
  }

  #armRetirement(): void {
    if (this.#retireTimer !== null || this.size <= this.#options.minWorkers) return;
    this.#retireTimer = setTimeout(() => this.#retireIdle(), this.#options.idleTimeout);
    // Retiring idle workers is no reason to keep the process alive.
    this.#retireTimer.unref();
  }

  #retireIdle(): void {
    this.#retireTimer = null;
    const cutoff = performance.now() - this.#options.idleTimeout;
    // Oldest idle first; in-process slots are kept LIFO, so the front of the list idled longest.
    while (this.size > this.#options.minWorkers && this.#idleInline.length > 0 && this.#idleInline[0]!.idleSince <= cutoff) {
      this.#idleInline.shift();
      this.#inlineCount--;
      this.#retired++;
    }
    for (const thread of [...this.#threads]) {
      if (this.size <= this.#options.minWorkers) break;
      if (!thread.busy && thread.idleSince <= cutoff) {
        this.#threads.splice(this.#threads.indexOf(thread), 1);
        this.#tasksRun += thread.tasksRun;
        this.#retired++;
        void thread.terminate();
      }
    }
    if (this.size > this.#options.minWorkers) this.#armRetirement();
  }
}
