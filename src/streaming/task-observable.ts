import type { TaskStatus } from '../enums.js';
import { TaskCancelledError } from '../errors.js';
import { parseSubscribeOptions, requireFunction } from '../orchestrator/arguments.js';
import { Emitter, type Unsubscribe } from '../util/emitter.js';
import type { CompleteEvent, StartEvent, SubscribeOptions, TaskEvent, TaskEvents } from '../types.js';
import type { ProgressStream } from './progress-stream.js';
import { Subscriber } from './subscriber.js';

// Node's util.inspect.custom, by its registered name: the published types then need no @types/node.
const INSPECT = Symbol.for('nodejs.util.inspect.custom');
const TERMINAL = new Set<PropertyKey>(['complete', 'error', 'cancelled']);
const PROGRESS = new Set<PropertyKey>(['delta', 'update', 'snapshot']);
const ALL_EVENTS = ['start', 'delta', 'update', 'snapshot', 'retry', 'preempted', 'complete', 'error', 'cancelled'] as const;

type TerminalEvent<R, S> = TaskEvents<R, S>['complete' | 'error' | 'cancelled'];

/**
 * The live view of one submitted task: subscribe to its events, await its result, or iterate
 * its events. Listeners of `complete`, `error` and `cancelled` added after the task ended still
 * receive that event, and a `delta` (or `update`) listener added after updates were streamed
 * first receives the latest snapshot and the updates after it (both on a microtask).
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
  /** The task's progress so far; null before its first update (or once released). */
  protected abstract stream: ProgressStream | null;
  /** The task's final event once it has ended, else null. */
  protected abstract terminalEvent(): TerminalEvent<R, S> | null;
  /** The `start` event of the running attempt, else null. */
  protected abstract startEvent(): StartEvent | null;
  /** `streaming.backpressureThreshold`. */
  protected abstract readonly bufferLimit: number;
  protected abstract reportConflated(dropped: number): void;
  protected abstract reportListenerError(error: unknown, event: PropertyKey): void;

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof TaskEvents<R, S>>(event: K, listener: (payload: TaskEvents<R, S>[K]) => void): Unsubscribe {
    requireFunction(listener, 'listener');
    const events = this.#emitter();
    const terminal = TERMINAL.has(event) ? this.terminalEvent() : null;
    if (terminal !== null) {
      if (terminal.type !== event) return noop;
      return this.#later([terminal as TaskEvents<R, S>[K]], listener, event);
    }
    // A late listener of the kind of update this task streams first gets the replay.
    if (this.stream !== null && (event === 'delta' ? this.stream.compression : event === 'update' && !this.stream.compression)) {
      const replay = this.stream.replay() as TaskEvents<R, S>[K][];
      if (replay.length > 0) return this.#replayThenLive(events, event, replay, listener);
    }
    return events.on(event, listener);
  }

  /** Adds a listener that runs at most once. */
  once<K extends keyof TaskEvents<R, S>>(event: K, listener: (payload: TaskEvents<R, S>[K]) => void): Unsubscribe {
    let done = false;
    const off = this.on(event, (payload) => {
      if (done) return;
      done = true;
      off();
      return listener(payload);
    });
    return off;
  }

  /** Removes a listener added with `on`. */
  off<K extends keyof TaskEvents<R, S>>(event: K, listener: (payload: TaskEvents<R, S>[K]) => void): void {
    const unsubscribe = replaying.get(this)?.get(listener);
    if (unsubscribe !== undefined) unsubscribe();
    else this.events?.off(event, listener);
  }

  /**
   * Receives every event of the task in order (start, progress, retries, then the final event),
   * beginning with a replay: the running attempt's `start`, then the latest snapshot and the
   * updates after it (see `SubscribeOptions.fromSequence`). An async listener is awaited before
   * the next event; while it is busy, events wait in a buffer of `bufferSize` updates, and past
   * that the waiting updates are replaced by one fresh snapshot (`backpressure:conflated`).
   * Delivery starts on a microtask. Returns a function that ends the subscription.
   */
  subscribe(listener: (event: TaskEvent<R, S>) => void | PromiseLike<unknown>, options?: SubscribeOptions): Unsubscribe {
    requireFunction(listener, 'listener');
    const subscriber = this.#subscriber(parseSubscribeOptions(options));
    queueMicrotask(() => subscriber.listen(listener));
    return () => subscriber.close();
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

  /** How `console.log` and `util.inspect` show the observable (the record behind it has engine internals). */
  [INSPECT](): string {
    return `TaskObservable { taskId: '${this.taskId}', state: '${this.state}' }`;
  }

  /**
   * Yields every event of the task as `subscribe` delivers them, at the consumer's pace (with
   * the same bound), ending after the final event.
   */
  [Symbol.asyncIterator](): AsyncIterator<TaskEvent<R, S>> {
    return this.#subscriber({});
  }

  #emitter(): Emitter<TaskEvents<R, S>> {
    return (this.events ??= new Emitter<TaskEvents<R, S>>((error, name) => this.reportListenerError(error, name)));
  }

  #subscriber(options: SubscribeOptions): Subscriber<TaskEvent<R, S>> {
    const subscriber = new Subscriber<TaskEvent<R, S>>({
      limit: options.bufferSize ?? this.bufferLimit,
      droppable: (event) => PROGRESS.has(event.type),
      conflate: (dropped) => {
        this.reportConflated(dropped.length);
        return this.stream!.takeSnapshot(Date.now()) as TaskEvent<R, S>;
      },
      isLast: (event) => TERMINAL.has(event.type),
      onListenerError: (error) => this.reportListenerError(error, 'subscribe'),
    });
    const replay: TaskEvent<R, S>[] = [];
    const start = this.startEvent();
    if (start !== null) replay.push(start);
    for (const event of this.stream?.replay(options.fromSequence) ?? []) replay.push(event as TaskEvent<R, S>);
    const terminal = this.terminalEvent();
    if (terminal !== null) replay.push(terminal);
    subscriber.preload(replay);
    if (terminal !== null) return subscriber;
    const push = (event: TaskEvent<R, S>) => subscriber.push(event);
    const events = this.#emitter();
    const offs = ALL_EVENTS.map((name) => events.on(name, push));
    subscriber.onClose(() => {
      for (const off of offs) off();
    });
    return subscriber;
  }

  /** Delivers `payloads` on a microtask, unless unsubscribed first. */
  #later<T>(payloads: T[], listener: (payload: T) => void, event: PropertyKey): Unsubscribe {
    const subscription = { active: true };
    queueMicrotask(() => this.#deliver(payloads, listener, event, subscription));
    return () => {
      subscription.active = false;
    };
  }

  /** A late progress listener: the replay on a microtask, with live events held back until it ran. */
  #replayThenLive<K extends keyof TaskEvents<R, S>>(
    events: Emitter<TaskEvents<R, S>>,
    event: K,
    replay: TaskEvents<R, S>[K][],
    listener: (payload: TaskEvents<R, S>[K]) => void,
  ): Unsubscribe {
    let pending: TaskEvents<R, S>[K][] | null = replay;
    const live = (payload: TaskEvents<R, S>[K]) => {
      if (pending !== null) pending.push(payload);
      else return listener(payload);
    };
    const off = events.on(event, live);
    const subscription = { active: true };
    queueMicrotask(() => {
      const held = pending!;
      pending = null;
      this.#deliver(held, listener, event, subscription);
    });
    let byListener = replaying.get(this);
    if (byListener === undefined) replaying.set(this, (byListener = new Map()));
    const unsubscribe = () => {
      subscription.active = false;
      off();
      byListener.delete(listener);
    };
    byListener.set(listener, unsubscribe);
    return unsubscribe;
  }

  #deliver<T>(payloads: T[], listener: (payload: T) => void, event: PropertyKey, subscription: { active: boolean }): void {
    for (const payload of payloads) {
      if (!subscription.active) return;
      try {
        const returned: unknown = listener(payload);
        // An async listener that rejects is reported like one that throws, never left unhandled.
        if (returned instanceof Promise) returned.catch((error: unknown) => this.reportListenerError(error, event));
      } catch (error) {
        this.reportListenerError(error, event);
      }
    }
  }
}

function noop(): void {}

/**
 * Late progress listeners are wrapped (to hold live events behind their replay); this finds the
 * wrapper for `off(event, listener)`. Kept outside the observable, so queued tasks carry no field for it.
 */
const replaying = new WeakMap<object, Map<unknown, Unsubscribe>>();
