/**
 * Messages between the main thread and worker threads. Jobs and outputs travel in batches, as
 * flat arrays of primitives: structured cloning walks every object it is given, so a job sent
 * as a dozen primitives costs a fraction of a nested task object, and the module URL, agent id
 * and capability list of a job go over once per thread, as entries of tables the thread keeps.
 */
import { describeThrown } from '../errors.js';
import type { Task } from '../types.js';

/** One task handed to a thread, as the engine gives it. `seq` is unique per thread and increases in hand-over order. */
export interface ThreadJob {
  seq: number;
  module: string;
  task: Task;
  resumeState: unknown;
  agentId: string;
}

/**
 * `jobs` holds JOB_FIELDS values per job: seq, agent (index into the agents table), id, type,
 * payload, priority, capabilities (index into the capabilities table), metadata (null when
 * empty), attempt, resumeState. `agents` adds table entries as (index, module, agentId) triples
 * and `capabilities` as (index, list) pairs, before the jobs that use them.
 */
export type MainToThread =
  | { t: 'run'; agents: (number | string)[] | null; capabilities: (number | readonly string[])[] | null; jobs: unknown[] }
  | { t: 'abort'; seq: number; reason: SerializedError }
  | { t: 'committed'; ack: number; error?: SerializedError };

export const JOB_FIELDS = 10;

/**
 * Outputs of a thread in the order they happened, flat: (OUT_RESULT, seq, value),
 * (OUT_ERROR, seq, SerializedError), (OUT_PROGRESS, seq, state), (OUT_CHECKPOINT, seq, state, ack).
 */
export type ThreadToMain = unknown[];

export const OUT_RESULT = 0;
export const OUT_ERROR = 1;
export const OUT_PROGRESS = 2;
export const OUT_CHECKPOINT = 3;

/**
 * Shared memory of a thread, Float64 slots: the job it last started and when (epoch ms), the
 * last job whose run ended, the last job it reached (started, or skipped as taken back), and a
 * moving average of how long its jobs run (ms; 0 before the first).
 */
export const SHARED_SEQ = 0;
export const SHARED_STARTED_AT = 1;
export const SHARED_ENDED_SEQ = 2;
export const SHARED_REACHED_SEQ = 3;
export const SHARED_JOB_MS = 4;
const FLOAT_SLOTS = 5;
/**
 * Int32 slots after them: how many progress-bearing messages the main thread has taken in,
 * then one claim per job, at SHARED_CLAIMS + seq % ring. A job is started only by the side that
 * changes its claim from UNCLAIMED: the thread to STARTED before it runs it, or the main thread
 * to TAKEN_BACK, to hand it to another thread. The main thread resets a claim when it hands
 * over the job that reuses it, only once the thread has reached the job that used it before.
 */
export const SHARED_ACKED = 0;
export const SHARED_CLAIMS = 1;
export const UNCLAIMED = 0;
export const STARTED = 1;
export const TAKEN_BACK = 2;

/** Claims per thread: a power of two, well above the jobs a thread may hold (`threadBatchSize`). */
export function claimRing(batchSize: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(64, 4 * batchSize)));
}

/** A thread's shared memory, with `ring` claims. */
export function sharedMemory(ring: number): SharedArrayBuffer {
  return new SharedArrayBuffer(FLOAT_SLOTS * Float64Array.BYTES_PER_ELEMENT + (SHARED_CLAIMS + ring) * Int32Array.BYTES_PER_ELEMENT);
}

/** The two views of a thread's shared memory. */
export function sharedViews(buffer: SharedArrayBuffer): { floats: Float64Array; ints: Int32Array } {
  return { floats: new Float64Array(buffer, 0, FLOAT_SLOTS), ints: new Int32Array(buffer, FLOAT_SLOTS * Float64Array.BYTES_PER_ELEMENT) };
}

/**
 * Flow control of progress. A message carrying progress states or checkpoints is acknowledged
 * once the main thread has handled it and yielded to its event loop; a thread sends at most
 * PROGRESS_CREDITS such messages ahead of the acknowledgements, and one message carries about
 * PROGRESS_VALUES_PER_MESSAGE values of progress states (objects, arrays and primitives counted
 * alike: what deserializing, diffing and copying them costs grows with that). So the main thread
 * takes in at most a few milliseconds of progress per thread per turn of its event loop; while a
 * thread waits, a newer state of a job replaces the one it holds unsent (results and checkpoints
 * are never dropped, and never overtake their job's progress).
 */
export const PROGRESS_CREDITS = 2;
export const PROGRESS_VALUES_PER_MESSAGE = 5_000;

/** An error flattened for postMessage: structured clone keeps message and stack but drops `code` and other own properties. */
export interface SerializedError {
  name: string;
  message: string;
  stack: string | undefined;
  props: Record<string, unknown>;
}

export function serializeError(thrown: unknown): SerializedError {
  try {
    const error = thrown instanceof Error ? thrown : new Error(typeof thrown === 'string' ? thrown : `non-error thrown: ${describeThrown(thrown)}`);
    const props: Record<string, unknown> = {};
    for (const key of Object.keys(error)) {
      const value = (error as unknown as Record<string, unknown>)[key];
      if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) props[key] = value;
    }
    return { name: String(error.name), message: String(error.message), stack: error.stack, props };
  } catch {
    // An Error (or a Proxy of one) whose fields throw when read: the task still fails, with this.
    return { name: 'Error', message: 'non-error thrown: a value whose fields cannot be read', stack: undefined, props: {} };
  }
}

export function deserializeError(serialized: SerializedError): Error {
  const error = new Error(serialized.message);
  error.name = serialized.name;
  if (serialized.stack !== undefined) error.stack = serialized.stack;
  return Object.assign(error, serialized.props);
}
