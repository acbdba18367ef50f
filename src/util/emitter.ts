/** Removes the listener it was returned for. Calling it twice is harmless. */
export type Unsubscribe = () => void;

// A listener may be async: what it returns is checked for a rejection, never awaited.
type Listener<T> = (payload: T) => unknown;

/**
 * A small typed event emitter. Listener arrays are copied on write, so emitting never
 * allocates, and a throwing listener is reported through `onListenerError` instead of
 * breaking the engine that emitted. Node's EventEmitter was not used because it throws
 * on an unheard 'error' event and its typings do not carry a payload map.
 */
export class Emitter<Events extends object> {
  #listeners: Map<keyof Events, Listener<never>[]> | null = null;
  readonly #onListenerError: (error: unknown, event: PropertyKey) => void;

  constructor(onListenerError: (error: unknown, event: PropertyKey) => void) {
    this.#onListenerError = onListenerError;
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): Unsubscribe {
    const map = (this.#listeners ??= new Map());
    const current = map.get(event);
    map.set(event, current ? [...current, listener as Listener<never>] : [listener as Listener<never>]);
    return () => this.off(event, listener);
  }

  /** Adds a listener that runs once. */
  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): Unsubscribe {
    const off = this.on(event, (payload) => {
      off();
      return listener(payload);
    });
    return off;
  }

  /** Removes a listener added with `on`. */
  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    const current = this.#listeners?.get(event);
    if (!current) return;
    const index = current.indexOf(listener as Listener<never>);
    if (index < 0) return;
    if (current.length === 1) this.#listeners!.delete(event);
    else this.#listeners!.set(event, current.filter((_, i) => i !== index));
  }

  /** True when at least one listener is registered for `event`; lets callers skip building payloads. */
  has(event: keyof Events): boolean {
    return this.#listeners !== null && this.#listeners.has(event);
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const current = this.#listeners?.get(event);
    if (!current) return;
    for (const listener of current) {
      try {
        const returned = (listener as Listener<Events[K]>)(payload);
        // An async listener that rejects is reported like one that throws, never left unhandled.
        if (returned instanceof Promise) returned.catch((error: unknown) => this.#onListenerError(error, event));
      } catch (error) {
        this.#onListenerError(error, event);
      }
    }
  }

  removeAll(): void {
    this.#listeners = null;
  }
}
