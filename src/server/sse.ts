import type { IncomingMessage, ServerResponse } from 'node:http';

/** Settings of one event stream. */
export interface EventStreamSettings {
  /** ms between keep-alive comments (they also reveal a dead connection). */
  keepAliveInterval: number;
  /** A client that has not read for this long (the socket stays full) is disconnected, ms. */
  stallTimeout: number;
}

/**
 * One Server-Sent Events response: writes `id:` (when given), `event:` and `data:` per event,
 * a keep-alive comment every `keepAliveInterval`, and stops when the client goes away.
 *
 * Backpressure: `send()` resolves once the socket took the event. When the client does not read,
 * the socket's buffer fills and `send()` waits for it to drain, so the producer (an
 * `orchestrator.events()` consumer or a task subscription, both bounded and conflating) stops
 * pulling and memory stays bounded. A client that does not read for `stallTimeout` is cut off.
 */
export class EventStream {
  readonly #res: ServerResponse;
  readonly #controller = new AbortController();
  readonly #keepAlive: NodeJS.Timeout;
  #waitingForDrain = false;

  constructor(req: IncomingMessage, res: ServerResponse, readonly settings: EventStreamSettings) {
    this.#res = res;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Proxies such as nginx must not buffer the stream.
      'x-accel-buffering': 'no',
    });
    req.socket.setNoDelay(true);
    // The client reconnects after 2 s when the connection drops (EventSource's `retry:`).
    res.write('retry: 2000\n: connected\n\n');
    // The response closes when the client goes away (or once ended): the stream stops then.
    res.once('close', () => this.close());
    this.#keepAlive = setInterval(() => {
      if (!this.#waitingForDrain) this.#write(': keep-alive\n\n');
    }, settings.keepAliveInterval);
    this.#keepAlive.unref();
  }

  /** Aborted once the stream is closed (by the client, `close()`, or a stalled socket). */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** True while an event waits for the socket to drain (the client reads slowly). */
  get busy(): boolean {
    return this.#waitingForDrain;
  }

  get closed(): boolean {
    return this.#controller.signal.aborted;
  }

  /**
   * Writes one event; resolves true once the socket took it, false when the stream closed.
   * `data` must be one line of JSON (JSON.stringify never emits a raw newline).
   */
  async send(event: string, data: string, id?: string): Promise<boolean> {
    if (this.closed) return false;
    const chunk = `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${data}\n\n`;
    if (this.#write(chunk)) return true;
    return this.#drained();
  }

  /** Ends the response (the client sees the stream end) and releases everything. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.#controller.abort();
    clearInterval(this.#keepAlive);
    if (!this.#res.writableEnded) this.#res.end();
  }

  #write(chunk: string): boolean {
    if (this.closed || this.#res.writableEnded) return false;
    return this.#res.write(chunk);
  }

  #drained(): Promise<boolean> {
    this.#waitingForDrain = true;
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.#res.off('drain', onDrain);
        this.signal.removeEventListener('abort', onAbort);
        this.#waitingForDrain = false;
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onAbort = () => done(false);
      const timer = setTimeout(() => {
        // The client stopped reading: free the socket rather than hold it (and its buffer) forever.
        done(false);
        this.#res.destroy();
        this.close();
      }, this.settings.stallTimeout);
      timer.unref();
      this.#res.once('drain', onDrain);
      this.signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
