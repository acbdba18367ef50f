import { Worker } from 'node:worker_threads';
import { InvalidTaskError } from '../errors.js';
import type { ThreadResourceLimits } from '../options.js';
import { SHARED_SEQ, SHARED_SLOTS, SHARED_STARTED_AT, serializeError, type ThreadJob, type ThreadToMain } from './protocol.js';

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
}

/** Where a job stands in its thread. */
export type JobProgress = { state: 'waiting' } | { state: 'running'; startedAt: number } | { state: 'done' };

const THREAD_ENTRY = new URL('./thread-main.js', import.meta.url);

/**
 * The main thread's side of one worker thread. Jobs handed over in the same tick go in one
 * message; the thread runs them in order and reports back in batches (see thread-main.ts).
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
  readonly #host: ThreadHost<Run>;
  #nextSeq = 0;
  #batch: ThreadJob[] = [];
  #flushScheduled = false;
  #exited = false;

  constructor(readonly workerId: string, host: ThreadHost<Run>, batchSize: number, resourceLimits: ThreadResourceLimits | undefined) {
    this.#host = host;
    const buffer = new SharedArrayBuffer(SHARED_SLOTS * Float64Array.BYTES_PER_ELEMENT);
    this.#shared = new Float64Array(buffer);
    this.#thread = new Worker(THREAD_ENTRY, {
      workerData: { shared: buffer, workerId, batchSize },
      ...(resourceLimits === undefined ? {} : { resourceLimits }),
    });
    this.#thread.on('message', (message: ThreadToMain) => this.#receive(message));
    let failure: Error | null = null;
    this.#thread.on('error', (error) => (failure = error));
    this.#thread.on('exit', (code) => this.#onExit(failure ?? new Error(`the thread exited with code ${code}`)));
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
    this.#batch.push({ ...job, seq });
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

  terminate(): Promise<number> {
    this.retiring = true;
    return this.#thread.terminate();
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#batch.length === 0 || this.#exited) return;
    const jobs = this.#batch;
    this.#batch = [];
    try {
      this.#thread.postMessage({ t: 'run', jobs });
    } catch {
      // A payload that cannot be cloned (the check at submit does not see agents registered
      // later): hand over the others one by one and fail that task, without retries.
      for (const job of jobs) {
        try {
          this.#thread.postMessage({ t: 'run', jobs: [job] });
        } catch (error) {
          const run = this.inFlight.get(job.seq);
          if (run === undefined) continue;
          this.inFlight.delete(job.seq);
          const refusal = new InvalidTaskError('payload', `of task ${job.task.id} cannot be cloned for a worker thread: ${(error as Error).message}`, { cause: error });
          this.#host.threadRefused(run, Object.assign(refusal, { retryable: false }));
        }
      }
    }
  }

  #receive(message: ThreadToMain): void {
    const host = this.#host;
    for (const item of message.items) {
      const run = this.inFlight.get(item[1]);
      if (run === undefined) continue;
      switch (item[0]) {
        case 'result':
          this.inFlight.delete(item[1]);
          this.tasksRun++;
          if (this.inFlight.size === 0) {
            this.idleSince = performance.now();
            this.#thread.unref();
          }
          host.threadResult(run, item[2], item[3]);
          break;
        case 'progress':
          host.threadProgress(run, item[2]);
          break;
        case 'checkpoint': {
          const ack = item[3];
          host.threadCheckpoint(run, item[2]).then(
            () => this.committed(ack),
            (error: unknown) => this.committed(ack, error),
          );
          break;
        }
      }
    }
  }

  #onExit(error: Error): void {
    this.#exited = true;
    const runningSeq = this.#shared[SHARED_SEQ]!;
    let current: Run | null = null;
    const lost: Run[] = [];
    const unstarted: Run[] = [];
    for (const [seq, run] of this.inFlight) {
      if (seq === runningSeq) current = run;
      else if (seq > runningSeq) unstarted.push(run);
      else lost.push(run);
    }
    this.inFlight.clear();
    this.#batch = [];
    this.#host.threadExited(this, current, lost, unstarted, error);
  }
}
