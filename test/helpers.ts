import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import {
  createParallelOrchestrator,
  type OrchestratorEvents,
  type OrchestratorOptions,
  type ParallelOrchestrator,
  type TaskEvents,
  type TaskObservable,
} from '../src/index.js';

/** What nextEvent needs of an orchestrator: the one built from src or the one from dist. */
interface EventSource {
  on<K extends keyof OrchestratorEvents>(event: K, listener: (payload: OrchestratorEvents[K]) => void): () => void;
}

/** What the factory needs of an orchestrator: the one built from src or the one from dist. */
interface Closable {
  start(): Promise<void>;
  shutdown(options?: { graceful?: boolean }): Promise<void>;
}

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** A promise with its resolve/reject exposed: lets a test hold a handler at a known point. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Returns a factory of orchestrators that are all force-shut-down after each test, so a failing
 * test leaves no timers or running handlers behind. Started unless `start: false`.
 */
export function useOrchestrators<O extends Closable = ParallelOrchestrator, Options = OrchestratorOptions>(
  create: (options?: Options) => O = createParallelOrchestrator as unknown as (options?: Options) => O,
): (options?: Options, settings?: { start?: boolean }) => Promise<O> {
  const live: O[] = [];
  afterEach(async () => {
    await Promise.all(live.splice(0).map((o) => o.shutdown({ graceful: false })));
  });
  return async (options, settings = {}) => {
    const o = create(options);
    live.push(o);
    if (settings.start ?? true) await o.start();
    return o;
  };
}

/** Resolves with the first payload of `event` that `matches` accepts. */
export function nextEvent<K extends keyof OrchestratorEvents>(
  o: EventSource,
  event: K,
  matches: (payload: OrchestratorEvents[K]) => boolean = () => true,
): Promise<OrchestratorEvents[K]> {
  return new Promise((resolve) => {
    const off = o.on(event, (payload) => {
      if (!matches(payload)) return;
      off();
      resolve(payload);
    });
  });
}

/** Settles `promise` into a value so a test can assert on a rejection without an unhandled one. */
export async function settle<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Resolves with the next payload of one of a task's events. */
export function eventOf<R, S, K extends keyof TaskEvents<R, S>>(obs: TaskObservable<R, S>, event: K): Promise<TaskEvents<R, S>[K]> {
  return new Promise((resolve) => obs.once(event, resolve));
}

/** What test/fixtures/lanes-heap.mjs prints. */
export interface LanesHeap {
  /** Heap growth per capability set named once (bytes). */
  perSet: number;
  endings: string[];
  refused: string;
  served: { result: unknown };
  /** Learned figures of the agent of the 'served' sets, and samples of its hot set, run once per chunk. */
  learned: number;
  hotSamples: number;
  chunks: number;
}

/**
 * Runs test/fixtures/lanes-heap.mjs in a fresh process with --expose-gc (killed after a minute,
 * so a hang fails): `kind` 'unserved' names sets no agent serves, 'served' subsets of an agent's capabilities.
 */
export function lanesHeap(strategy: string, kind: 'unserved' | 'served', store?: object): Promise<LanesHeap> {
  const fixture = fileURLToPath(new URL('./fixtures/lanes-heap.mjs', import.meta.url));
  const args = ['--expose-gc', fixture, strategy, kind, ...(store === undefined ? [] : [JSON.stringify(store)])];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { timeout: 60_000, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`${error.message}: ${stderr}`));
      else resolve(JSON.parse(stdout.trim()) as LanesHeap);
    });
  });
}

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the child had to be killed: it did not exit on its own. */
  killed: boolean;
}

/** Runs a fixture in a fresh Node process; kills it after `killAfterMs` so a hang fails the test rather than stalling it. */
export function runFixture(name: string, killAfterMs = 20_000): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, killAfterMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, killed });
    });
  });
}
