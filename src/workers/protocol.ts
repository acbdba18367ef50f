/** Messages between the main thread and worker threads. Tasks travel in batches. */
import type { Task } from '../types.js';

/** One task handed to a thread. `seq` is unique per thread and increases in hand-over order. */
export interface ThreadJob {
  seq: number;
  module: string;
  task: Task;
  resumeState: unknown;
  agentId: string;
}

export type MainToThread =
  | { t: 'run'; jobs: ThreadJob[] }
  | { t: 'abort'; seq: number; reason: SerializedError }
  | { t: 'committed'; ack: number; error?: SerializedError };

/** Items a thread sends back, in the order they happened. */
export type ThreadOutput =
  | [kind: 'result', seq: number, ok: true, value: unknown]
  | [kind: 'result', seq: number, ok: false, error: SerializedError]
  | [kind: 'progress', seq: number, state: unknown]
  | [kind: 'checkpoint', seq: number, state: unknown, ack: number];

export type ThreadToMain = { t: 'out'; items: ThreadOutput[] };

/** Shared memory of a thread: the job it is running and when it started (epoch ms). */
export const SHARED_SEQ = 0;
export const SHARED_STARTED_AT = 1;
export const SHARED_SLOTS = 2;

/** An error flattened for postMessage: structured clone keeps message and stack but drops `code` and other own properties. */
export interface SerializedError {
  name: string;
  message: string;
  stack: string | undefined;
  props: Record<string, unknown>;
}

export function serializeError(thrown: unknown): SerializedError {
  const error = thrown instanceof Error ? thrown : new Error(typeof thrown === 'string' ? thrown : `non-error thrown: ${String(thrown)}`);
  const props: Record<string, unknown> = {};
  for (const key of Object.keys(error)) {
    const value = (error as unknown as Record<string, unknown>)[key];
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) props[key] = value;
  }
  return { name: error.name, message: error.message, stack: error.stack, props };
}

export function deserializeError(serialized: SerializedError): Error {
  const error = new Error(serialized.message);
  error.name = serialized.name;
  if (serialized.stack !== undefined) error.stack = serialized.stack;
  return Object.assign(error, serialized.props);
}
