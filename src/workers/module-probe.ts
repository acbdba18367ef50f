import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/** How long `registerAgent` waits for a thread agent's module to load before refusing it. */
const PROBE_TIMEOUT_MS = 10_000;

/** Shared memory of a probe: [outcome, message length] as Int32, then the message as UTF-8. */
const OUTCOME = 0;
const LENGTH = 1;
const HEADER_BYTES = 8;
const MESSAGE_BYTES = 2048;
const LOADED = 1;
const NO_DEFAULT = 2;
const FAILED = 3;

/** Probe threads still terminating: shutdown() waits for them, so no thread outlives it. */
const terminating = new Set<Promise<unknown>>();

/** Resolves once every probe thread started so far has ended. */
export async function probesEnded(): Promise<void> {
  await Promise.all(terminating);
}

// CommonJS, run with eval: the module is imported in a thread of its own, as a thread agent's
// thread would, and the outcome written to shared memory for the blocked caller.
const PROBE = `
const { workerData } = require('node:worker_threads');
const state = new Int32Array(workerData.shared, 0, 2);
let reported = false;
function report(outcome, message) {
  if (reported) return;
  reported = true;
  state[${LENGTH}] = new TextEncoder().encodeInto(message, new Uint8Array(workerData.shared, ${HEADER_BYTES})).written;
  Atomics.store(state, ${OUTCOME}, outcome);
  Atomics.notify(state, ${OUTCOME});
}
process.on('uncaughtException', (error) => report(${FAILED}, error instanceof Error ? error.message : String(error)));
process.on('exit', (code) => report(${FAILED}, 'the thread exited with code ' + code + ' while the module loaded'));
import(workerData.url).then(
  (loaded) => report(typeof loaded.default === 'function' ? ${LOADED} : ${NO_DEFAULT}, loaded.default === undefined ? 'none' : typeof loaded.default),
  (error) => report(${FAILED}, error instanceof Error ? error.message : String(error)),
);
`;

/**
 * What is wrong with a thread agent's module (a URL string), or null when its default export is a
 * function. Blocks the calling thread while a short-lived worker thread imports the module (tens
 * of ms), so a broken module is refused when it is registered rather than failing every task.
 */
export function moduleProblem(url: string): string | null {
  if (url.startsWith('file:')) {
    const path = fileURLToPath(url);
    const stats = statSync(path, { throwIfNoEntry: false });
    if (stats === undefined) return `file not found: ${path}`;
    if (stats.isDirectory()) return `is a directory, not a module file: ${path}`;
  }
  const shared = new SharedArrayBuffer(HEADER_BYTES + MESSAGE_BYTES);
  const state = new Int32Array(shared, 0, 2);
  const probe = new Worker(PROBE, { eval: true, workerData: { url, shared } });
  probe.unref();
  try {
    if (Atomics.wait(state, OUTCOME, 0, PROBE_TIMEOUT_MS) === 'timed-out') return `did not finish loading within ${PROBE_TIMEOUT_MS} ms: ${url}`;
  } finally {
    const ended = probe.terminate().finally(() => terminating.delete(ended));
    terminating.add(ended);
  }
  const message = new TextDecoder().decode(new Uint8Array(shared, HEADER_BYTES, state[LENGTH]));
  switch (state[OUTCOME]) {
    case LOADED:
      return null;
    case NO_DEFAULT:
      return `has no default export function (task, ctx) => result (its default export: ${message}): ${url}`;
    default:
      return `failed to load: ${message} (${url})`;
  }
}
