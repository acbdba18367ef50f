import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { StoreError } from '../errors.js';
import { Batcher } from './batcher.js';
import { PgListener } from './pg-listener.js';
import { checkSchemaName, migrate } from './pg-schema.js';
import { statements, type Statements } from './pg-sql.js';
import type { PgModule, PgPool } from './pg-types.js';

// Our statements are short index lookups. JIT compiled each claim (its cost estimate passes
// jit_above_cost) for ~600 ms here; and right after a burst of inserts, before autovacuum has
// analyzed the table, the planner took the queue for a handful of rows and chose a bitmap scan
// and a sort of the whole queue (~150 ms per claim of 100 at 20,000 queued) over reading the
// queue index in order (~2 ms).
const SESSION_OPTIONS = '-c jit=off -c enable_bitmapscan=off';
/** How long an audit entry or a message to another node waits for a batched write to ride with (ms). */
const RIDE_ALONG_MS = 5;

/** Options of the PostgreSQL store, with defaults filled. */
export interface PgBackendOptions {
  connectionString: string;
  schema: string;
  /** How long a claim holds without a heartbeat (ms). */
  leaseMs: number;
  /** Slow fallback poll for work, covering missed notifications (ms). */
  pollIntervalMs: number;
  /** Most tasks claimed ahead of free slots. */
  prefetch: number;
  /** Most rows claimed or written in one statement. */
  maxBatch: number;
  poolSize: number;
  agingMs: number;
  /** Whether the trail is written; entries kept: the newest `maxEvents`, none older than `retainMs`. */
  audit: { enabled: boolean; maxEvents: number; retainMs: number };
}

/** An audit entry waiting to ride along with the next write. */
export interface PendingAudit {
  ts: number;
  type: string;
  task: string | null;
  agent: string | null;
  attempt: number | null;
  details: Record<string, unknown> | null;
}

/** A live node as the registry shows it. */
export interface ClusterNode {
  nodeId: string;
  host: string;
  pid: number;
  heartbeatAt: number;
  running: number;
  agents: { agentId: string; capabilities: string[]; maxConcurrent: number }[];
}

/**
 * What the PostgreSQL store and work source share: the pool, the statements of the schema, the
 * node's identity and channels, the LISTEN connection, and the audit entries waiting to ride
 * along with the next batched write.
 */
export class PgBackend {
  readonly sql: Statements;
  readonly schema: string;
  /** NOTIFY channel on which every node hears that work was queued (payload: the best level). */
  readonly workChannel: string;
  readonly pendingAudit: PendingAudit[] = [];
  /** Writes audit entries no other statement carried within a turn. */
  readonly auditWriter: Batcher<PendingAudit[], void>;
  #pool: PgPool | null = null;
  #closed = false;
  /** An open() in flight (settled, never rejecting): close() waits for it to give back what it opened. */
  #opening: Promise<void> | null = null;
  #listener: PgListener | null = null;
  #pg: PgModule | null = null;
  #channelPrefix: string;
  #notificationHandler: ((channel: string, payload: string) => void) | null = null;
  #reconnectHandler: (() => void) | null = null;

  constructor(
    readonly options: PgBackendOptions,
    readonly nodeId: string,
    readonly onError: (error: StoreError) => void,
  ) {
    this.schema = checkSchemaName(options.schema);
    this.sql = statements(this.schema);
    // Channel names are identifiers (at most 63 bytes): a short hash stands for the schema.
    this.#channelPrefix = `po_${createHash('sha1').update(this.schema).digest('hex').slice(0, 10)}`;
    this.workChannel = `${this.#channelPrefix}_work`;
    this.auditWriter = new Batcher<PendingAudit[], void>(async (batches) => {
      const entries = batches.flat();
      if (entries.length > 0) await this.pool.query(this.sql.appendAudit(JSON.stringify(entries), this.nodeId));
      return batches.map(() => undefined);
    }, 64);
  }

  /** The channel of one node: events of tasks it watches, and requests for tasks it runs. */
  nodeChannel(nodeId: string): string {
    return `${this.#channelPrefix}_n_${nodeId}`;
  }

  get where(): string {
    return `postgres schema "${this.schema}"`;
  }

  get pool(): PgPool {
    if (this.#pool === null) throw this.notOpen();
    return this.#pool;
  }

  get isOpen(): boolean {
    return this.#pool !== null;
  }

  /** True once close() was called: the backend does not open again. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Why the backend cannot be used now: not opened yet, or closed. */
  notOpen(): StoreError {
    return new StoreError(this.where, this.#closed ? 'is closed' : 'is not open yet (call start() first)');
  }

  /** Who hears notifications (set by the work source before open). */
  onNotification(handler: (channel: string, payload: string) => void, onReconnected: () => void): void {
    this.#notificationHandler = handler;
    this.#reconnectHandler = onReconnected;
  }

  /** Loads `pg`, connects, migrates and listens. @throws StoreError naming the schema */
  open(agents: string): Promise<void> {
    const opening = this.#open(agents);
    this.#opening = opening.then(
      () => {},
      () => {},
    );
    return opening;
  }

  async #open(agents: string): Promise<void> {
    if (this.#closed) throw this.notOpen();
    let pg: PgModule;
    try {
      pg = ((await import('pg')) as unknown as { default: PgModule }).default;
    } catch (cause) {
      throw new StoreError(this.where, 'needs the optional dependency pg (npm install pg)', { cause });
    }
    this.#pg = pg;
    const pool = new pg.Pool({
      connectionString: this.options.connectionString,
      max: this.options.poolSize,
      idleTimeoutMillis: 10_000,
      connectionTimeoutMillis: 10_000,
      application_name: `parallel-orchestrator ${this.nodeId}`,
      allowExitOnIdle: true,
      keepAlive: true,
      options: SESSION_OPTIONS,
    });
    // A pooled connection that dies while idle: the pool drops it and makes a new one on demand.
    pool.on('error', (error) => this.onError(new StoreError(this.where, `a pooled connection failed: ${error.message}`, { cause: error })));
    try {
      await migrate(pool, this.schema);
      // close() came while this migrated: no registry row, no listener.
      if (this.#closed) throw this.notOpen();
      await pool.query(this.sql.registerNode(this.nodeId, hostname(), process.pid, agents));
      const listener = new PgListener(pg, {
        connectionString: this.options.connectionString,
        applicationName: `parallel-orchestrator ${this.nodeId} listener`,
        channels: [this.workChannel, this.nodeChannel(this.nodeId)],
        onNotification: (channel, payload) => this.#notificationHandler?.(channel, payload),
        onReconnected: () => this.#reconnectHandler?.(),
        onError: (error) => this.onError(new StoreError(this.where, `the LISTEN connection failed: ${error.message}; reconnecting`, { cause: error })),
      });
      await listener.open();
      // close() came while this opened: what was opened is released, and nothing stays registered.
      if (this.#closed) {
        await listener.close();
        await pool.query(this.sql.leaveNode(this.nodeId)).catch(() => {});
        throw this.notOpen();
      }
      this.#listener = listener;
    } catch (cause) {
      await pool.end().catch(() => {});
      throw cause instanceof StoreError ? cause : new StoreError(this.where, `cannot be opened: ${(cause as Error).message}`, { cause });
    }
    this.#pool = pool;
  }

  /**
   * Appends an audit entry: it rides with the next batched outcome of this node, or goes on its
   * own when none comes within a few milliseconds (a statement and a commit saved per batch).
   */
  appendAudit(entry: PendingAudit): void {
    this.pendingAudit.push(entry);
    if (this.pendingAudit.length === 1) this.rideAlong(() => this.pendingAudit.length > 0, () => this.carryAlone());
  }

  /** True while a batched write that carries audit entries and messages is in flight or due (set by the work source). */
  carrierBusy: () => boolean = () => false;

  /**
   * Writes the pending audit entries and node messages in one statement, so that a node told of
   * an outcome finds its audit entry committed (set by the work source, which holds the messages).
   */
  carryAlone: () => void = () => void this.auditWriter.push(this.takeAudit()).catch((error: unknown) => this.#auditFailed(error));

  /**
   * Gives what is pending (`pending()`) the chance to ride with a batched write; writes it alone
   * (`alone()`) once none is in flight or due after RIDE_ALONG_MS.
   */
  rideAlong(pending: () => boolean, alone: () => void): void {
    setTimeout(() => {
      if (!pending() || !this.isOpen) return;
      if (this.carrierBusy()) this.rideAlong(pending, alone);
      else alone();
    }, RIDE_ALONG_MS).unref();
  }

  /** The pending audit entries, for a statement that carries them. */
  takeAudit(): PendingAudit[] {
    return this.pendingAudit.splice(0);
  }

  #auditFailed(error: unknown): void {
    this.onError(new StoreError(this.where, `audit entries could not be written: ${(error as Error).message}`, { cause: error }));
  }

  /** Stops listening, writes what is pending, leaves the registry and closes the pool. */
  async close(): Promise<void> {
    this.#closed = true;
    // An open() in flight gives back its pool and listener itself: closed means nothing is left.
    await this.#opening;
    const pool = this.#pool;
    await this.#listener?.close();
    this.#listener = null;
    if (pool === null) return;
    if (this.pendingAudit.length > 0) await this.auditWriter.push(this.takeAudit()).catch((error: unknown) => this.#auditFailed(error));
    await this.auditWriter.drain();
    await pool.query(this.sql.leaveNode(this.nodeId)).catch(() => {});
    this.#pool = null;
    await pool.end().catch(() => {});
  }

  get pg(): PgModule | null {
    return this.#pg;
  }
}
