import { inspect } from 'node:util';
import type { TaskStatus } from '../enums.js';
import { TaskCancelledError } from '../errors.js';
import { Emitter, type Unsubscribe } from '../util/emitter.js';
import type { CompleteEvent, TaskEvent, TaskEvents } from '../types.js';

const TERMINAL = new Set<PropertyKey>(['complete', 'error', 'cancelled']);
const ALL_EVENTS = ['start', 'delta', 'retry', 'complete', 'error', 'cancelled'] as const;

type TerminalEvent<R, S> = TaskEvents<R, S>['complete' | 'error' | 'cancelled'];

/**
 * The live view of one submitted task: subscribe to its events, await its result, or iterate
 * its events. Listeners of `complete`, `error` and `cancelled` added after the task ended still
 * receive that event (on a microtask).
 *
 * The engine's record of the task extends this class, so a queued task is a single object:
 * with hundreds of thousands queued, a second object per task would cost memory and GC time.
 * The engine-facing members are `protected`.
 */
export abstract class TaskObservable<R = unknown, S = unknown> implements AsyncIterable<TaskEvent<R, S>> {
  /** The task's id. */
  get taskId(): string {
    return this.id;
  }

  /** The task's status now. */
  get state(): TaskStatus {
    return this.status;
  }

  protected abstract readonly id: string;
  protected abstract readonly status: TaskStatus;
  /** Created on first subscription; the engine emits only when it exists. */
  protected abstract events: Emitter<TaskEvents<R, S>> | null;
  /** The task's final event once it has ended, else null. */
  protected abstract terminalEvent(): TerminalEvent<R, S> | null;
  protected abstract reportListenerError(error: unknown, event: PropertyKey): void;

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof TaskEvents<R, S>>(event: K, listener: (payload: TaskEvents<R, S>[K]) => void): Unsubscribe {
    const events = (this.events ??= new Emitter<TaskEvents<R, S>>((error, name) => this.reportListenerError(error, name)));
    const terminal = TERMINAL.has(event) ? this.terminalEvent() : null;
    if (terminal === null || terminal.type !== event) return events.on(event, listener);
    let subscribed = true;
    queueMicrotask(() => {
      if (!subscribed) return;
      try {
        listener(terminal as TaskEvents<R, S>[K]);
      } catch (error) {
        this.reportListenerError(error, event);
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
    this.events?.off(event, listener);
  }

  /**
   * Resolves with the `complete` payload; rejects with the task's error (`TaskTimeoutError`,
   * `TaskCancelledError`, `NoCapableAgentError`, or what the handler threw).
   */
  result(): Promise<CompleteEvent<R>> {
    return new Promise<CompleteEvent<R>>((resolve, reject) => {
      const offs: Unsubscribe[] = [];
      const settle = (event: TerminalEvent<R, S>) => {
        for (const off of offs) off();
        if (event.type === 'complete') resolve(event);
        else if (event.type === 'error') reject(event.error);
        else reject(new TaskCancelledError(event.taskId, event.reason));
      };
      offs.push(this.on('complete', settle), this.on('error', settle), this.on('cancelled', settle));
    });
  }

  [inspect.custom](): string {
    return `TaskObservable { taskId: '${this.taskId}', state: '${this.state}' }`;
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
