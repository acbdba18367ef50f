import type { Unsubscribe } from '../index.js';
import type { WorkflowEvent, WorkflowEvents, WorkflowResult, WorkflowResults, WorkflowRunStatus } from './types.js';

type Listener = (payload: never) => void;
type EventName = keyof WorkflowEvents;

const TERMINAL = new Set<string>(['workflow:finished', 'workflow:error']);
const noop = (): void => {};
/** Events an iterator holding this many may drop (the oldest progress first). */
const DEFAULT_ITERATOR_BUFFER = 10_000;

/**
 * What the host and a coordinator use to drive a run's public view: emits its events, sets its
 * status, ends it. One per run and process.
 */
export class RunChannel {
  readonly runId: string;
  readonly workflowId: string;
  status: WorkflowRunStatus = 'queued';
  readonly #listeners = new Map<string, Listener[]>();
  #final: WorkflowEvents['workflow:finished'] | WorkflowEvents['workflow:error'] | null = null;
  #settled: Promise<WorkflowResult> | null = null;
  /** Asks the run to stop (set by the host). */
  cancel: (reason: string) => Promise<boolean> = async () => false;
  /** Called when a listener is added for an event (the host starts forwarding it). */
  onListen: (event: string) => void = noop;

  constructor(runId: string, workflowId: string) {
    this.runId = runId;
    this.workflowId = workflowId;
  }

  get ended(): boolean {
    return this.#final !== null;
  }

  /** True when someone listens to `event` (or iterates). */
  has(event: EventName): boolean {
    return (this.#listeners.get(event)?.length ?? 0) > 0 || (this.#listeners.get('*')?.length ?? 0) > 0;
  }

  emit<K extends EventName>(event: K, payload: WorkflowEvents[K]): void {
    if (this.#final !== null) return;
    if (event === 'workflow:finished') this.status = (payload as WorkflowEvents['workflow:finished']).result.status;
    else if (event === 'workflow:error') this.status = 'error';
    if (TERMINAL.has(event)) this.#final = payload as WorkflowEvents['workflow:finished'] | WorkflowEvents['workflow:error'];
    for (const key of [event, '*']) {
      const listeners = this.#listeners.get(key);
      if (listeners === undefined) continue;
      // Copy on write (below): a listener that subscribes or unsubscribes does not disturb this loop.
      for (const listener of listeners) {
        try {
          (listener as (p: WorkflowEvents[K]) => void)(payload);
        } catch (error) {
          // A throwing listener never breaks the run.
          process.emitWarning(`a listener of '${event}' of workflow run ${this.runId} threw: ${error instanceof Error ? error.message : String(error)}`, 'ParallelOrchestratorWarning');
        }
      }
    }
    if (this.#final !== null) this.#listeners.clear();
  }

  add(event: string, listener: Listener): Unsubscribe {
    const final = this.#final;
    if (final !== null) {
      // Ended: a listener of the final event still gets it, on a microtask.
      if (event !== final.type && event !== '*') return noop;
      let active = true;
      queueMicrotask(() => {
        if (active) (listener as (p: typeof final) => void)(final);
      });
      return () => (active = false);
    }
    this.#listeners.set(event, [...(this.#listeners.get(event) ?? []), listener]);
    this.onListen(event);
    return () => this.remove(event, listener);
  }

  remove(event: string, listener: Listener): void {
    const listeners = this.#listeners.get(event);
    if (listeners === undefined) return;
    const at = listeners.indexOf(listener);
    if (at < 0) return;
    const next = listeners.filter((_, i) => i !== at);
    if (next.length === 0) this.#listeners.delete(event);
    else this.#listeners.set(event, next);
  }

  result(): Promise<WorkflowResult> {
    // Listeners of the two final events only: '*' would make every event look wanted (has()).
    return (this.#settled ??= new Promise<WorkflowResult>((resolve, reject) => {
      this.add('workflow:finished', ((event: WorkflowEvents['workflow:finished']) => resolve(event.result)) as Listener);
      this.add('workflow:error', ((event: WorkflowEvents['workflow:error']) => reject(event.error)) as Listener);
    }));
  }
}

/**
 * The live view of one workflow run: its per-step events, its status, its final result.
 * Returned by `runWorkflow`, `orchestrator.runWorkflow` and `observeWorkflow`; you do not
 * construct it. Listeners of `workflow:finished` / `workflow:error` added after the end still get
 * that event (on a microtask); other listeners get the events from the moment they are added.
 */
export class WorkflowRun<R extends WorkflowResults = WorkflowResults> implements AsyncIterable<WorkflowEvent<R>> {
  readonly #channel: RunChannel;

  /** @internal */
  constructor(channel: RunChannel) {
    this.#channel = channel;
  }

  /** The run's id (also the id of its coordinator task; its steps' tasks are `<runId>/<step>`). */
  get runId(): string {
    return this.#channel.runId;
  }

  get workflowId(): string {
    return this.#channel.workflowId;
  }

  /** `queued`, `running`, `rolling-back`, then `completed`, `failed`, `cancelled` (or `error`). */
  get status(): WorkflowRunStatus {
    return this.#channel.status;
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof WorkflowEvents<R>>(event: K, listener: (payload: WorkflowEvents<R>[K]) => void): Unsubscribe {
    return this.#channel.add(event, listener as Listener);
  }

  /** Adds a listener that runs at most once. */
  once<K extends keyof WorkflowEvents<R>>(event: K, listener: (payload: WorkflowEvents<R>[K]) => void): Unsubscribe {
    let done = false;
    const off = this.on(event, (payload) => {
      if (done) return;
      done = true;
      off();
      listener(payload);
    });
    return off;
  }

  /** Removes a listener added with `on`. */
  off<K extends keyof WorkflowEvents<R>>(event: K, listener: (payload: WorkflowEvents<R>[K]) => void): void {
    this.#channel.remove(event, listener as Listener);
  }

  /**
   * Resolves with the run's result once it ended, whether it completed, failed (rolled back) or
   * was cancelled: look at `status`. Rejects when the run could not finish here (`workflow:error`:
   * its coordinator was cancelled or shut down, or failed for good).
   */
  result(): Promise<WorkflowResult<R>> {
    return this.#channel.result() as Promise<WorkflowResult<R>>;
  }

  /**
   * Cancels the run: no new steps start, running ones are cancelled, completed ones are
   * compensated (status `cancelled`). Resolves with false when the run has already ended or is
   * rolling back (a rollback is not interrupted).
   */
  cancel(reason = 'cancelled by caller'): Promise<boolean> {
    return this.#channel.cancel(reason);
  }

  /**
   * Every event of the run from now on, ending after `workflow:finished` or `workflow:error`.
   * While the loop is slow, events wait in a buffer; past `bufferSize` (10,000) the oldest
   * `step:progress` events are dropped.
   */
  [Symbol.asyncIterator](): AsyncIterator<WorkflowEvent<R>> {
    return iterate(this.#channel, DEFAULT_ITERATOR_BUFFER) as AsyncIterator<WorkflowEvent<R>>;
  }

  /** How `console.log` shows the run. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `WorkflowRun { runId: '${this.runId}', workflowId: '${this.workflowId}', status: '${this.status}' }`;
  }
}

function iterate(channel: RunChannel, limit: number): AsyncIterator<WorkflowEvent> {
  const buffer: WorkflowEvent[] = [];
  let waiting: ((result: IteratorResult<WorkflowEvent>) => void) | null = null;
  let done = false;
  const off = channel.add('*', ((event: WorkflowEvent) => {
    if (done) return;
    if (waiting !== null) {
      const resolve = waiting;
      waiting = null;
      resolve({ value: event, done: false });
    } else {
      buffer.push(event);
      if (buffer.length > limit) {
        const at = buffer.findIndex((e) => e.type === 'step:progress');
        if (at >= 0) buffer.splice(at, 1);
      }
    }
  }) as Listener);
  const finish = (): IteratorResult<WorkflowEvent> => {
    done = true;
    off();
    return { value: undefined, done: true };
  };
  return {
    next() {
      if (buffer.length > 0) {
        const value = buffer.shift()!;
        if (TERMINAL.has(value.type)) {
          done = true;
          off();
        }
        return Promise.resolve({ value, done: false });
      }
      if (done) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => {
        waiting = (result) => {
          if (!result.done && TERMINAL.has(result.value.type)) {
            done = true;
            off();
          }
          resolve(result);
        };
      });
    },
    return() {
      const result = finish();
      if (waiting !== null) waiting(result);
      waiting = null;
      return Promise.resolve(result);
    },
  };
}
