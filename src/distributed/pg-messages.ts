import type { JsonPatchOperation } from '../types.js';
import type { SerializedError } from '../workers/protocol.js';

/**
 * What nodes tell each other over NOTIFY, on the channel of the node that needs to know. Keys are
 * one letter: a payload holds at most 8,000 bytes, and a busy task streams many of these.
 */
export type Message =
  /** Started: agent, worker, node, attempt. */
  | { k: 's'; i: string; a: string; w: string; n: string; t: number }
  /**
   * Progress update `q` by agent `a` at `ts`: a delta from update q - 1 (`d`), or a whole state
   * (`s`), or `r: 1` when the state was too large for a notification and waits in the progress table.
   */
  | { k: 'p'; i: string; q: number; a: string; ts: number; d?: JsonPatchOperation[]; s?: unknown; r?: 1 }
  /** Retrying: the next attempt `t` after `y` ms, after error `e`. */
  | { k: 'r'; i: string; t: number; y: number; e: SerializedError }
  /** Queued again (a lease expired, or a node handed it back unstarted), after `t` attempts. */
  | { k: 'q'; i: string; t: number }
  /** Preempted on agent `a` by task `b` (its `c`-th preemption): queued again on its node, after `t` attempts. */
  | { k: 'v'; i: string; t: number; b: string; a: string; c: number }
  /** Ended with status `st`: result `r` or error `e`, after `t` attempts, on agent `a` and worker `w`, run time `u`, updates `c`. */
  | {
      k: 'e';
      i: string;
      st: 'completed' | 'failed' | 'timeout' | 'cancelled';
      r?: unknown;
      e?: SerializedError | null;
      t?: number;
      a?: string;
      w?: string;
      u?: number;
      c?: number;
      /** Set when the result or error was too large for a notification: read the task's row. */
      f?: 1;
    }
  /** To the node running task `i`: cancel it for reason `m`. */
  | { k: 'x'; i: string; m: string }
  /** To the node running task `i`: node `n` watches it and needs its state. */
  | { k: 'w'; i: string; n: string };

/**
 * Packs messages into payloads of at most `maxBytes` each (JSON arrays). An end message too
 * large alone goes without its result (`f: 1`: the receiver reads the row); progress states too
 * large are stored by the sender before it publishes (see `fits`).
 */
export function encodeMessages(messages: readonly Message[], maxBytes: number): string[] {
  const payloads: string[] = [];
  let current: string[] = [];
  let size = 2;
  for (const message of messages) {
    let text = JSON.stringify(message);
    let bytes = Buffer.byteLength(text);
    if (bytes + 2 > maxBytes) {
      if (message.k !== 'e') continue;
      text = JSON.stringify({ k: 'e', i: message.i, st: message.st, t: message.t, f: 1 });
      bytes = Buffer.byteLength(text);
    }
    if (size + bytes + 1 > maxBytes && current.length > 0) {
      payloads.push(`[${current.join(',')}]`);
      current = [];
      size = 2;
    }
    current.push(text);
    size += bytes + 1;
  }
  if (current.length > 0) payloads.push(`[${current.join(',')}]`);
  return payloads;
}

/** @throws SyntaxError or TypeError for a payload that is not an array of messages */
export function decodeMessages(payload: string): Message[] {
  const parsed: unknown = JSON.parse(payload);
  if (!Array.isArray(parsed)) throw new TypeError('a notification is not an array of messages');
  return parsed.filter((message): message is Message => typeof message === 'object' && message !== null && typeof (message as { k?: unknown }).k === 'string' && typeof (message as { i?: unknown }).i === 'string');
}

/** True when the message fits in a notification on its own. */
export function fits(message: Message, maxBytes: number): boolean {
  return Buffer.byteLength(JSON.stringify(message)) + 2 <= maxBytes;
}
