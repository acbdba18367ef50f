import type { EventStreamOptions, OrchestratorEvents, OrchestratorStreamItem } from '../types.js';
import type { Emitter } from '../util/emitter.js';
import { Subscriber } from './subscriber.js';

// A record over every key makes the compiler flag an event added to OrchestratorEvents but not streamed.
const STREAMED: Record<keyof OrchestratorEvents, true> = {
  'orchestrator:started': true,
  'orchestrator:shutdown': true,
  'task:submitted': true,
  'task:started': true,
  'task:progress': true,
  'task:retry': true,
  'task:preempted': true,
  'task:completed': true,
  'task:failed': true,
  'task:cancelled': true,
  'task:dead-letter': true,
  'task:claim-lost': true,
  'agent:registered': true,
  'agent:unregistered': true,
  'agent:circuit-state': true,
  'worker:stuck': true,
  'worker:failed': true,
  'worker:replaced': true,
  'backpressure:conflated': true,
  'store:error': true,
  'listener:error': true,
};

/**
 * The orchestrator-wide event stream behind `orchestrator.events()`: every orchestrator event
 * with a global sequence, the last `capacity` of them held for replay, fanned out to consumers
 * that each have a bounded buffer (a consumer that falls behind gets a `stream:gap` in place of
 * what it missed). It starts listening when first asked for, so an orchestrator nobody watches
 * does not build event payloads it would throw away.
 */
export class EventLog {
  #sequence = 0;
  readonly #history: OrchestratorStreamItem[] = [];
  #historyStart = 0;
  readonly #consumers = new Set<Subscriber<OrchestratorStreamItem>>();
  #closed = false;

  constructor(
    emitter: Emitter<OrchestratorEvents>,
    readonly capacity: number,
    readonly bufferLimit: number,
    readonly onListenerError: (error: unknown) => void,
    /** The orchestrator already shut down: consumers get what history holds, then end. */
    stopped: boolean,
  ) {
    this.#closed = stopped;
    for (const name of Object.keys(STREAMED) as (keyof OrchestratorEvents)[]) {
      emitter.on(name, (data) => this.#append(name, data));
    }
  }

  get sequence(): number {
    return this.#sequence;
  }

  stream(options: EventStreamOptions): AsyncIterableIterator<OrchestratorStreamItem> {
    const consumer = new Subscriber<OrchestratorStreamItem>({
      limit: this.bufferLimit,
      droppable: (item) => item.event !== 'orchestrator:shutdown',
      conflate: (dropped) => {
        const first = dropped[0]!;
        const count = dropped.reduce((sum, item) => sum + (item.event === 'stream:gap' ? item.data.dropped : 1), 0);
        return gap(first.event === 'stream:gap' ? first.data.from : first.sequence, dropped[dropped.length - 1]!.sequence, count);
      },
      isLast: (item) => item.event === 'orchestrator:shutdown',
      onListenerError: this.onListenerError,
    });
    if (options.fromSequence !== undefined) this.#replay(consumer, options.fromSequence);
    if (this.#closed) {
      consumer.end();
      return consumer;
    }
    const signal = options.signal;
    if (signal?.aborted) {
      consumer.close();
      return consumer;
    }
    this.#consumers.add(consumer);
    const onAbort = () => consumer.close();
    signal?.addEventListener('abort', onAbort, { once: true });
    consumer.onClose(() => {
      this.#consumers.delete(consumer);
      signal?.removeEventListener('abort', onAbort);
    });
    return consumer;
  }

  #replay(consumer: Subscriber<OrchestratorStreamItem>, fromSequence: number): void {
    const from = Math.max(1, fromSequence);
    const oldestHeld = this.#history[this.#historyStart]?.sequence ?? this.#sequence + 1;
    const replay: OrchestratorStreamItem[] = [];
    if (from < oldestHeld) replay.push(gap(from, oldestHeld - 1, oldestHeld - from));
    for (let i = this.#historyStart; i < this.#history.length; i++) {
      const item = this.#history[i]!;
      if (item.sequence >= from) replay.push(item);
    }
    consumer.preload(replay);
  }

  #append<K extends keyof OrchestratorEvents>(event: K, data: OrchestratorEvents[K]): void {
    const item = { sequence: ++this.#sequence, timestamp: Date.now(), event, data } as OrchestratorStreamItem;
    if (this.capacity > 0) {
      this.#history.push(item);
      if (this.#history.length - this.#historyStart > this.capacity) this.#history[this.#historyStart++] = undefined as never;
      if (this.#historyStart > 1024 && this.#historyStart * 2 > this.#history.length) {
        this.#history.splice(0, this.#historyStart);
        this.#historyStart = 0;
      }
    }
    for (const consumer of this.#consumers) consumer.push(item);
    if (event === 'orchestrator:shutdown') this.#closed = true;
  }
}

function gap(from: number, to: number, dropped: number): OrchestratorStreamItem {
  return { sequence: to, timestamp: Date.now(), event: 'stream:gap', data: { from, to, dropped } };
}
