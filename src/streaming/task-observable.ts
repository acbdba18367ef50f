import type { TaskStatus } from '../enums.js';
import { Emitter, type Unsubscribe } from '../util/emitter.js';
import type { CompleteEvent, TaskEvent, TaskEvents } from '../types.js';

/** What a `TaskObservable` reads from the engine's record of its task. */
export interface TaskEventSource<R, S> {
  readonly id: string;
  readonly status: TaskStatus;
  /** Once cancelled, the `TaskCancelledError` that `result()` rejects with. */
  readonly outcome: unknown;
  /** Created by the observable on first subscription; the engine emits only when it exists. */
  events: Emitter<TaskEvents<R, S>> | null;
  /** The task's final event once it has ended, else null. */
  terminalEvent(): TaskEvents<R, S>['complete' | 'error' | 'cancelled'] | null;
  reportListenerError(error: unknown, event: PropertyKey): void;
}

const TERMINAL = new Set<PropertyKey>(['complete', 'error', 'cancelled']);
const ALL_EVENTS = ['start', 'delta', 'retry', 'complete', 'error', 'cancelled'] as const;

/**
 * The live view of one submitted task: subscribe to its events, await its result, or iterate
 * its events. It holds no state of its own beyond listeners, so one nobody subscribes to costs
 * a single small object. Listeners of `complete`, `error` and `cancelled` added after the task
 * ended still receive that event (on a microtask).
 */
export class TaskObservable<R = unknown, S = unknown> implements AsyncIterable<TaskEvent<R, S>> {
  readonly #source: TaskEventSource<R, S>;
  #result: Promise<CompleteEvent<R>> | null = null;

  constructor(source: TaskEventSource<R, S>) {
    this.#source = source;
  }

  get taskId(): string {
    return this.#source.id;
  }

  /** The task's status now. */
  get state(): TaskStatus {
    return this.#source.status;
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof TaskEvents<R, S>>(event: K, listener: (payload: TaskEvents<R, S>[K]) => void): Unsubscribe {
    const source = this.#source;
    const events = (source.events ??= new Emitter<TaskEvents<R, S>>((error, name) => source.reportListenerError(error, name)));
    const terminal = TERMINAL.has(event) ? source.terminalEvent() : null;
    if (terminal === null || terminal.type !== event) return events.on(event, listener);
    let subscribed = true;
    queueMicrotask(() => {
      if (!subscribed) return;
      try {
        listener(terminal as TaskEvents<R, S>[K]);
      } catch (error) {
        source.reportListenerError(error, event);
      }
    });
    return () => {
      subscribed = false;
    };
  }

  /** Adds a listener that runs at most once. */
  once<K extends keyof TaskEvents<R, S>>(event: K, listener: (payload: TaskEvents<R, S>[K]) => void): Unsubscribe {
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
  off<K extends keyof TaskEvents<R, S>>(event: K, listener: (payload: TaskEvents<R, S>[K]) => void): void {
    this.#source.events?.off(event, listener);
  }

  /**
   * Resolves with the `complete` payload; rejects with the task's error (`TaskTimeoutError`,
   * `TaskCancelledError`, `NoCapableAgentError`, or what the handler threw).
   */
  result(): Promise<CompleteEvent<R>> {
    return (this.#result ??= new Promise<CompleteEvent<R>>((resolve, reject) => {
      const offs: Unsubscribe[] = [];
      const settle = (event: TaskEvents<R, S>['complete' | 'error' | 'cancelled']) => {
        for (const off of offs) off();
        if (event.type === 'complete') resolve(event);
        else if (event.type === 'error') reject(event.error);
        else reject(this.#source.outcome as Error);
      };
      offs.push(this.on('complete', settle), this.on('error', settle), this.on('cancelled', settle));
    }));
  }

  /** Yields every event of the task in order, ending after its final event. */
  async *[Symbol.asyncIterator](): AsyncGenerator<TaskEvent<R, S>, void, undefined> {
    const buffer: TaskEvent<R, S>[] = [];
    let wake: (() => void) | null = null;
    const push = (event: TaskEvent<R, S>) => {
      buffer.push(event);
      if (wake !== null) {
        wake();
        wake = null;
      }
    };
    const offs = ALL_EVENTS.map((name) => this.on(name, push));
    try {
      for (;;) {
        while (buffer.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const event = buffer.shift()!;
        yield event;
        if (TERMINAL.has(event.type)) return;
      }
    } finally {
      for (const off of offs) off();
    }
  }
}
