import type { PgClient, PgModule } from './pg-types.js';

const RECONNECT_FIRST_MS = 50;
const RECONNECT_MAX_MS = 5_000;

export interface ListenerOptions {
  connectionString: string;
  applicationName: string;
  channels: readonly string[];
  onNotification(channel: string, payload: string): void;
  /** Listening (again) after a connection was lost: notifications may have been missed meanwhile. */
  onReconnected(): void;
  onError(error: Error): void;
}

/**
 * One dedicated connection that LISTENs on the node's channels (a pooled connection cannot: it is
 * handed to other queries between statements). When the connection is lost (the server restarts,
 * `pg_terminate_backend`, a network cut) it reconnects with a growing delay and listens again;
 * the owner is told, so it can catch up on what it missed.
 */
export class PgListener {
  #client: PgClient | null = null;
  #closed = false;
  #retryMs = RECONNECT_FIRST_MS;
  #timer: NodeJS.Timeout | null = null;
  #connecting: Promise<void> | null = null;

  constructor(
    readonly pg: PgModule,
    readonly options: ListenerOptions,
  ) {}

  /** Connects and listens. @throws the connection error of the first attempt */
  async open(): Promise<void> {
    await this.#connect();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#connecting?.catch(() => {});
    const client = this.#client;
    this.#client = null;
    if (client !== null) {
      client.removeAllListeners();
      // An error listener stays: a late socket error must not become an uncaught exception.
      client.on('error', () => {});
      await client.end().catch(() => {});
    }
  }

  #connect(): Promise<void> {
    const attempt = (async () => {
      const client = new this.pg.Client({ connectionString: this.options.connectionString, application_name: this.options.applicationName, keepAlive: true });
      client.on('error', (error) => this.#lost(client, error));
      client.on('end', () => this.#lost(client, new Error('the LISTEN connection ended')));
      await client.connect();
      for (const channel of this.options.channels) await client.query(`listen "${channel}"`);
      client.on('notification', (message) => {
        if (message.payload !== undefined) this.options.onNotification(message.channel, message.payload);
      });
      if (this.#closed) {
        client.removeAllListeners();
        client.on('error', () => {});
        await client.end().catch(() => {});
        return;
      }
      this.#client = client;
      this.#retryMs = RECONNECT_FIRST_MS;
    })();
    this.#connecting = attempt.finally(() => (this.#connecting = null));
    return attempt;
  }

  #lost(client: PgClient, error: Error): void {
    if (this.#closed || (this.#client !== null && this.#client !== client)) return;
    if (this.#client === client) {
      this.#client = null;
      client.removeAllListeners();
      client.on('error', () => {});
      void client.end().catch(() => {});
      this.options.onError(error);
    }
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#timer !== null || this.#connecting !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#connect().then(
        () => {
          if (!this.#closed) this.options.onReconnected();
        },
        (error: unknown) => {
          this.options.onError(error instanceof Error ? error : new Error(String(error)));
          this.#retryMs = Math.min(RECONNECT_MAX_MS, this.#retryMs * 2);
          this.#scheduleReconnect();
        },
      );
    }, this.#retryMs);
    this.#timer.unref();
  }
}
