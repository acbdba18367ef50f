/**
 * Entry of a worker thread. Runs the jobs it is handed one after another, in order, writing
 * the running job's seq and start time to shared memory (so the main thread can time out and
 * detect stuck jobs without a message per start), and sends results and progress back in
 * batches: half a batch at a time, a millisecond after the first item waiting (so progress
 * streams while a task runs), or when its queue is empty.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AgentHandler, TaskContext } from '../types.js';
import {
  SHARED_SEQ,
  SHARED_STARTED_AT,
  deserializeError,
  serializeError,
  type MainToThread,
  type ThreadJob,
  type ThreadOutput,
} from './protocol.js';

const port = parentPort!;
const { shared: sharedBuffer, workerId, batchSize } = workerData as { shared: SharedArrayBuffer; workerId: string; batchSize: number };
const shared = new Float64Array(sharedBuffer);
const handlers = new Map<string, Promise<AgentHandler>>();
const jobs: ThreadJob[] = [];
let head = 0;
let draining = false;
let output: ThreadOutput[] = [];
let firstOutputAt = 0;
const FLUSH_AFTER_MS = 1;
const controllers = new Map<number, AbortController>();
const abortedBeforeStart = new Map<number, Error>();
/** Seq of the last job started: an abort for an older seq came after its job ended and is dropped. */
let lastStartedSeq = 0;
const pendingCommits = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
let flushTimer: NodeJS.Timeout | null = null;
let nextAck = 0;

port.on('message', (message: MainToThread) => {
  switch (message.t) {
    case 'run':
      for (const job of message.jobs) jobs.push(job);
      if (!draining) void drain();
      break;
    case 'abort': {
      const reason = deserializeError(message.reason);
      const controller = controllers.get(message.seq);
      if (controller !== undefined) controller.abort(reason);
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

function load(module: string): Promise<AgentHandler> {
  let handler = handlers.get(module);
  if (handler === undefined) {
    handler = import(module).then((loaded: { default?: unknown }) => {
      if (typeof loaded.default !== 'function') throw new TypeError(`module ${module} has no default export function (task, ctx) => result`);
      return loaded.default as AgentHandler;
    });
    handlers.set(module, handler);
  }
  return handler;
}

function emit(item: ThreadOutput): void {
  if (output.length === 0) {
    firstOutputAt = performance.now();
    flushTimer ??= setTimeout(flush, FLUSH_AFTER_MS);
  } else if (performance.now() - firstOutputAt >= FLUSH_AFTER_MS) {
    // A handler streaming from a synchronous loop never lets the timer run.
    output.push(item);
    flush();
    return;
  }
  output.push(item);
}

function flush(): void {
  if (flushTimer !== null) {
    clearTimeout(flushTimer);
    flushTimer = null;
  }
  if (output.length === 0) return;
  const items = output;
  output = [];
  try {
    port.postMessage({ t: 'out', items });
  } catch {
    // A value that cannot be cloned: send each item alone, replacing only the bad ones.
    for (const item of items) {
      try {
        port.postMessage({ t: 'out', items: [item] });
      } catch (error) {
        const seq = item[1];
        if (item[0] === 'checkpoint') {
          const pending = pendingCommits.get(item[3]);
          pendingCommits.delete(item[3]);
          pending?.reject(new TypeError(`the checkpoint state cannot be cloned to the main thread: ${(error as Error).message}`));
        }
        if (item[0] === 'result') port.postMessage({ t: 'out', items: [['result', seq, false, serializeError(new TypeError(`the result of the task cannot be cloned to the main thread: ${(error as Error).message}`))]] });
      }
    }
  }
}

function context(job: ThreadJob, controller: AbortController): TaskContext {
  return {
    signal: controller.signal,
    // Copied now: the handler may change the same object before the batch is sent.
    progress: (state) => emit(['progress', job.seq, structuredClone(state)]),
    checkpoint: (state) =>
      new Promise<void>((resolve, reject) => {
        const ack = ++nextAck;
        pendingCommits.set(ack, { resolve, reject });
        emit(['checkpoint', job.seq, state, ack]);
        flush();
      }),
    resumeState: job.resumeState,
    attempt: job.task.attempt,
    agentId: job.agentId,
    workerId,
  };
}

async function drain(): Promise<void> {
  draining = true;
  while (head < jobs.length) {
    const job = jobs[head]!;
    jobs[head++] = undefined as unknown as ThreadJob;
    lastStartedSeq = job.seq;
    const early = abortedBeforeStart.get(job.seq);
    if (early !== undefined) {
      abortedBeforeStart.delete(job.seq);
      emit(['result', job.seq, false, serializeError(early)]);
      continue;
    }
    const controller = new AbortController();
    controllers.set(job.seq, controller);
    shared[SHARED_SEQ] = job.seq;
    shared[SHARED_STARTED_AT] = performance.timeOrigin + performance.now();
    try {
      const handler = await load(job.module);
      const value = await handler(job.task, context(job, controller));
      emit(['result', job.seq, true, value]);
    } catch (error) {
      emit(['result', job.seq, false, serializeError(error)]);
    }
    controllers.delete(job.seq);
    // Half a batch of results goes back at once, so the main thread refills while the rest runs.
    if (output.length >= batchSize / 2 || performance.now() - firstOutputAt >= FLUSH_AFTER_MS) flush();
  }
  jobs.length = 0;
  head = 0;
  draining = false;
  flush();
}
