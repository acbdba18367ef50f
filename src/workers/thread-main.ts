/**
 * Entry of a worker thread. Runs the jobs it is handed one after another, in order, writing
 * the running job's seq and start time to shared memory (so the main thread can time out and
 * detect stuck jobs without a message per start), and sends results and progress back in
 * batches: half a batch at a time, a millisecond after the first item waiting (so progress
 * streams while a task runs), or when its queue is empty. Progress is flow-controlled (see
 * PROGRESS_CREDITS): while the main thread is behind, a job's newest state replaces its unsent one.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AgentHandler, Task, TaskContext } from '../types.js';
import {
  JOB_FIELDS,
  OUT_CHECKPOINT,
  OUT_ERROR,
  OUT_PROGRESS,
  OUT_RESULT,
  PROGRESS_CREDITS,
  PROGRESS_VALUES_PER_MESSAGE,
  SHARED_ACKED,
  SHARED_CLAIMS,
  SHARED_ENDED_SEQ,
  SHARED_JOB_MS,
  SHARED_REACHED_SEQ,
  SHARED_SEQ,
  SHARED_STARTED_AT,
  STARTED,
  UNCLAIMED,
  deserializeError,
  serializeError,
  sharedViews,
  type MainToThread,
} from './protocol.js';
import { jsonState, resultProblem } from './thread-values.js';

const port = parentPort!;
const { shared: sharedBuffer, workerId, batchSize, ring } = workerData as { shared: SharedArrayBuffer; workerId: string; batchSize: number; ring: number };
const { floats: shared, ints: counters } = sharedViews(sharedBuffer);
/** Weight of the latest job in the moving average of job run times. */
const JOB_MS_WEIGHT = 1 / 8;
const FLUSH_AFTER_MS = 1;
/** About how long the main thread takes to send more jobs once it has results (ms). */
const REFILL_MS = 0.25;
const NO_METADATA: Readonly<Record<string, unknown>> = Object.freeze({});
// Typed only from lib ES2024.
const waitAsync = (Atomics as unknown as { waitAsync(array: Int32Array, index: number, value: number): { async: boolean; value: Promise<string> | string } }).waitAsync;

/** A loaded handler, or the import still under way (or failed: every job of that module fails with its error). */
const handlers = new Map<string, AgentHandler | Promise<AgentHandler>>();
const agents: { module: string; agentId: string }[] = [];
const capabilityLists: (readonly string[])[] = [];

/** One job, and the `ctx` its handler receives: one object, with the signal made only when read. */
class Job implements TaskContext {
  #controller: AbortController | null = null;
  #abortReason: Error | null = null;

  constructor(
    readonly seq: number,
    readonly module: string,
    readonly agentId: string,
    readonly task: Task,
    readonly resumeState: unknown,
  ) {}

  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#abortReason !== null) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  get attempt(): number {
    return this.task.attempt;
  }

  get workerId(): string {
    return workerId;
  }

  abort(reason: Error): void {
    this.#abortReason = reason;
    this.#controller?.abort(reason);
  }

  progress(state: unknown): void {
    // Copied (and checked) now: the handler may change the same object before the batch is sent.
    const copy = jsonState(state, 'the progress state');
    const unsent = mayConflate ? unsentProgress.get(this.seq) : undefined;
    if (unsent !== undefined && !hasCredit()) {
      output[unsent] = copy.value;
      return;
    }
    unsentProgress.set(this.seq, output.length + 2);
    progressValues += copy.size;
    emit(OUT_PROGRESS, this.seq, copy.value);
    if (progressValues >= PROGRESS_VALUES_PER_MESSAGE) flush();
  }

  checkpoint(state: unknown): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const copy = jsonState(state, 'the checkpoint state');
      const ack = ++nextAck;
      pendingCommits.set(ack, { resolve, reject });
      emit(OUT_CHECKPOINT, this.seq, copy.value, ack);
      flush();
    });
  }
}

const queue: (Job | undefined)[] = [];
let head = 0;
let draining = false;
let current: Job | null = null;
/** Seq of the last job started: an abort for an older seq came after its job ended and is dropped. */
let lastStartedSeq = 0;
const abortedBeforeStart = new Map<number, Error>();

let output: unknown[] = [];
let resultsWaiting = 0;
let firstOutputAt = 0;
let flushTimer: NodeJS.Timeout | null = null;
/** Whether `output` holds progress or checkpoints, which need a credit to be sent. */
let progressBearing = false;
/** Values of the progress states in `output`. */
let progressValues = 0;
/** Messages with progress or checkpoints sent; the main thread counts those it took in. */
let progressMessagesSent = 0;
let waitingForCredit = false;
/** Where in `output` each job's latest progress state is, while nothing of that job follows it. */
const unsentProgress = new Map<number, number>();
/** Set once unsentProgress has entries (no map lookups on the path of jobs that do not stream). */
let mayConflate = false;
const pendingCommits = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
let nextAck = 0;

port.on('message', (message: MainToThread) => {
  switch (message.t) {
    case 'run':
      receiveJobs(message);
      if (!draining) void drain();
      break;
    case 'abort': {
      const reason = deserializeError(message.reason);
      if (current?.seq === message.seq) current.abort(reason);
      else if (message.seq > lastStartedSeq) abortedBeforeStart.set(message.seq, reason);
      break;
    }
    case 'committed': {
      const pending = pendingCommits.get(message.ack);
      pendingCommits.delete(message.ack);
      if (message.error === undefined) pending?.resolve();
      else pending?.reject(deserializeError(message.error));
      break;
    }
  }
});

function receiveJobs({ agents: newAgents, capabilities: newCapabilities, jobs }: Extract<MainToThread, { t: 'run' }>): void {
  if (newAgents !== null) for (let i = 0; i < newAgents.length; i += 3) agents[newAgents[i] as number] = { module: newAgents[i + 1] as string, agentId: newAgents[i + 2] as string };
  if (newCapabilities !== null) for (let i = 0; i < newCapabilities.length; i += 2) capabilityLists[newCapabilities[i] as number] = newCapabilities[i + 1] as readonly string[];
  for (let i = 0; i < jobs.length; i += JOB_FIELDS) {
    const agent = agents[jobs[i + 1] as number]!;
    const task: Task = {
      id: jobs[i + 2] as string,
      type: jobs[i + 3] as string,
      payload: jobs[i + 4],
      priority: jobs[i + 5] as Task['priority'],
      capabilities: capabilityLists[jobs[i + 6] as number]!,
      metadata: (jobs[i + 7] as Task['metadata'] | null) ?? NO_METADATA,
      attempt: jobs[i + 8] as number,
    };
    queue.push(new Job(jobs[i] as number, agent.module, agent.agentId, task, jobs[i + 9]));
  }
}

function load(module: string): Promise<AgentHandler> {
  const loading = import(module).then((loaded: { default?: unknown }) => {
    if (typeof loaded.default !== 'function') throw new TypeError(`module ${module} has no default export function (task, ctx) => result`);
    handlers.set(module, loaded.default as AgentHandler);
    return loaded.default as AgentHandler;
  });
  handlers.set(module, loading);
  return loading;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';
}

function hasCredit(): boolean {
  return progressMessagesSent - Atomics.load(counters, SHARED_ACKED) < PROGRESS_CREDITS;
}

function emit(kind: number, seq: number, value: unknown, ack?: number): void {
  const now = performance.now();
  if (output.length === 0) {
    firstOutputAt = now;
    flushTimer ??= setTimeout(flush, FLUSH_AFTER_MS);
  }
  if (kind === OUT_PROGRESS) {
    progressBearing = mayConflate = true;
    output.push(kind, seq, value);
    // A handler streaming from a synchronous loop never lets the timer run.
    if (now - firstOutputAt >= FLUSH_AFTER_MS) flush();
    return;
  }
  // Later progress of this job must not be merged into a state sent before this item.
  if (mayConflate) unsentProgress.delete(seq);
  if (kind === OUT_CHECKPOINT) {
    progressBearing = true;
    output.push(kind, seq, value, ack);
  } else {
    output.push(kind, seq, value);
  }
}

function flush(): void {
  if (flushTimer !== null) {
    clearTimeout(flushTimer);
    flushTimer = null;
  }
  if (output.length === 0) return;
  const bearing = progressBearing;
  if (bearing && !hasCredit()) {
    awaitCredit();
    return;
  }
  const items = output;
  output = [];
  resultsWaiting = progressValues = 0;
  progressBearing = mayConflate = false;
  unsentProgress.clear();
  try {
    port.postMessage(items);
    if (bearing) progressMessagesSent++;
  } catch {
    sendEach(items);
  }
}

/** Sends what waits once the main thread acknowledges a message (it bumps the counter and notifies). */
function awaitCredit(): void {
  if (waitingForCredit) return;
  waitingForCredit = true;
  const resume = (): void => {
    waitingForCredit = false;
    flush();
  };
  const waited = waitAsync(counters, SHARED_ACKED, Atomics.load(counters, SHARED_ACKED));
  // Acknowledged since hasCredit() looked: no wait.
  if (waited.async) void (waited.value as Promise<string>).then(resume);
  else queueMicrotask(resume);
}

/**
 * A result that cannot be cloned: sends each item alone, replacing only the bad results
 * (progress states and checkpoints are JSON copies, which always clone).
 */
function sendEach(items: unknown[]): void {
  for (let i = 0; i < items.length; ) {
    const kind = items[i] as number;
    const size = kind === OUT_CHECKPOINT ? 4 : 3;
    const item = items.slice(i, i + size);
    i += size;
    try {
      port.postMessage(item);
      if (kind === OUT_PROGRESS || kind === OUT_CHECKPOINT) progressMessagesSent++;
    } catch (error) {
      port.postMessage([OUT_ERROR, item[1], serializeError(new TypeError(`the result of the task cannot be cloned to the main thread: ${(error as Error).message}`))]);
    }
  }
}

async function drain(): Promise<void> {
  draining = true;
  while (head < queue.length) {
    const job = queue[head]!;
    queue[head++] = undefined;
    const seq = job.seq;
    // The main thread took it back to hand it to another thread.
    const mine = Atomics.compareExchange(counters, SHARED_CLAIMS + (seq % ring), UNCLAIMED, STARTED) === UNCLAIMED;
    shared[SHARED_REACHED_SEQ] = seq;
    if (!mine) {
      if (abortedBeforeStart.size > 0) abortedBeforeStart.delete(seq);
      continue;
    }
    lastStartedSeq = seq;
    const early = abortedBeforeStart.get(seq);
    if (early !== undefined) {
      abortedBeforeStart.delete(seq);
      emit(OUT_ERROR, seq, serializeError(early));
      continue;
    }
    current = job;
    shared[SHARED_SEQ] = seq;
    const startedAt = performance.now();
    shared[SHARED_STARTED_AT] = performance.timeOrigin + startedAt;
    let ranFrom = startedAt;
    try {
      let handler = handlers.get(job.module) ?? load(job.module);
      if (typeof handler !== 'function') {
        handler = await handler;
        // Loading the module is not part of how long its jobs run.
        ranFrom = performance.now();
      }
      // A synchronous handler's result is taken as it is: no promise, no microtask per job.
      const returned = handler(job.task, job);
      const value = isThenable(returned) ? await returned : returned;
      const problem = resultProblem(value);
      if (problem === null) emit(OUT_RESULT, seq, value);
      else emit(OUT_ERROR, seq, serializeError(new TypeError(`the result of task ${job.task.id} ${problem}`)));
    } catch (error) {
      emit(OUT_ERROR, seq, serializeError(error));
    }
    current = null;
    const now = performance.now();
    const average = shared[SHARED_JOB_MS]!;
    const ran = now - ranFrom;
    shared[SHARED_JOB_MS] = average === 0 ? ran : average + (ran - average) * JOB_MS_WEIGHT;
    shared[SHARED_ENDED_SEQ] = seq;
    // Results go back before the next job when they would otherwise wait a millisecond (long
    // jobs: at once), and after half a batch when the jobs left here run long enough for the
    // main thread to refill meanwhile; else once the queue is empty, in one message.
    const jobMs = shared[SHARED_JOB_MS]!;
    if (now - firstOutputAt + jobMs >= FLUSH_AFTER_MS || (++resultsWaiting >= batchSize / 2 && (queue.length - head) * jobMs >= REFILL_MS)) flush();
  }
  queue.length = 0;
  head = 0;
  draining = false;
  flush();
}
