/**
 * What this library uses of the `pg` driver, typed structurally: `pg` is an optional peer
 * dependency, loaded only when a PostgreSQL store is opened, and users of the other stores need
 * neither it nor its types.
 */

export interface PgQueryConfig {
  text: string;
  values?: unknown[];
  /** A name makes the driver prepare the statement once per connection. */
  name?: string;
}

export interface PgResult<R> {
  rows: R[];
  rowCount: number | null;
}

export interface PgQueryable {
  query<R = Record<string, unknown>>(config: PgQueryConfig): Promise<PgResult<R>>;
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<PgResult<R>>;
}

export interface PgPoolClient extends PgQueryable {
  release(error?: Error | boolean): void;
}

export interface PgPool extends PgQueryable {
  connect(): Promise<PgPoolClient>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): this;
  readonly totalCount: number;
}

export interface PgNotification {
  channel: string;
  payload?: string | undefined;
}

export interface PgClient extends PgQueryable {
  connect(): Promise<void>;
  end(): Promise<void>;
  on(event: 'notification', listener: (message: PgNotification) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: 'end', listener: () => void): this;
  removeAllListeners(): this;
}

export interface PgConnectionOptions {
  connectionString: string;
  max?: number;
  /** ms a connection may stay idle in the pool. */
  idleTimeoutMillis?: number;
  connectionTimeoutMillis?: number;
  application_name?: string;
  /** Keeps the pool's idle timer from holding the process. */
  allowExitOnIdle?: boolean;
  keepAlive?: boolean;
  /** Server settings for the session, e.g. `-c jit=off`. */
  options?: string;
}

/** The parts of the `pg` module we construct. */
export interface PgModule {
  Pool: new (options: PgConnectionOptions) => PgPool;
  Client: new (options: PgConnectionOptions) => PgClient;
}
