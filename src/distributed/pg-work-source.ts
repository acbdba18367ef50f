import { hostname } from 'node:os';
import { clock as auditClock } from '../orchestrator/journal.js';
import { DuplicateTaskError, StoreError } from '../errors.js';
import type { TaskRow } from '../persistence/store.js';
import type { Lane } from '../queue/lane.js';
import { Lanes, type SignatureIndex } from '../queue/lanes.js';
import { TaskQueue } from '../queue/task-queue.js';
import type { Demand, Settlement, SharedSourceHost, SourcedTask, WorkSource } from '../queue/work-source.js';
import type { CapabilitySignature } from '../routing/capability-signature.js';
import type { DeadLetter } from '../types.js';
import { deserializeError, serializeError, type SerializedError } from '../workers/protocol.js';
import { Batcher } from './batcher.js';
import type { ClusterNode, PgBackend } from './pg-backend.js';
import { decodeMessages, encodeMessages, type Message } from './pg-messages.js';

/** What the shared source needs of a task beyond the local source's needs. */
export interface SharedTask<T extends SharedTask<T>> extends SourcedTask<T> {
  readonly type: string;
  readonly attempt: number;
  readonly capabilities: readonly string[];
  readonly retry: { maxAttempts: number };
  toRow(): TaskRow;
  /** The submitter's tracing context to carry with the row, if any. */
  readonly traceContext: Record<string, string> | null;
  /** The worker of the last attempt, its run time, and the progress updates streamed. */
  readonly workerId: string | null;
  readonly duration: number;
  readonly updateCount: number;
  /** Set when the statement that records the task's outcome carries its terminal audit entries (the journal then writes none). */
  outcomeAudited: boolean;
}

/** A task this node holds a claim on: waiting in the local lanes or running. */
interface Held {
  token: string;
  /** Nodes to tell about the task's transitions (its submitter among them), this one excluded. */
  watchers: Set<string>;
  /** The heartbeat count when it was claimed: a heartbeat sent before the claim cannot extend it. */
  epoch: number;
}

/** An outcome or hand-back waiting for the settle statement. */
interface SettleItem {
  id: string;
  token: string;
  status: string;
  /** JSON text of the result, or null. */
  result: string | null;
  error: SerializedError | null;
  agent: string | null;
  delay: number | null;
  attempt: number | null;
  dead: { row: TaskRow; error: SerializedError; code: string; attempts: number } | null;
  /** The outcome's terminal audit entries: inserted only if the outcome is (fenced by the claim, as it is). */
  audit: OutcomeAudit[] | null;
  /** The attempt of the run that ended (outcomes only): after a lost connection, the row proves the write was ours. Not sent. */
  runAttempt: number | null;
  /** A hand-back of a claim this node knew nothing of (see `#heartbeat`). Not sent. */
  orphan: boolean;
}

export interface SharedSourceOptions {
  maxSize: number;
  signatures: SignatureIndex;
}

const STALE_FACTOR = 3;
/** A settle item that writes nothing: it makes a batch go, carrying the pending audit entries and messages. */
const CARRY_ONLY: SettleItem = { id: '', token: '0', status: 'queued', result: null, error: null, agent: null, delay: null, attempt: null, dead: null, audit: null, runAttempt: null, orphan: false };
const RETRY_FIRST_MS = 20;
const RETRY_MAX_MS = 2_000;
const AUDIT_MAINTENANCE_MS = 600_000;
const MAX_NOTIFY_BYTES = 7_900;
/** Prefetch covers about this much time of work at the node's recent completion rate (see `#target`). */
const PREFETCH_WINDOW_MS = 100;
/** After a claim came back short, dispatch alone does not claim again for this long (ms). */
const DRAINED_MS = 50;
/** Completions counted for that rate: those of the last second, at most this many. */
const RATE_SAMPLES = 4_096;

/**
 * The work source of a node in a cluster sharing one PostgreSQL schema.
 *
 * Submits go into the tasks table in batches (one statement per turn of the event loop while
 * one is in flight: group commit), and a NOTIFY on the work channel wakes the nodes. A node
 * claims the most urgent tasks its admitting agents can serve (`for update skip locked`), in
 * batches, into the same local lanes the single-process engine dispatches from; each claim
 * holds a lease that the node's heartbeat extends for all its claims in one statement. Outcomes
 * are written in batches fenced by the claim token: a node whose claim was taken over (its lease
 * expired) cannot overwrite the outcome of the node that took over; it learns so and says so.
 * Any live node re-queues the tasks of a dead node once their lease expires (`reap`), with the
 * attempt counted and the latest checkpoint kept, or dead-letters them on their last attempt.
 *
 * Prefetch: beyond the free slots, a node claims what it expects to start within about 100 ms
 * at its recent start rate, up to `prefetch`. A newly queued task more urgent than everything
 * prefetched is claimed at once (its level rides on the NOTIFY), so it waits at most for the
 * next free slot; prefetched tasks are handed back at shutdown.
 */
export class PostgresWorkSource<T extends SharedTask<T>> implements WorkSource<T> {
  readonly shared = true;
  readonly #backend: PgBackend;
  readonly #host: SharedSourceHost<T>;
  readonly #options: SharedSourceOptions;
  readonly #queue = new TaskQueue<T, CapabilitySignature>(Infinity, 0);
  readonly #lanes: Lanes<T>;
  readonly #held = new Map<T, Held>();
  /** Tasks of this node's own (submitted or observed here) that wait or run elsewhere, by id. */
  readonly #watched = new Map<string, T>();
  readonly #inserts: Batcher<T, boolean>;
  readonly #settles: Batcher<SettleItem, boolean>;
  readonly #outbox = new Map<string, Message[]>();
  readonly #awaitingVerdict = new Set<T>();
  /** Tasks cancelled while this node's claim of them was in flight, with the reason. */
  readonly #cancelOnArrival = new Map<string, string>();
  /** Tasks submitted here: they stay live here when they go back to the cluster. */
  readonly #mine = new WeakSet<T>();
  /** Each task's latest claim token here: an outcome refused under an older one is superseded. */
  readonly #lastToken = new WeakMap<T, string>();
  readonly #roomWaiters: (() => void)[] = [];
  readonly #drainWaiters: (() => void)[] = [];
  #timers: NodeJS.Timeout[] = [];
  #delayedTimer: NodeJS.Timeout | null = null;
  #enforcing = false;
  #open = false;
  #closing = false;
  #claiming = false;
  /** The claim in flight (it never rejects): close() waits for it, as the tasks it brings must be handed back. */
  #claimInFlight: Promise<void> = Promise.resolve();
  #claimAgain = false;
  /** When the last claim came back short (-1: it did not, or a wake-up came since). */
  #drainedAt = -1;
  #heartbeats = 0;
  #outboxScheduled = false;
  /** Times of recent completions here (a ring), for the prefetch size. */
  readonly #completions = new Float64Array(RATE_SAMPLES);
  #completionCount = 0;
  #cluster: { nodes: ClusterNode[]; queued: number; running: number; deadLetters: number } = { nodes: [], queued: 0, running: 0, deadLetters: 0 };

  constructor(backend: PgBackend, options: SharedSourceOptions, host: SharedSourceHost<T>) {
    this.#backend = backend;
    this.#options = options;
    this.#lanes = new Lanes(options.signatures);
    this.#host = host;
    const max = backend.options.maxBatch;
    this.#inserts = new Batcher((tasks) => this.#writeInserts(tasks), max);
    this.#settles = new Batcher((items) => this.#writeSettles(items), max);
    backend.carrierBusy = () => this.#settles.busy;
    backend.carryAlone = () => void this.#settles.push(CARRY_ONLY).catch((error: unknown) => this.#failed('writing audit entries and messages', error));
  }

  // Lifecycle

  /** Opens the backend, joins the cluster and starts the timers. */
  async open(): Promise<void> {
    this.#backend.onNotification(
      (channel, payload) => this.#onNotification(channel, payload),
      () => this.#onReconnected(),
    );
    await this.#backend.open(this.#host.agentsJson());
    this.#open = true;
    const lease = this.#backend.options.leaseMs;
    this.#every(Math.max(50, Math.floor(lease / 3)), () => this.#heartbeat());
    // Reapers of several nodes spread out; each takes rows with skip locked, so they never collide.
    this.#every(Math.max(50, Math.floor(lease / 2) + Math.floor(Math.random() * Math.max(1, lease / 10))), () => this.#reap());
    this.#every(this.#backend.options.pollIntervalMs, () => this.#poll());
    const agingMs = this.#backend.options.agingMs;
    if (agingMs > 0) this.#every(Math.max(10, Math.floor(agingMs / 4)), () => this.#age());
    this.#every(AUDIT_MAINTENANCE_MS, () => this.#maintainAudit());
    await this.#refreshCluster();
    this.#refill();
  }

  #every(ms: number, run: () => unknown): void {
    // One at a time: copies of a statement the server is slow to answer would take every pooled
    // connection, and two heartbeats deadlock on the node's task rows.
    let inFlight = false;
    const timer = setInterval(() => {
      if (!this.#open || inFlight) return;
      inFlight = true;
      void Promise.resolve()
        .then(run)
        .catch((error: unknown) => this.#failed('a periodic statement', error))
        .finally(() => (inFlight = false));
    }, ms);
    // The engine holds the process while tasks are live; these timers never do.
    timer.unref();
    this.#timers.push(timer);
  }

  /**
   * Stops claiming, hands back the tasks claimed but not started, and writes what is pending.
   * Tasks still running (a forced shutdown) keep their claim until its lease expires.
   */
  async close(): Promise<void> {
    this.#closing = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    if (this.#delayedTimer !== null) clearTimeout(this.#delayedTimer);
    this.#delayedTimer = null;
    for (const waiter of this.#roomWaiters.splice(0)) waiter();
    if (this.#open) {
      await this.#claimInFlight;
      for (const lane of this.#lanes.values()) for (const task of lane.tasks()) this.withdraw(task, true);
      if (this.#outbox.size > 0 || this.#backend.pendingAudit.length > 0) void this.#settles.push(CARRY_ONLY).catch(() => {});
      await Promise.allSettled([this.#inserts.drain(), this.#settles.drain()]);
    }
    this.#open = false;
  }

  drained(): Promise<void> {
    if (this.#held.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Commits every insert and outcome queued so far, and this node's agents in the registry. */
  async flush(): Promise<void> {
    await Promise.all([this.#inserts.drain(), this.#settles.drain(), this.#registryWrite]);
  }

  // Offers, claims, outcomes

  lane(key: string): Lane<T, CapabilitySignature> {
    return this.#lanes.get(key);
  }

  laneIdle(lane: Lane<T, CapabilitySignature>): void {
    this.#lanes.prune(lane);
  }

  offer(task: T, delayMs: number): void {
    const held = this.#held.get(task);
    if (held !== undefined) {
      // A task this node holds: again into the local lanes (a thread handed it back unstarted),
      // or back to the cluster with its retry delay.
      if (delayMs <= 0) this.#enqueue(task);
      else this.#handBack(task, held, delayMs, false);
      return;
    }
    if (this.#enforcing && !this.#servable(task)) {
      // The registry as last seen may be stale (a node registered agents since): ask it again first.
      this.#awaitingVerdict.add(task);
      void this.#refreshCluster().catch((error: unknown) => this.#failed('reading the node registry', error)).then(() => {
        if (!this.#awaitingVerdict.delete(task)) return;
        if (this.#servable(task)) this.#insert(task);
        else this.#host.unservable(task);
      });
      return;
    }
    this.#insert(task);
  }

  /** Resolves once the task's row is committed (at once when it is not waiting to be written). */
  async queued(task: T): Promise<void> {
    if (this.#awaitingVerdict.has(task) || this.#inserts.has(task)) await this.#inserts.drain();
  }

  /** This node's agents changed: the registry shows them at once (other nodes check capabilities against it). */
  agentsChanged(): void {
    if (!this.#open) return;
    const backend = this.#backend;
    this.#registryWrite = backend.pool
      .query(backend.sql.registerNode(backend.nodeId, hostname(), process.pid, this.#host.agentsJson()))
      .then(
        () => {},
        (error: unknown) => this.#failed('updating the node registry', error),
      );
    this.#refill();
  }

  /** The last update of this node's agents in the registry (flush() waits for it). */
  #registryWrite: Promise<void> = Promise.resolve();

  /** The one rule, cluster-wide: some agent of a live node has every capability the task needs, or it waits for one. */
  #servable(task: T): boolean {
    if (task.waitForAgent || task.lane.key.agents.length > 0) return true;
    const needed = task.capabilities;
    return this.#cluster.nodes.some((node) => node.agents.some((agent) => needed.every((capability) => agent.capabilities.includes(capability))));
  }

  #insert(task: T): void {
    this.#mine.add(task);
    this.#watched.set(task.id, task);
    this.#inserts.push(task).then(
      (inserted) => {
        if (!inserted && this.#watched.get(task.id) === task) {
          this.#watched.delete(task.id);
          this.#host.rejected(task, new DuplicateTaskError(task.id));
        }
        this.#wakeRoomWaiters();
      },
      (error: unknown) => {
        this.#watched.delete(task.id);
        this.#host.rejected(task, this.#storeError(`task ${task.id} could not be queued`, error));
        this.#wakeRoomWaiters();
      },
    );
  }

  async #writeInserts(tasks: T[]): Promise<boolean[]> {
    const inserted = new Set<string>();
    const batch = this.#insertBatch(tasks);
    await this.#retrying('queueing tasks', async (again) => {
      const { rows } = await this.#backend.pool.query<{ ids: string[] }>(this.#backend.sql.insertTasks(batch, this.#backend.nodeId, this.#backend.workChannel));
      for (const id of rows[0]?.ids ?? []) inserted.add(id);
      if (again) await this.#confirm(tasks.filter((task) => !inserted.has(task.id)), (_task, row) => row.submitter === this.#backend.nodeId, inserted);
    });
    return tasks.map((task) => inserted.has(task.id));
  }

  #insertBatch(tasks: T[]): string {
    const rows = tasks.map((task) => {
      const row = task.toRow();
      return {
        id: row.id,
        type: row.type,
        priority: row.priority,
        capabilities: row.capabilities,
        payload: row.payload ?? null,
        metadata: row.metadata,
        options: row.options,
        max_attempts: task.retry.maxAttempts,
        trace: task.traceContext,
      };
    });
    return JSON.stringify(rows);
  }

  #enqueue(task: T, front = false): void {
    task.level = task.priority;
    this.#queue.push(task, front);
    this.#host.wake();
  }

  waitingHeads(): Iterable<T> {
    return this.#queue.heads();
  }

  /** A preempted task stays this node's (its claim and lease are kept), ahead of its level. */
  returnToFront(task: T): void {
    this.#enqueue(task, true);
  }

  withdraw(task: T, keepInStore: boolean): boolean {
    if (this.#awaitingVerdict.size > 0 && this.#awaitingVerdict.delete(task)) {
      // Stopping before the registry answered: it was submitted, so it goes to the cluster anyway.
      if (keepInStore) this.#insert(task);
      return true;
    }
    // Stopping: it was submitted, so its pending insert stays and it goes to the cluster anyway (a
    // second insert would find the first's row and fail the task as a duplicate).
    if (keepInStore && this.#inserts.has(task)) return true;
    if (this.#inserts.remove((pending) => pending === task, false)) {
      this.#watched.delete(task.id);
      return true;
    }
    const held = this.#held.get(task);
    if (held !== undefined && task.inQueue) {
      this.#queue.remove(task);
      task.level = -1;
      // At shutdown, a task claimed but not started goes back to the cluster with its attempt not counted.
      if (keepInStore) this.#handBack(task, held, 0, true);
      return true;
    }
    if (keepInStore) {
      this.#watched.delete(task.id);
      return true;
    }
    return false;
  }

  claim(demand: Demand, room: number): T | null {
    const queue = this.#queue;
    const task = queue.size === 0 ? null : queue.take(demand);
    if (task !== null) task.level = -1;
    if (!this.#claiming && this.#open && !this.#closing && !this.#drainedRecently() && queue.size < this.#target(room)) this.#refill();
    return task;
  }

  /**
   * How many claimed tasks to keep here: the free slots, plus what this node completes in about
   * PREFETCH_WINDOW_MS at its recent completion rate. Fast tasks get large batches at once; slow
   * ones (few completions) are not claimed far ahead of a free slot, so other nodes get them.
   */
  #target(room: number): number {
    const count = Math.min(this.#completionCount, RATE_SAMPLES);
    let expected = 0;
    if (count > 0) {
      const now = performance.now();
      const newest = this.#completionCount - 1;
      let recent = 0;
      let oldest = now;
      for (let i = 0; i < count; i++) {
        const at = this.#completions[(newest - i) % RATE_SAMPLES]!;
        if (at < now - 1000) break;
        recent++;
        oldest = at;
      }
      // Over the time the recent completions took (at least 10 ms, so a burst does not read as infinite).
      expected = Math.ceil((recent * PREFETCH_WINDOW_MS) / Math.max(10, now - oldest));
    }
    return Math.max(1, Math.min(this.#backend.options.prefetch, room + expected));
  }

  /** A task finished here (its outcome is being written). */
  #completed(): void {
    this.#completions[this.#completionCount % RATE_SAMPLES] = performance.now();
    this.#completionCount++;
  }

  /**
   * True for a moment after a claim came back short: the table had no more for this node, so
   * taking a task from the local lanes does not claim again (a round trip and a commit for
   * nothing, holding back the claim a notification asks for) until something wakes it.
   */
  #drainedRecently(): boolean {
    return this.#drainedAt >= 0 && performance.now() - this.#drainedAt < DRAINED_MS;
  }

  /** Claims a batch if there is room for one; again at once while batches come back full. */
  #refill(level = Infinity): void {
    // Called by a wake-up (a notification, the poll, a timer) or with the table not drained.
    this.#drainedAt = -1;
    if (this.#claiming) {
      this.#claimAgain = true;
      return;
    }
    if (!this.#open || this.#closing) return;
    const sets = this.#host.capabilitySets();
    if (sets.length === 0) return;
    const free = this.#host.freeSlots();
    const target = this.#target(free);
    const size = this.#queue.size;
    // While the waiting tasks cover the free slots, no claim for less than a quarter of the target:
    // each claim is a round trip and a commit, and one in flight holds back the next.
    const room = size >= free && target - size < Math.max(1, target >> 2) ? 0 : Math.max(0, target - size);
    // A task more urgent than one this node holds (waiting or running) is claimed even with no room:
    // one is enough, and it waits here at most for the next free slot, or takes one by preemption.
    const limit = room > 0 ? Math.min(room, this.#backend.options.maxBatch) : level < this.#worstHeldLevel() ? 1 : 0;
    if (limit === 0) return;
    this.#claiming = true;
    this.#claimAgain = false;
    this.#claimInFlight = this.#claimBatch(sets, limit).then(
      (full) => {
        this.#claiming = false;
        if (!full) this.#drainedAt = performance.now();
        if (full || this.#claimAgain) this.#refill();
      },
      (error: unknown) => {
        this.#claiming = false;
        this.#failed('claiming tasks', error);
      },
    );
  }

  /** The least urgent priority among the tasks this node holds; -1 when it holds none. */
  #worstHeldLevel(): number {
    let worst = -1;
    for (const task of this.#held.keys()) if (task.priority > worst) worst = task.priority;
    return worst;
  }

  /** Claims up to `limit` tasks; resolves with true when the batch came back full (more may wait). */
  async #claimBatch(sets: readonly (readonly string[])[], limit: number): Promise<boolean> {
    const { rows } = await this.#backend.pool.query<ClaimRow>(this.#backend.sql.claim(this.#backend.nodeId, this.#backend.options.leaseMs, sets, limit));
    // Committed before any heartbeat sent from now on: those may check these claims.
    const epoch = this.#heartbeats;
    if (rows.length === 0) {
      this.#armDelayed();
      return false;
    }
    rows.sort((a, b) => a.seq - b.seq);
    const me = this.#backend.nodeId;
    for (const row of rows) {
      // Claimed again before a heartbeat saw that the claim of its run here was lost: that claim goes first.
      const stale = this.#host.live(row.id);
      if (stale !== undefined && this.#held.has(stale)) this.#lost(stale);
      const task = this.#host.adopt({
        id: row.id,
        type: row.type,
        priority: row.priority,
        capabilities: row.capabilities,
        payload: row.payload ?? undefined,
        metadata: row.metadata,
        options: row.options,
        attempt: row.attempt,
        checkpoint: row.has_checkpoint ? { state: row.checkpoint } : null,
        trace: row.trace,
      });
      const watchers = new Set(row.watchers);
      watchers.delete(me);
      this.#held.set(task, { token: row.token, watchers, epoch });
      this.#lastToken.set(task, row.token);
      this.#watched.delete(row.id);
      if (!this.#closing) this.#enqueue(task);
      else this.#handBack(task, this.#held.get(task)!, 0, true);
      const cancel = this.#cancelOnArrival.get(row.id);
      if (cancel !== undefined) {
        this.#cancelOnArrival.delete(row.id);
        this.#host.cancelRequested(row.id, cancel);
      }
    }
    return rows.length === limit;
  }

  settle(task: T, settlement: Settlement): boolean | Promise<boolean> {
    const held = this.#held.get(task);
    this.#watched.delete(task.id);
    if (held === undefined) {
      // Never claimed here: refused before it was queued, or cancelled in the table already.
      if (settlement.kind === 'failed') this.#putDeadLetter(task, settlement.deadLetter);
      return true;
    }
    this.#release(task);
    this.#completed();
    const row = task.toRow();
    const item: SettleItem = {
      id: row.id,
      token: held.token,
      status: row.status,
      result: settlement.kind === 'completed' ? (row.resultJson ?? 'null') : null,
      error: row.error ?? null,
      agent: row.agentId,
      delay: null,
      attempt: null,
      dead: settlement.kind === 'failed' ? { row, error: serializeError(settlement.deadLetter.error), code: settlement.deadLetter.code, attempts: settlement.deadLetter.attempts } : null,
      // In the outcome's own statement, so no crash can leave the outcome without them.
      // (A cancel's entry is appended as the settle is queued: it rides in this statement already.)
      audit: this.#backend.options.audit.enabled && settlement.kind !== 'cancelled' ? outcomeAudit(row, settlement) : null,
      runAttempt: row.attempt,
      orphan: false,
    };
    task.outcomeAudited = item.audit !== null;
    return this.#settles.push(item).then(
      (settled) => {
        if (settled && held.watchers.size > 0) this.#publishEnded(task, row, held.watchers);
        if (!settled) this.#followIfMineAgain(task, held.token);
        return settled;
      },
      (error: unknown) => {
        this.#failed(`recording the outcome of task ${row.id}`, error);
        // Not written: the row keeps this node's claim until its lease expires, and a task
        // submitted here follows whoever runs it then.
        this.#followIfMineAgain(task, held.token);
        return false;
      },
    );
  }

  /**
   * The outcome of the claim `token` here was refused or not written. Unless the task was claimed
   * here again meanwhile (it carries on under that claim), a task submitted here follows the
   * process that holds it now.
   */
  #followIfMineAgain(task: T, token: string): void {
    if (this.#lastToken.get(task) !== token) return;
    this.#followIfMine(task);
    // Its end may have been told while this node still held it, and ignored then: the row says.
    if (this.#watched.get(task.id) === task) void this.#catchUp(task).catch((error: unknown) => this.#failed(`reading the status of task ${task.id}`, error));
  }

  async #catchUp(task: T): Promise<void> {
    const { rows } = await this.#backend.pool.query<StatusRow>(this.#backend.sql.statuses([task.id]));
    if (rows[0] !== undefined && this.#watched.get(task.id) === task) this.#applyStatus(rows[0]);
  }

  /** Back to the cluster: queued again after `delayMs` (a retry), or at once and uncounted (an unstarted claim). */
  #handBack(task: T, held: Held, delayMs: number, unstarted: boolean): void {
    this.#release(task);
    const row = task.toRow();
    const item: SettleItem = {
      id: row.id,
      token: held.token,
      status: 'queued',
      result: null,
      error: row.error ?? null,
      agent: row.agentId,
      delay: delayMs,
      attempt: unstarted ? Math.max(0, task.attempt) : null,
      dead: null,
      audit: null,
      runAttempt: null,
      orphan: false,
    };
    void this.#settles.push(item).then(
      (settled) => {
        if (!settled) return;
        const watchers = held.watchers;
        if (watchers.size === 0) return;
        const message: Message = unstarted
          ? { k: 'q', i: row.id, t: task.attempt }
          : { k: 'r', i: row.id, t: task.attempt + 1, y: delayMs, e: row.error ?? serializeError(new Error('failed')) };
        for (const node of watchers) this.#publish(node, message);
      },
      (error: unknown) => this.#failed(`handing task ${row.id} back`, error),
    );
    // A task submitted here stays live here, watched; another's leaves this node (after its transition's listeners ran).
    if (this.#mine.has(task)) this.#watched.set(row.id, task);
    else queueMicrotask(() => this.#host.release(task));
  }

  #release(task: T): void {
    this.#held.delete(task);
    if (this.#held.size === 0 && this.#drainWaiters.length > 0) for (const wake of this.#drainWaiters.splice(0)) wake();
  }

  async #writeSettles(items: SettleItem[]): Promise<boolean[]> {
    const shadowed = shadowedOrphans(items);
    const sent = shadowed === null ? items : items.filter((item) => !shadowed.has(item));
    const batch = `[${sent.filter((item) => item !== CARRY_ONLY).map(encodeSettle).join(',')}]`;
    // The audit entries and node messages waiting to go ride along: one statement, one commit.
    const audit = JSON.stringify(this.#backend.takeAudit());
    const { channels, payloads } = this.#takeOutbox();
    // By id and claim token: a task claimed here again may have the outcomes of two claims in one
    // batch, and only the current claim's counts.
    const settled = new Set<string>();
    await this.#retrying('recording outcomes', async (again) => {
      const { rows } = await this.#backend.pool.query<{ ids: string[] }>(this.#backend.sql.settle(batch, audit, this.#backend.nodeId, this.#backend.workChannel, channels, payloads));
      for (const idAndToken of rows[0]?.ids ?? []) settled.add(idAndToken);
      // After a connection was lost at commit, the first try may have committed: the rows say so
      // (an outcome only if the row ended in the attempt that this node ran).
      if (again) {
        const unsure = sent.filter((item) => item !== CARRY_ONLY && !settled.has(settleKey(item)));
        await this.#confirm(unsure, (item, row) => row.status === item.status && (item.runAttempt === null || row.attempt === item.runAttempt), settled, settleKey);
      }
    });
    return items.map((item) => shadowed?.has(item) !== true && settled.has(settleKey(item)));
  }

  /** Adds to `done` the keys (ids by default) of the items whose rows show what they were meant to write. */
  async #confirm<I extends { id: string }>(items: I[], wrote: (item: I, row: StatusRow) => boolean, done: Set<string>, key: (item: I) => string = (item) => item.id): Promise<void> {
    if (items.length === 0) return;
    const { rows } = await this.#backend.pool.query<StatusRow>(this.#backend.sql.statuses(items.map((item) => item.id)));
    const byId = new Map(rows.map((row) => [row.id, row]));
    for (const item of items) {
      const row = byId.get(item.id);
      if (row !== undefined && wrote(item, row)) done.add(key(item));
    }
  }

  /**
   * Runs a write, again after a lost connection (the server restarted, the connection was
   * terminated) or a deadlock with another statement, with a growing delay, until it succeeds or
   * the node closes. `again` is true from the second try on. Errors that retrying cannot fix (a
   * bad statement) are thrown at once.
   */
  async #retrying(what: string, write: (again: boolean) => Promise<void>): Promise<void> {
    let delay = RETRY_FIRST_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        await write(attempt > 0);
        return;
      } catch (error) {
        const rolledBack = isRolledBack(error);
        if (!(rolledBack || isConnectionError(error)) || !this.#open) throw error;
        // A deadlock under contention is routine, and its retry starts from a clean slate: reported only when it persists.
        if (!rolledBack || attempt >= 2) this.#failed(`${what} (retrying)`, error);
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
        delay = Math.min(RETRY_MAX_MS, delay * 2);
      }
    }
  }

  #putDeadLetter(task: T, deadLetter: DeadLetter): void {
    if (!this.#open) return;
    const row = task.toRow();
    const entry = { id: row.id, row, error: serializeError(deadLetter.error), code: deadLetter.code, attempts: deadLetter.attempts, failed_at: deadLetter.failedAt };
    void this.#backend.pool.query(this.#backend.sql.putDeadLetters(JSON.stringify([entry]))).catch((error: unknown) => this.#failed(`dead-lettering task ${row.id}`, error));
  }

  holds(task: T): boolean {
    return this.#held.has(task);
  }

  watches(task: T): boolean {
    return this.#watched.get(task.id) === task;
  }

  /** This node's claim of a task submitted here was lost: the node that took it over reports to this one (a watcher), so it stays live here. */
  #followIfMine(task: T): void {
    if (this.#mine.has(task) && !this.#held.has(task)) this.#watched.set(task.id, task);
  }

  /** This node's claim of a task it holds was taken over (its lease expired): its run here is abandoned. */
  #lost(task: T): void {
    this.#release(task);
    if (task.inQueue) {
      this.#queue.remove(task);
      task.level = -1;
    }
    this.#followIfMine(task);
    this.#host.claimLost(task, `the claim of this node (${this.#backend.nodeId}) expired and the task was taken over`);
  }

  /** True while the task is in this process only: claimed here, or submitted and not yet in the table. */
  isHere(task: T): boolean {
    return this.#held.has(task) || this.#awaitingVerdict.has(task) || this.#inserts.has(task);
  }

  agentsLeft(signatures: readonly CapabilitySignature[]): void {
    // Claimed tasks no agent here can serve any more go back to the cluster (another node may).
    for (const signature of signatures) {
      if (signature.agents.length > 0) continue;
      const lane = this.#lanes.find(signature.key);
      if (lane === undefined) continue;
      for (const task of lane.tasks()) {
        const held = this.#held.get(task);
        this.#queue.remove(task);
        task.level = -1;
        if (held !== undefined) this.#handBack(task, held, 0, true);
      }
      this.#lanes.prune(lane);
    }
  }

  enforceServability(): void {
    this.#enforcing = true;
  }

  // Cancel and observe across nodes

  /**
   * Cancels a task this node does not hold: a queued one is cancelled in the table; a running one
   * is asked to stop on its node (at once by NOTIFY, at the latest on that node's next heartbeat).
   * Resolves with false when the task is not queued or running anywhere.
   */
  async cancelElsewhere(taskId: string, reason: string): Promise<'queued' | 'running' | null> {
    // Submitted here and its insert in flight (submitAsync() starts it at once): the row must be there to be cancelled.
    const own = this.#watched.get(taskId);
    if (own !== undefined) await this.#inserts.written(own);
    const { rows } = await this.#backend.pool.query<{ was: 'queued' | 'running'; owner: string | null; watchers: string[] }>(this.#backend.sql.cancel(taskId, reason, this.#backend.nodeId));
    const row = rows[0];
    if (row === undefined) return null;
    if (row.was === 'running' && row.owner === this.#backend.nodeId) {
      // Claimed by this node: cancelled here now if its claim arrived meanwhile, else on arrival.
      const task = this.#host.live(taskId);
      if (task !== undefined && this.#held.has(task)) this.#host.cancelRequested(taskId, reason);
      else this.#cancelOnArrival.set(taskId, reason);
    } else if (row.was === 'running' && row.owner !== null) {
      this.#publish(row.owner, { k: 'x', i: taskId, m: reason });
    } else {
      this.#watched.delete(taskId);
      const ended: Message = { k: 'e', i: taskId, st: 'cancelled', e: { name: 'TaskCancelledError', message: reason, stack: undefined, props: { code: 'TASK_CANCELLED' } } };
      for (const node of row.watchers) if (node !== this.#backend.nodeId) this.#publish(node, ended);
    }
    return row.was;
  }

  /** Starts watching a task of the cluster: its transitions reach this node from now on. */
  async watch(task: T): Promise<void> {
    this.#watched.set(task.id, task);
    await this.#backend.pool.query(this.#backend.sql.watch(task.id, this.#backend.nodeId));
    const { rows } = await this.#backend.pool.query<StatusRow>(this.#backend.sql.statuses([task.id]));
    const row = rows[0];
    if (row === undefined) {
      this.#watched.delete(task.id);
      this.#host.remote({ kind: 'missing', taskId: task.id });
      return;
    }
    // Running: its node learns of this watcher now (its claim read the watchers before), and sends its state.
    if (row.status === 'running' && row.owner !== null) this.#publish(row.owner, { k: 'w', i: task.id, n: this.#backend.nodeId });
    this.#applyStatus(row);
  }

  // Telling other nodes

  /** Nodes to tell about a held task's transitions. */
  watchersOf(task: T): ReadonlySet<string> | null {
    const watchers = this.#held.get(task)?.watchers;
    return watchers === undefined || watchers.size === 0 ? null : watchers;
  }

  /** Queues a message for a node; messages go out together on the next turn. */
  publish(node: string, message: Message): void {
    this.#publish(node, message);
  }

  #publish(node: string, message: Message): void {
    let box = this.#outbox.get(node);
    if (box === undefined) this.#outbox.set(node, (box = []));
    box.push(message);
    if (!this.#outboxScheduled) {
      this.#outboxScheduled = true;
      // Messages ride with the next batch of outcomes; alone only when none comes soon.
      this.#backend.rideAlong(
        () => this.#outbox.size > 0,
        () => this.#backend.carryAlone(),
      );
    }
  }

  #takeOutbox(): { channels: string[]; payloads: string[] } {
    this.#outboxScheduled = false;
    const channels: string[] = [];
    const payloads: string[] = [];
    for (const [node, messages] of this.#outbox) {
      for (const payload of encodeMessages(messages, MAX_NOTIFY_BYTES)) {
        channels.push(this.#backend.nodeChannel(node));
        payloads.push(payload);
      }
    }
    this.#outbox.clear();
    return { channels, payloads };
  }



  /** Stores a progress state too large for a notification; the watchers fetch it. */
  async storeProgress(taskId: string, sequence: number, body: string): Promise<void> {
    await this.#backend.pool.query(this.#backend.sql.saveProgress(taskId, sequence, body));
  }

  // Hearing from other nodes

  #onNotification(channel: string, payload: string): void {
    if (channel === this.#backend.workChannel) {
      const level = Number(payload);
      this.#refill(Number.isFinite(level) ? level : Infinity);
      return;
    }
    let messages: Message[];
    try {
      messages = decodeMessages(payload);
    } catch (error) {
      this.#failed('reading a notification', error);
      return;
    }
    for (const message of messages) this.#receive(message);
  }

  #receive(message: Message): void {
    switch (message.k) {
      case 'x':
        this.#host.cancelRequested(message.i, message.m);
        return;
      case 'w': {
        // A node started watching (or lost track of) a task this one runs: it gets the state now.
        const task = this.#host.live(message.i);
        const held = task === undefined ? undefined : this.#held.get(task);
        if (held === undefined) return;
        held.watchers.add(message.n);
        this.#host.resync(message.i, message.n);
        return;
      }
      case 'p':
        if (message.r === 1) {
          void this.#fetchProgress(message.i, message.q, message.a);
          return;
        }
        this.#host.remote({ kind: 'progress', taskId: message.i, sequence: message.q, agentId: message.a, timestamp: message.ts, delta: message.d ?? null, state: message.s });
        return;
      case 's':
        this.#host.remote({ kind: 'started', taskId: message.i, agentId: message.a, workerId: message.w, nodeId: message.n, attempt: message.t });
        return;
      case 'r':
        this.#host.remote({ kind: 'retrying', taskId: message.i, attempt: message.t, delay: message.y, error: message.e });
        return;
      case 'q':
        this.#host.remote({ kind: 'requeued', taskId: message.i, attempt: message.t });
        return;
      case 'v':
        this.#host.remote({ kind: 'preempted', taskId: message.i, attempt: message.t, by: message.b, agentId: message.a, preemptions: message.c });
        return;
      case 'e':
        if (message.f === 1) {
          void this.#refetch(message.i);
          return;
        }
        this.#watched.delete(message.i);
        this.#host.remote({
          kind: 'ended',
          taskId: message.i,
          status: message.st,
          result: message.r,
          error: message.e ?? null,
          attempts: message.t ?? 0,
          agentId: message.a ?? null,
          workerId: message.w ?? null,
          duration: message.u ?? 0,
          updateCount: message.c ?? 0,
        });
        return;
    }
  }

  async #refetch(taskId: string): Promise<void> {
    const { rows } = await this.#backend.pool.query<StatusRow>(this.#backend.sql.statuses([taskId]));
    if (rows[0] !== undefined) this.#applyStatus(rows[0]);
  }

  async #fetchProgress(taskId: string, sequence: number, agentId: string): Promise<void> {
    const { rows } = await this.#backend.pool.query<{ sequence: number; body: unknown }>(this.#backend.sql.loadProgress(taskId));
    const row = rows[0];
    if (row === undefined || row.sequence < sequence) return;
    this.#host.remote({ kind: 'progress', taskId, sequence: row.sequence, agentId, timestamp: Date.now(), delta: null, state: row.body });
  }

  /** The LISTEN connection came back: catch up on what the notifications would have said. */
  #onReconnected(): void {
    this.#refill();
    void this.#reconcile().catch((error: unknown) => this.#failed('catching up after a reconnect', error));
  }

  // Periodic work

  async #heartbeat(): Promise<void> {
    const epoch = ++this.#heartbeats;
    const backend = this.#backend;
    const { rows } = await backend.pool.query<HeartbeatRow>(backend.sql.heartbeat(backend.nodeId, backend.options.leaseMs, this.#host.running(), this.#host.agentsJson()));
    const beat = rows[0]!;
    if (beat.registered === 0) await backend.pool.query(backend.sql.registerNode(backend.nodeId, hostname(), process.pid, this.#host.agentsJson()));
    const extended = new Map<string, string>();
    for (let i = 0; i < beat.ids.length; i++) extended.set(beat.ids[i]!, beat.tokens[i]!);
    for (const [task, held] of [...this.#held]) {
      // Claimed after this heartbeat was sent: its statement may not have seen the claim.
      if (held.epoch >= epoch) continue;
      if (extended.get(task.id) === held.token) continue;
      // The claim is gone: the lease expired and another node re-queued (maybe already runs) the task.
      this.#lost(task);
    }
    // Claims of this node it knows nothing of (a claim whose answer a lost connection swallowed)
    // go back to the cluster. Not while a claim is in flight: its rows may not have arrived yet.
    if (!this.#claiming) {
      const heldIds = new Set<string>();
      for (const task of this.#held.keys()) heldIds.add(task.id);
      for (const [id, token] of extended) {
        if (heldIds.has(id)) continue;
        void this.#settles
          .push({ id, token, status: 'queued', result: null, error: null, agent: null, delay: 0, attempt: null, dead: null, audit: null, runAttempt: null, orphan: true })
          .catch((error: unknown) => this.#failed(`handing back task ${id}`, error));
      }
    }
    for (let i = 0; i < beat.cancels.length; i++) this.#host.cancelRequested(beat.cancels[i]!, beat.reasons[i] ?? 'cancelled');
    await this.#refreshCluster();
  }

  async #refreshCluster(): Promise<void> {
    const backend = this.#backend;
    const stale = backend.options.leaseMs * STALE_FACTOR;
    const [nodes, counts] = await Promise.all([
      backend.pool.query<{ id: string; host: string; pid: number; heartbeat_at: number; agents: ClusterNode['agents']; running: number }>(backend.sql.nodes(stale)),
      backend.pool.query<{ queued: number; running: number }>(backend.sql.counts()),
    ]);
    this.#cluster = {
      nodes: nodes.rows.map((row) => ({ nodeId: row.id, host: row.host, pid: row.pid, heartbeatAt: row.heartbeat_at, running: row.running, agents: row.agents })),
      queued: counts.rows[0]?.queued ?? 0,
      running: counts.rows[0]?.running ?? 0,
      deadLetters: this.#cluster.deadLetters,
    };
  }

  async #reap(): Promise<void> {
    const backend = this.#backend;
    const { rows } = await backend.pool.query<{ id: string; status: string; attempt: number; error: SerializedError | null; watchers: string[] }>(
      backend.sql.reap(backend.options.maxBatch, backend.options.leaseMs * STALE_FACTOR, backend.nodeId, backend.workChannel),
    );
    for (const row of rows) {
      const message: Message = row.status === 'queued' ? { k: 'q', i: row.id, t: row.attempt } : { k: 'e', i: row.id, st: 'failed', e: row.error, t: row.attempt };
      for (const node of row.watchers) this.#publish(node, message);
    }
  }

  async #maintainAudit(): Promise<void> {
    const { audit } = this.#backend.options;
    await this.#backend.pool.query(this.#backend.sql.pruneAudit(audit.maxEvents));
    await this.#backend.pool.query(this.#backend.sql.expireAudit(audit.retainMs));
  }

  async #age(): Promise<void> {
    const { rowCount } = await this.#backend.pool.query(this.#backend.sql.age(this.#backend.options.agingMs));
    if ((rowCount ?? 0) > 0) this.#refill();
  }

  async #poll(): Promise<void> {
    this.#refill();
    await this.#reconcile();
  }

  /** Tasks watched here whose transitions may have been missed: their stored status decides. */
  async #reconcile(): Promise<void> {
    if (this.#watched.size === 0) return;
    const ids = [...this.#watched.keys()].slice(0, this.#backend.options.maxBatch * 4);
    const { rows } = await this.#backend.pool.query<StatusRow>(this.#backend.sql.statuses(ids));
    const found = new Set<string>();
    for (const row of rows) {
      found.add(row.id);
      this.#applyStatus(row);
    }
  }

  #applyStatus(row: StatusRow): void {
    const task = this.#watched.get(row.id);
    if (task === undefined) return;
    if (row.status === 'queued' || row.status === 'running') return;
    this.#watched.delete(row.id);
    this.#host.remote({
      kind: 'ended',
      taskId: row.id,
      status: row.status as 'completed' | 'failed' | 'timeout' | 'cancelled',
      result: row.result,
      error: row.error,
      attempts: row.attempt,
      agentId: row.agent_id,
      workerId: null,
      duration: 0,
      updateCount: 0,
    });
  }

  /** A task queued with a future run_at (a retry): claim when it is due. */
  #armDelayed(): void {
    if (this.#delayedTimer !== null || !this.#open) return;
    void this.#backend.pool.query<{ wait: number | null }>(this.#backend.sql.nextRunAt()).then(({ rows }) => {
      const wait = rows[0]?.wait;
      if (wait === null || wait === undefined || this.#delayedTimer !== null || !this.#open) return;
      this.#delayedTimer = setTimeout(() => {
        this.#delayedTimer = null;
        this.#refill();
      }, Math.max(1, Math.ceil(wait)));
      this.#delayedTimer.unref();
    }, (error: unknown) => this.#failed('looking for delayed tasks', error));
  }

  #publishEnded(task: T, row: TaskRow, watchers: ReadonlySet<string>): void {
    const message: Message = {
      k: 'e',
      i: row.id,
      st: row.status as 'completed' | 'failed' | 'timeout' | 'cancelled',
      r: row.status === 'completed' ? row.result : undefined,
      e: row.error ?? undefined,
      t: task.attempt,
      a: row.agentId ?? undefined,
      w: task.workerId ?? undefined,
      u: task.duration,
      c: task.updateCount,
    };
    for (const node of watchers) this.#publish(node, message);
  }

  // Queue-like views for stats and backpressure

  get size(): number {
    return this.#queue.size;
  }

  get retrying(): number {
    return 0;
  }

  get depth(): readonly number[] {
    return this.#queue.depth;
  }

  get maxSize(): number {
    return this.#options.maxSize;
  }

  /** Backpressure on submit: too many submits wait for their insert. */
  get full(): boolean {
    return this.#inserts.size >= this.#options.maxSize;
  }

  waitForRoom(signal: AbortSignal | undefined): Promise<void> {
    if (!this.full) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#roomWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  passRoom(): void {
    this.#wakeRoomWaiters();
  }

  rejectWaiters(): void {
    for (const waiter of this.#roomWaiters.splice(0)) waiter();
  }

  #wakeRoomWaiters(): void {
    while (this.#roomWaiters.length > 0 && !this.full) this.#roomWaiters.shift()!();
  }

  // Dead letters live in the table

  async deadLetters(): Promise<DeadLetter[]> {
    const { rows } = await this.#backend.pool.query<{ task_id: string; row: TaskRow; error: SerializedError; code: string; attempts: number; failed_at: number }>(
      this.#backend.sql.listDeadLetters(),
    );
    this.#cluster.deadLetters = rows.length;
    return rows.map((row) => toDeadLetter(row));
  }

  async takeDeadLetter(taskId: string): Promise<DeadLetter | undefined> {
    const { rows } = await this.#backend.pool.query<{ task_id: string; row: TaskRow; error: SerializedError; code: string; attempts: number; failed_at: number }>({
      text: `delete from ${this.#backend.schema}.dead_letters where task_id = $1 returning *`,
      values: [taskId],
    });
    return rows[0] === undefined ? undefined : toDeadLetter(rows[0]);
  }

  restoreDeadLetter(entry: DeadLetter): void {
    const row = entry.spec;
    const stored = { id: entry.taskId, row: { ...row, id: entry.taskId }, error: serializeError(entry.error), code: entry.code, attempts: entry.attempts, failed_at: entry.failedAt };
    void this.#backend.pool.query(this.#backend.sql.putDeadLetters(JSON.stringify([stored]))).catch((error: unknown) => this.#failed(`restoring dead letter ${entry.taskId}`, error));
  }

  async isDeadLetter(taskId: string): Promise<boolean> {
    const { rows } = await this.#backend.pool.query({ text: `select 1 from ${this.#backend.schema}.dead_letters where task_id = $1`, values: [taskId] });
    return rows.length > 0;
  }

  get deadLetterCount(): number {
    return this.#cluster.deadLetters;
  }

  get deadLettersDropped(): number {
    return 0;
  }

  /** The cluster as the last heartbeat saw it. */
  get cluster(): Readonly<{ nodes: readonly ClusterNode[]; queued: number; running: number }> {
    return this.#cluster;
  }

  #storeError(what: string, cause: unknown): StoreError {
    return cause instanceof StoreError ? cause : new StoreError(this.#backend.where, `${what}: ${(cause as Error).message}`, { cause });
  }

  #failed(what: string, error: unknown): void {
    if (!this.#open && !this.#closing) return;
    this.#backend.onError(this.#storeError(`${what} failed`, error));
  }
}

interface ClaimRow {
  id: string;
  seq: number;
  type: string;
  priority: number;
  capabilities: string[];
  payload: unknown;
  metadata: Record<string, unknown>;
  options: Record<string, unknown>;
  attempt: number;
  token: string;
  submitter: string | null;
  watchers: string[];
  trace: Record<string, string> | null;
  checkpoint: unknown;
  has_checkpoint: boolean;
}

interface HeartbeatRow {
  registered: number;
  ids: string[];
  tokens: string[];
  cancels: string[];
  reasons: (string | null)[];
}

interface StatusRow {
  id: string;
  status: string;
  submitter: string | null;
  owner: string | null;
  attempt: number;
  agent_id: string | null;
  result: unknown;
  error: SerializedError | null;
}

/**
 * A heartbeat sees the lease of a task whose outcome is still on its way to the table (the task
 * left `#held` when it ended) and hands it back as an orphan. One statement must not carry both:
 * `update … from` would apply either row. The outcome wins; the orphan is not sent (answered false).
 */
function shadowedOrphans(items: SettleItem[]): Set<SettleItem> | null {
  if (!items.some((item) => item.orphan)) return null;
  const outcomes = new Set<string>();
  for (const item of items) if (!item.orphan) outcomes.add(item.id);
  const shadowed = new Set<SettleItem>();
  for (const item of items) if (item.orphan && outcomes.has(item.id)) shadowed.add(item);
  return shadowed;
}

interface OutcomeAudit {
  ts: number;
  type: string;
  agent: string | null;
  attempt: number;
  details: Record<string, unknown> | null;
}

/** The terminal audit entries of a completion or failure, worded as Journal.completed and Journal.failed word them. */
function outcomeAudit(row: TaskRow, settlement: Exclude<Settlement, { kind: 'cancelled' }>): OutcomeAudit[] {
  // The journal's clock, as the task's other entries: Date.now() drifts from it by a millisecond or so.
  const ts = auditClock();
  if (settlement.kind === 'completed') return [{ ts, type: 'completed', agent: row.agentId, attempt: row.attempt, details: null }];
  const { error, code } = settlement.deadLetter;
  return [
    { ts, type: row.status === 'timeout' ? 'timed-out' : 'failed', agent: row.agentId, attempt: row.attempt, details: { error: error.message, code } },
    { ts, type: 'dead-lettered', agent: null, attempt: row.attempt, details: { attempts: row.attempt } },
  ];
}

/** What the settle statement returns of each outcome it recorded. */
function settleKey(item: SettleItem): string {
  return `${item.id}:${item.token}`;
}

function encodeSettle(item: SettleItem): string {
  // The result is JSON already (encoded once when the task completed): spliced in, not parsed again.
  return `{"id":${JSON.stringify(item.id)},"token":${item.token},"status":"${item.status}","result":${item.result ?? 'null'},"error":${JSON.stringify(item.error)},"agent":${JSON.stringify(item.agent)},"delay":${item.delay ?? 'null'},"attempt":${item.attempt ?? 'null'},"dead":${item.dead === null ? 'null' : JSON.stringify(item.dead)},"audit":${item.audit === null ? 'null' : JSON.stringify(item.audit)}}`;
}

function toDeadLetter(row: { task_id: string; row: TaskRow; error: SerializedError; code: string; attempts: number; failed_at: number }): DeadLetter {
  const spec = row.row;
  return {
    taskId: row.task_id,
    type: spec.type,
    spec: {
      ...(spec.options as object),
      id: row.task_id,
      type: spec.type,
      priority: spec.priority as never,
      capabilities: spec.capabilities,
      payload: spec.payload,
      metadata: spec.metadata,
    },
    error: deserializeError(row.error),
    code: row.code,
    attempts: row.attempts,
    failedAt: row.failed_at,
  };
}

/** A deadlock or serialization failure: the server rolled the statement back, and it may simply be run again. */
function isRolledBack(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001';
}

/** Errors of a lost connection (the write may be tried again), as opposed to errors of the statement. */
function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    // Class 08: connection exception; 57P01..57P03: admin shutdown, crash shutdown, cannot connect now.
    return code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === 'ECONNRESET' || code === 'ECONNREFUSED' || code === 'EPIPE';
  }
  const message = (error as Error | null)?.message ?? '';
  return /Connection terminated|connection|timeout exceeded when trying to connect/i.test(message);
}
