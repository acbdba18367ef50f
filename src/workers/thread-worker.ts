import { Worker } from 'node:worker_threads';
import { InvalidTaskError } from '../errors.js';
import type { ThreadResourceLimits } from '../options.js';
import {
  JOB_FIELDS,
  OUT_CHECKPOINT,
  OUT_PROGRESS,
  OUT_RESULT,
  SHARED_ACKED,
  SHARED_CLAIMS,
  SHARED_ENDED_SEQ,
  SHARED_JOB_MS,
  SHARED_REACHED_SEQ,
  SHARED_SEQ,
  SHARED_STARTED_AT,
  TAKEN_BACK,
  UNCLAIMED,
  claimRing,
  serializeError,
  sharedMemory,
  sharedViews,
  type MainToThread,
  type ThreadJob,
  type ThreadToMain,
} from './protocol.js';
import { threadEntry } from '../util/thread-entry.js';

/** What a thread worker reports to; implemented by the engine. */
export interface ThreadHost<Run> {
  threadResult(run: Run, ok: boolean, value: unknown): void;
  /** The run could not be handed to the thread (its payload cannot be cloned). */
  threadRefused(run: Run, error: Error): void;
  threadProgress(run: Run, state: unknown): void;
  threadCheckpoint(run: Run, state: unknown): Promise<void>;
  /**
   * The thread is gone. `current` (if any) was running; `lost` ran to the end in the thread
   * but their results had not been sent yet; `unstarted` never began.
   */
  threadExited(worker: ThreadWorker<Run>, current: Run | null, lost: Run[], unstarted: Run[], error: Error): void;
  /** Runs taken back from a thread before they started there (see ThreadWorker.takeBack), to hand to another. */
  threadReturned(runs: Run[]): void;
}

/** Where a job stands in its thread. */
export type JobProgress = { state: 'waiting' } | { state: 'running'; startedAt: number } | { state: 'done' };

const THREAD_ENTRY = threadEntry('./thread-main.js', import.meta.url);

/**
 * About how much work (ms, by its jobs' average run time) a thread is handed ahead: enough to
 * ride out a round trip to the main thread and its short stalls (a GC pause, a busy turn),
 * little enough that no thread sits on a queue while another idles (at least 2 jobs, so the
 * next one is there when one ends).
 */
const LOOKAHEAD_MS = 5;
/** A job running this long blocks its thread: no more jobs go there, and the ones waiting behind it may be taken back. */
export const BLOCKED_AFTER_MS = 5;

/**
 * The main thread's side of one worker thread. Jobs handed over in the same tick go in one
 * message; the thread runs them in order and reports back in batches (see thread-main.ts).
 * Jobs not started yet can be taken back (claims in shared memory decide who got there first).
 */
export class ThreadWorker<Run> {
  readonly kind = 'thread';
  readonly inFlight = new Map<number, Run>();
  idleSince = performance.now();
  /** Set when the pool terminates it on purpose (retired or stuck), so its exit is not a crash. */
  retiring = false;
  tasksRun = 0;
  readonly #thread: Worker;
  readonly #shared: Float64Array;
  readonly #counters: Int32Array;
  readonly #ring: number;
  readonly #host: ThreadHost<Run>;
  /** Called when its last job's result came in and the host had nothing more for it. */
  readonly #onIdle: () => void;
  #nextSeq = 0;
  /** Jobs of this tick, JOB_FIELDS values each, and the table entries they need that the thread lacks. */
  #batch: unknown[] = [];
  #newAgents: (number | string)[] | null = null;
  #newCapabilities: (number | readonly string[])[] | null = null;
  /** What the thread's tables hold: the index of each agent (with its module) and of each capability list. */
  readonly #agents = new Map<string, { module: string; index: number }>();
  #agentCount = 0;
  readonly #capabilities = new Map<readonly string[], number>();
  #flushScheduled = false;
  #exited = false;
  /** Why the thread is going down, when it is not a plain exit. */
  #failure: Error | null = null;
  /** Messages with progress or checkpoints taken in this turn of the event loop, acknowledged after it (see PROGRESS_CREDITS). */
  #unacknowledged = 0;

  constructor(
    readonly workerId: string,
    host: ThreadHost<Run>,
    onIdle: () => void,
    readonly batchSize: number,
    resourceLimits: ThreadResourceLimits | undefined,
  ) {
    this.#host = host;
    this.#onIdle = onIdle;
    this.#ring = claimRing(batchSize);
    const buffer = sharedMemory(this.#ring);
    ({ floats: this.#shared, ints: this.#counters } = sharedViews(buffer));
    this.#thread = new Worker(THREAD_ENTRY, {
      workerData: { shared: buffer, workerId, batchSize, ring: this.#ring },
      ...(resourceLimits === undefined ? {} : { resourceLimits }),
    });
    this.#thread.on('message', (message: ThreadToMain) => this.#receive(message));
    this.#thread.on('messageerror', (error) => this.#undeliverable(error));
    this.#thread.on('error', (error) => (this.#failure ??= error));
    this.#thread.on('exit', (code) => this.#onExit(this.#failure ?? new Error(`the thread exited with code ${code}`)));
    // Held by the process only while it has jobs (see dispatch); after the listeners, as adding one refs it again.
    this.#thread.unref();
  }

  get busy(): boolean {
    return this.inFlight.size > 0;
  }

  /** Hands a job to the thread; returns its seq. Sent with the others of this tick in one message. */
  dispatch(run: Run, job: Omit<ThreadJob, 'seq'>): number {
    const seq = ++this.#nextSeq;
    // An idle thread does not keep the process alive; one with work does.
    if (this.inFlight.size === 0) this.#thread.ref();
    this.inFlight.set(seq, run);
    Atomics.store(this.#counters, this.#claim(seq), UNCLAIMED);
    const task = job.task;
    const batch = this.#batch;
    batch.push(seq, this.#agentIndex(job.agentId, job.module), task.id, task.type, task.payload, task.priority);
    batch.push(this.#capabilityIndex(task.capabilities), isEmpty(task.metadata) ? null : task.metadata, task.attempt, job.resumeState);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
    return seq;
  }

  abort(seq: number, reason: Error): void {
    if (!this.#exited) this.#thread.postMessage({ t: 'abort', seq, reason: serializeError(reason) });
  }

  committed(ack: number, error?: unknown): void {
    if (this.#exited) return;
    this.#thread.postMessage(error === undefined ? { t: 'committed', ack } : { t: 'committed', ack, error: serializeError(error) });
  }

  /** Where job `seq` stands: jobs run in seq order, and shared memory names the running one. */
  progressOf(seq: number): JobProgress {
    const running = this.#shared[SHARED_SEQ]!;
    if (running < seq) return { state: 'waiting' };
    if (running > seq) return { state: 'done' };
    return { state: 'running', startedAt: this.#shared[SHARED_STARTED_AT]! - performance.timeOrigin };
  }

  /**
   * True when another job may be handed over now: fewer than its look-ahead in flight (up to
   * `batchSize`, fewer as its jobs take longer), not blocked by a long job, and the claim the
   * next job will use free.
   */
  hasRoom(): boolean {
    const jobMs = this.#shared[SHARED_JOB_MS]!;
    const lookahead = jobMs === 0 ? this.batchSize : Math.min(this.batchSize, Math.max(2, Math.ceil(LOOKAHEAD_MS / jobMs)));
    return this.inFlight.size < lookahead && this.#nextSeq + 1 - this.#ring <= this.#shared[SHARED_REACHED_SEQ]! && this.#runningFor() < BLOCKED_AFTER_MS;
  }

  /** Ms until the jobs waiting behind the running one may be taken back: 0 now, Infinity when none waits. */
  stealableIn(): number {
    if (this.inFlight.size === 0 || this.#nextSeq <= this.#shared[SHARED_SEQ]!) return Infinity;
    return Math.max(0, BLOCKED_AFTER_MS - this.#runningFor());
  }

  /** Takes back the jobs handed over that the thread has not started; returns their runs in hand-over order. */
  takeBack(): Run[] {
    const waiting: number[] = [];
    for (const seq of this.inFlight.keys()) if (seq > this.#shared[SHARED_SEQ]!) waiting.push(seq);
    let first = waiting.length;
    // From the last: the thread starts them in order, so once it has one, it had the ones before.
    while (first > 0 && Atomics.compareExchange(this.#counters, this.#claim(waiting[first - 1]!), UNCLAIMED, TAKEN_BACK) === UNCLAIMED) first--;
    const runs = waiting.slice(first).map((seq) => this.inFlight.get(seq)!);
    for (const seq of waiting.slice(first)) this.#ended(seq);
    return runs;
  }

  terminate(): Promise<number> {
    this.retiring = true;
    return this.#thread.terminate();
  }

  #agentIndex(agentId: string, module: string): number {
    const known = this.#agents.get(agentId);
    // An agent unregistered and registered again under its id may have another module.
    if (known !== undefined && known.module === module) return known.index;
    const index = this.#agentCount++;
    this.#agents.set(agentId, { module, index });
    (this.#newAgents ??= []).push(index, module, agentId);
    return index;
  }

  #capabilityIndex(capabilities: readonly string[]): number {
    let index = this.#capabilities.get(capabilities);
    if (index === undefined) {
      index = this.#capabilities.size;
      this.#capabilities.set(capabilities, index);
      (this.#newCapabilities ??= []).push(index, capabilities);
    }
    return index;
  }

  /** How long its current job has run (ms), 0 when it runs none. */
  #runningFor(): number {
    const shared = this.#shared;
    return shared[SHARED_SEQ]! > shared[SHARED_ENDED_SEQ]! ? performance.timeOrigin + performance.now() - shared[SHARED_STARTED_AT]! : 0;
  }

  #claim(seq: number): number {
    return SHARED_CLAIMS + (seq % this.#ring);
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#batch.length === 0 || this.#exited) return;
    const message: MainToThread = { t: 'run', agents: this.#newAgents, capabilities: this.#newCapabilities, jobs: this.#batch };
    this.#batch = [];
    this.#newAgents = this.#newCapabilities = null;
    try {
      this.#thread.postMessage(message);
    } catch {
      this.#sendEach(message);
    }
  }

  /**
   * A payload that cannot be cloned (the check at submit does not see agents registered later):
   * hands over the others one by one and fails that task, without retries.
   */
  #sendEach({ agents, capabilities, jobs }: Extract<MainToThread, { t: 'run' }>): void {
    this.#thread.postMessage({ t: 'run', agents, capabilities, jobs: [] } satisfies MainToThread);
    for (let i = 0; i < jobs.length; i += JOB_FIELDS) {
      const job = jobs.slice(i, i + JOB_FIELDS);
      try {
        this.#thread.postMessage({ t: 'run', agents: null, capabilities: null, jobs: job } satisfies MainToThread);
      } catch (error) {
        const seq = job[0] as number;
        const run = this.inFlight.get(seq);
        if (run === undefined) continue;
        this.#ended(seq);
        const refusal = new InvalidTaskError('payload', `of task ${job[2] as string} cannot be cloned for a worker thread: ${(error as Error).message}`, { cause: error });
        this.#host.threadRefused(run, Object.assign(refusal, { retryable: false }));
      }
    }
  }

  #receive(items: ThreadToMain): void {
    const host = this.#host;
    let progressBearing = false;
    for (let i = 0; i < items.length; ) {
      const kind = items[i] as number;
      const seq = items[i + 1] as number;
      const value = items[i + 2];
      const run = this.inFlight.get(seq);
      if (kind === OUT_CHECKPOINT) {
        const ack = items[i + 3] as number;
        i += 4;
        progressBearing = true;
        if (run !== undefined) {
          host.threadCheckpoint(run, value).then(
            () => this.committed(ack),
            (error: unknown) => this.committed(ack, error),
          );
        }
        continue;
      }
      i += 3;
      if (kind === OUT_PROGRESS) progressBearing = true;
      if (run === undefined) continue;
      if (kind === OUT_PROGRESS) {
        host.threadProgress(run, value);
      } else {
        this.#ended(seq);
        this.tasksRun++;
        host.threadResult(run, kind === OUT_RESULT, value);
      }
    }
    // Acknowledged after this turn: messages already queued are not taken in within it.
    if (progressBearing && this.#unacknowledged++ === 0) setImmediate(this.#acknowledge);
    if (this.inFlight.size === 0) this.#onIdle();
  }

  readonly #acknowledge = (): void => {
    Atomics.add(this.#counters, SHARED_ACKED, this.#unacknowledged);
    Atomics.notify(this.#counters, SHARED_ACKED);
    this.#unacknowledged = 0;
  };

  /**
   * A message the main thread could not deserialize (the thread checks what it sends, so this
   * is a safety net): whichever results it held are lost, so the thread is replaced as if it
   * had crashed, and its jobs fail or go back to the queue as they would then; none waits for ever.
   */
  #undeliverable(error: Error): void {
    this.#failure ??= new Error(`${this.workerId} sent a message that could not be deserialized: ${error.message}`, { cause: error });
    void this.#thread.terminate();
  }

  #ended(seq: number): void {
    this.inFlight.delete(seq);
    if (this.inFlight.size === 0) {
      this.idleSince = performance.now();
      this.#thread.unref();
    }
  }

  #onExit(error: Error): void {
    this.#exited = true;
    const runningSeq = this.#shared[SHARED_SEQ]!;
    let current: Run | null = null;
    const lost: Run[] = [];
    const unstarted: Run[] = [];
    for (const [seq, run] of this.inFlight) {
      if (Atomics.load(this.#counters, this.#claim(seq)) === UNCLAIMED) {
        unstarted.push(run);
      } else if (seq >= runningSeq) {
        // Started last (it may have died before it wrote the job's seq).
        if (current !== null) lost.push(current);
        current = run;
      } else {
        lost.push(run);
      }
    }
    this.inFlight.clear();
    this.#batch = [];
    this.#newAgents = this.#newCapabilities = null;
    this.#host.threadExited(this, current, lost, unstarted, error);
  }
}

function isEmpty(record: object): boolean {
  for (const _ in record) return false;
  return true;
}
