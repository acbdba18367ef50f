import type { AsyncResource } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { TaskPriority, TaskStatus } from '../enums.js';
import {
  DuplicateTaskError,
  InvalidArgumentError,
  InvalidTaskError,
  OrchestratorShutdownError,
  QueueFullError,
  ClaimLostError,
  StoreError,
  TaskNotFoundError,
  WorkerCrashedError,
  coerceError,
} from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import { createStore } from '../persistence/index.js';
import type { AuditEvent, Store, TaskRow, UnreadableTask } from '../persistence/store.js';
import { LocalWorkSource } from '../queue/local-work-source.js';
import type { ClaimedTask, RemoteUpdate, SharedSourceHost, WorkSource, WorkSourceHost } from '../queue/work-source.js';
import { createPostgresBackend, type PostgresWorkSource } from '../distributed/index.js';
import { ClusterRelay } from './cluster-relay.js';
import { AgentDirectory } from '../routing/agent-directory.js';
import { signatureKey } from '../routing/capability-signature.js';
import { EventLog } from '../streaming/event-log.js';
import { attachLogger } from '../telemetry/logger.js';
import { Telemetry } from '../telemetry/telemetry.js';
import type { TaskObservable } from '../streaming/task-observable.js';
import { Emitter } from '../util/emitter.js';
import { deserializeError } from '../workers/protocol.js';
import type { ThreadHost } from '../workers/thread-worker.js';
import { WorkerPool } from '../workers/worker-pool.js';
import type { AgentInfo, AgentSpec, DeadLetter, EventStreamOptions, OrchestratorEvents, OrchestratorStreamItem, TaskSpec } from '../types.js';
import { parseAgentSpec } from './agent-spec.js';
import { captureScope } from './async-scope.js';
import { parseAuditQuery, parseTaskQuery, requireId } from './arguments.js';
import { Checkpoints } from './checkpoints.js';
import { Counters } from './counters.js';
import { Dispatcher } from './dispatcher.js';
import { EventSink } from './event-sink.js';
import { Executor } from './executor.js';
import { Journal } from './journal.js';
import { ProgressFanout } from './progress-fanout.js';
import type { OrchestratorStats, TaskDetails, TaskInfo } from './stats.js';
import { buildStats, taskDetails, taskInfo } from './stats-builder.js';
import { TaskLifecycle, isEnded } from './task-lifecycle.js';
import { NO_CAPABILITIES, TaskRecord, type RunHost, type TaskDefaults, type TaskRun } from './task-record.js';
import { TaskTable } from './task-table.js';
import { validateTaskSpec } from './task-spec.js';

type Lifecycle = 'created' | 'running' | 'draining' | 'stopped';

const DEAD_LETTER_LIMIT = 10_000;
const COMMITTED: Promise<void> = Promise.resolve();
const now = (): number => performance.now();

/**
 * The engine behind `ParallelOrchestrator`: wires the parts and runs the orchestrator's
 * lifecycle (created → running → draining → stopped). The parts, each in its own module:
 * the task state machine (`TaskLifecycle`) and its sinks (events, journal, counters), the work
 * source (where tasks wait), the agent directory (registry and admission), the dispatcher,
 * the executor (runs and their supervision), checkpoints and progress fan-out.
 */
export class Engine {
  readonly options: ResolvedOptions;
  readonly events: Emitter<OrchestratorEvents>;
  /** This orchestrator's id: the prefix of its generated task ids, and its name in a shared store. */
  readonly nodeId: string;
  readonly #table: TaskTable;
  readonly #store: Store;
  readonly #journal: Journal;
  readonly #counters = new Counters();
  readonly #checkpoints: Checkpoints;
  readonly #pool: WorkerPool<TaskRun>;
  readonly #directory: AgentDirectory;
  readonly #lifecycle: TaskLifecycle;
  readonly #source: WorkSource<TaskRecord>;
  /** The work source when it is shared with other processes (PostgreSQL), else null. */
  readonly #shared: PostgresWorkSource<TaskRecord> | null;
  readonly #relay: ClusterRelay | null;
  readonly #telemetry: Telemetry | null;
  readonly #dispatcher: Dispatcher;
  readonly #executor: Executor;
  readonly #progress: ProgressFanout;
  readonly #runHost: RunHost;
  readonly #defaults: TaskDefaults;
  #eventLog: EventLog | null = null;
  #state: Lifecycle = 'created';
  #opening: Promise<void> | null = null;
  #opened = false;
  #shutdown: Promise<void> | null = null;
  #startedAt = Date.now();

  constructor(options: ResolvedOptions) {
    this.options = options;
    this.events = new Emitter<OrchestratorEvents>((error, event) => this.reportListenerError(error, event));
    this.nodeId = randomBytes(9).toString('base64url');
    const streaming = options.streaming;
    this.#table = new TaskTable(`${this.nodeId}-`, streaming.retainCompletedMax, streaming.retainCompletedMs, now, (lane) => this.#source.laneIdle(lane));
    const events = new EventSink(this.events);
    this.#pool = new WorkerPool(options.workerPool, this.#threadHost());
    this.#directory = new AgentDirectory(
      options.workerPool.assignmentStrategy,
      options.circuitBreaker,
      this.#pool,
      {
        agentRegistered: (agent) => events.agentRegistered(agent),
        agentUnregistered: (agentId) => events.agentUnregistered(agentId),
        circuitChanged: (agentId, from, to) => {
          this.#journal.circuit(agentId, from, to);
          events.circuitChanged(agentId, from, to);
        },
        wake: () => this.#dispatcher.schedule(),
      },
      now,
    );
    const sourceHost = {
      unservable: (record: TaskRecord) => this.#lifecycle.unservable(record),
      requeued: (record: TaskRecord) => this.#lifecycle.requeued(record),
      wake: () => this.#dispatcher.schedule(),
    };
    const signatures = this.#directory;
    const onStoreError = (error: StoreError) => this.#reportStoreError(error);
    if (options.store.type === 'postgres') {
      const backend = createPostgresBackend<TaskRecord>(
        options.store,
        { nodeId: this.nodeId, agingMs: options.taskQueue.agingMs, maxSize: options.taskQueue.maxSize, audit: options.audit, onError: onStoreError, signatures },
        { ...sourceHost, ...this.#sharedHost() },
      );
      this.#store = backend.store;
      this.#source = this.#shared = backend.source;
    } else {
      this.#store = createStore(options.store, options.audit, { nodeId: this.nodeId, idOfSeq: (seq) => this.#table.generatedId(seq), onError: onStoreError });
      this.#shared = null;
      this.#source = new LocalWorkSource<TaskRecord>(
        {
          maxSize: options.taskQueue.maxSize,
          agingMs: options.taskQueue.agingMs,
          deadLetterLimit: DEAD_LETTER_LIMIT,
          signatures,
          onDeadLetterEvicted: (entry) => this.#checkpoints.evict(entry.taskId),
          clock: now,
          idle: () => this.#table.onIdle(),
        },
        sourceHost,
      );
    }
    this.#journal = new Journal(this.#store, options.audit.enabled);
    this.#checkpoints = new Checkpoints(this.#store, this.#journal, options.checkpointing, onStoreError);
    this.#relay = this.#shared === null ? null : new ClusterRelay(this.#shared, this.nodeId, onStoreError);
    // The logger first: its child() may be refused, and the meter must not keep this orchestrator then.
    if (options.logger !== undefined) attachLogger(this.events, options.logger, this.nodeId);
    this.#telemetry = options.telemetry.enabled ? new Telemetry(options.telemetry, { nodeId: this.nodeId, propagate: this.#shared !== null, stats: () => this.getStats(), clock: now }) : null;
    // Telemetry first: a listener of an event sent by a later sink may cancel the task, and the span must exist by then.
    const sinks = [this.#telemetry, this.#counters, events, this.#journal, this.#relay].filter((sink) => sink !== null);
    this.#lifecycle = new TaskLifecycle(this.#table, sinks, events, this.#checkpoints, () => this.#state === 'stopped', now, (record, reason) => {
      events.claimLost(record, reason);
      this.#telemetry?.claimLost(record);
    });
    this.#dispatcher = new Dispatcher(this.#source, this.#directory, this.#pool, () => this.#executor, options.preemption);
    this.#executor = new Executor(
      this.#pool,
      this.#directory,
      this.#lifecycle,
      this.#checkpoints,
      this.events,
      { healthCheckInterval: options.workerPool.healthCheckInterval, stuckGrace: options.workerPool.stuckGrace, storesResults: this.#store.durable, enter: this.#telemetry?.enter ?? null },
      () => this.#dispatcher.pump(),
      (error) => this.reportListenerError(error, 'progress'),
    );
    this.#lifecycle.connect(this.#source, this.#executor);
    this.#progress = new ProgressFanout(streaming, this.events, this.#checkpoints);
    if (this.#relay !== null) {
      const relay = this.#relay;
      this.#progress.relay = (record, event) => relay.progress(record, event);
    }
    const taskOptions = { timeout: options.taskQueue.defaultTimeout, retry: options.taskQueue.retry, preferredRole: undefined, waitForAgent: false, preemptible: undefined };
    this.#defaults = {
      priority: options.taskQueue.defaultPriority,
      options: taskOptions,
      waitingOptions: { ...taskOptions, waitForAgent: true },
      preemptibleFrom: options.taskQueue.preemptibleFrom ?? Infinity,
    };
    this.#runHost = {
      generatedId: (seq) => this.#table.generatedId(seq),
      taskDefaults: this.#defaults,
      progress: (run, state) => this.#progress.update(run, state),
      checkpoint: (run, state) => (run.finished ? COMMITTED : this.#checkpoints.save(run.record, state, run.agent.agentId, run.attempt, false)),
      onRunDeadline: (run) => this.#executor.onRunDeadline(run),
      reportListenerError: (error, event) => this.reportListenerError(error, event),
      bufferLimit: streaming.backpressureThreshold,
      reportConflated: (record, dropped) => {
        if (this.events.has('backpressure:conflated')) this.events.emit('backpressure:conflated', { taskId: record.id, dropped });
      },
    };
  }

  /** What a work source shared with other processes asks of this one. */
  #sharedHost(): Omit<SharedSourceHost<TaskRecord>, keyof WorkSourceHost<TaskRecord>> {
    return {
      adopt: (claim) => this.#adopt(claim),
      release: (record) => this.#lifecycle.release(record),
      claimLost: (record, reason) => {
        const run = record.run;
        if (run !== null && !run.finished) this.#executor.abandon(run, new ClaimLostError(record.id, reason));
        this.#lifecycle.lose(record, reason);
      },
      rejected: (record, error) => this.#lifecycle.fail(record, error, TaskStatus.FAILED),
      cancelRequested: (taskId, reason) => {
        const record = this.#table.live(taskId);
        if (record !== undefined && this.#source.holds(record)) this.#lifecycle.cancel(record, reason, false);
      },
      resync: (taskId, node) => {
        const record = this.#table.live(taskId);
        if (record !== undefined) this.#relay?.resync(record, node);
      },
      remote: (update) => this.#applyRemote(update),
      capabilitySets: () => this.#directory.admittingCapabilitySets(),
      agentsJson: () => JSON.stringify(this.#directory.list().map((agent) => ({ agentId: agent.agentId, capabilities: agent.capabilities, maxConcurrent: agent.maxConcurrent }))),
      running: () => this.#pool.busy,
      freeSlots: () => Math.min(this.#pool.room, this.#directory.freeSlots()),
      live: (taskId) => this.#table.live(taskId),
    };
  }

  /** The record of a task claimed from the shared store: the live one of a task submitted here, else a new one. */
  #adopt(claim: ClaimedTask): TaskRecord {
    const local = this.#table.live(claim.id);
    let record: TaskRecord;
    // A live record with no run going on here: one submitted or observed here, one whose claim here
    // was lost, or one whose outcome under that claim is still being written (and will be refused).
    if (local !== undefined && (local.run === null || local.run.finished)) {
      record = local;
    } else {
      const spec = { ...(claim.options as Partial<TaskSpec>), id: claim.id, type: claim.type, priority: claim.priority as TaskPriority, capabilities: claim.capabilities, payload: claim.payload, metadata: claim.metadata, waitForAgent: true };
      record = new TaskRecord(this.#runHost, spec, this.#defaults, this.#source.lane(signatureKey(claim.capabilities)), this.#table.nextSeq(), null);
      record.traceContext = claim.trace;
      this.#table.add(record, true);
    }
    record.claims++;
    // The claim counted the attempt it starts; the executor counts it again when it starts the run.
    record.attempt = claim.attempt - 1;
    record.status = TaskStatus.QUEUED;
    if (claim.checkpoint !== null) this.#checkpoints.restore(claim.id, claim.checkpoint.state);
    return record;
  }

  /** A transition another process made, of a task watched here. */
  #applyRemote(update: RemoteUpdate): void {
    const record = this.#table.live(update.taskId);
    // An ended task ignores late news: a reaper's notice that it was queued again may arrive after this process claimed and completed it.
    if (record === undefined || this.#source.holds(record) || isEnded(record)) return;
    switch (update.kind) {
      case 'started':
        this.#lifecycle.remoteStarted(record, update.agentId, update.workerId, update.attempt, update.nodeId);
        return;
      case 'progress':
        if (!this.#progress.remote(record, update.sequence, update.agentId, update.timestamp, update.delta, update.state) && record.remote !== null) {
          // Updates were missed: the running node sends the state again.
          this.#shared?.publish(record.remote.nodeId, { k: 'w', i: record.id, n: this.nodeId });
        }
        return;
      case 'retrying':
        this.#lifecycle.remoteRetrying(record, update.attempt, update.delay, deserializeError(update.error));
        return;
      case 'requeued':
        this.#lifecycle.remoteRequeued(record, update.attempt);
        return;
      case 'preempted':
        this.#lifecycle.remotePreempted(record, update.attempt, update.by, update.agentId, update.preemptions);
        return;
      case 'ended': {
        const outcome = update.status === TaskStatus.COMPLETED ? update.result : update.status === TaskStatus.CANCELLED ? (update.error?.message ?? 'cancelled') : deserializeError(update.error ?? { name: 'Error', message: 'failed', stack: undefined, props: {} });
        this.#lifecycle.remoteEnded(record, update.status, outcome, update);
        return;
      }
      case 'missing':
        this.#lifecycle.remoteEnded(record, TaskStatus.FAILED, new TaskNotFoundError(update.taskId), { attempts: 0, agentId: null, workerId: null, duration: 0 });
        return;
    }
  }

  /** The pool's threads report to the executor, which exists only once the pool does. */
  #threadHost(): ThreadHost<TaskRun> {
    return {
      threadResult: (run, ok, value) => this.#executor.threadResult(run, ok, value),
      threadRefused: (run, error) => this.#executor.threadRefused(run, error),
      threadProgress: (run, state) => this.#executor.threadProgress(run, state),
      threadCheckpoint: (run, state) => this.#executor.threadCheckpoint(run, state),
      threadExited: (worker, current, lost, unstarted, error) => this.#executor.threadExited(worker, current, lost, unstarted, error),
      threadReturned: (runs) => this.#executor.threadReturned(runs),
    };
  }

  // Lifecycle

  start(recover: boolean): Promise<void> {
    if (this.#state === 'running') return COMMITTED;
    if (this.#state !== 'created') return Promise.reject(new OrchestratorShutdownError());
    return (this.#opening ??= this.#open(recover));
  }

  async #open(recover: boolean): Promise<void> {
    try {
      await this.#store.open();
    } catch (error) {
      this.#opening = null;
      // shutdown() closed the store while it opened: that, not the store, is why start() failed.
      if (this.#state !== 'created') throw new OrchestratorShutdownError({ cause: error });
      throw error;
    }
    this.#opened = true;
    // shutdown() came while the store opened.
    if (this.#state !== 'created') throw new OrchestratorShutdownError();
    // A shared store needs no recovery at start: a dead node's claims expire and a live node re-queues them.
    if (this.#store.durable && !this.#source.shared) await this.#recover(recover);
    if (this.#state !== 'created') throw new OrchestratorShutdownError();
    this.#state = 'running';
    this.#startedAt = Date.now();
    this.#source.enforceServability();
    this.#checkpoints.start();
    this.#dispatcher.enabled = true;
    if (this.events.has('orchestrator:started')) this.events.emit('orchestrator:started', { timestamp: this.#startedAt });
    this.#dispatcher.schedule();
  }

  /**
   * Queues again the tasks previous processes left unfinished (never those of a process still
   * alive on the same store), with their attempt count (a run that was cut short counts) and
   * latest checkpoint. They wait for an agent: agents are usually registered after `start()`.
   * A row that cannot be read is dead-lettered with a StoreError naming it; the others run.
   * Without `claim` (start({ recover: false })) only the dead letters are loaded.
   */
  async #recover(claim: boolean): Promise<void> {
    const [deadLetters, unfinished] = await Promise.all([this.#store.listDeadLetters(), claim ? this.#store.claimUnfinished() : { tasks: [], unreadable: [] }]);
    for (const entry of deadLetters) {
      this.#source.restoreDeadLetter({
        taskId: entry.taskId,
        type: entry.row.type,
        spec: specOf(entry.row),
        error: deserializeError(entry.error),
        code: entry.code,
        attempts: entry.attempts,
        failedAt: entry.failedAt,
      });
    }
    for (const bad of unfinished.unreadable) this.#recoverUnreadable(bad);
    for (const { row, checkpoint } of unfinished.tasks) {
      if (this.#table.hasLive(row.id)) continue;
      const record = this.#newRecord({ ...specOf(row), waitForAgent: true }, null);
      record.attempt = row.attempt;
      if (checkpoint !== null) this.#checkpoints.restore(row.id, checkpoint.state);
      const crashed =
        row.status === TaskStatus.RUNNING && record.attempt >= record.retry.maxAttempts
          ? new WorkerCrashedError(record.id, 'a previous process', `died while running it (attempt ${record.attempt} of ${record.retry.maxAttempts})`)
          : null;
      this.#lifecycle.recover(record, row.status, checkpoint !== null, crashed);
    }
  }

  #recoverUnreadable(bad: UnreadableTask): void {
    const priority = Number.isInteger(bad.priority) && bad.priority >= 0 && bad.priority <= 4 ? (bad.priority as TaskPriority) : TaskPriority.NORMAL;
    const record = this.#newRecord({ id: bad.id, type: bad.type, priority, waitForAgent: true }, null);
    record.attempt = bad.attempt;
    this.#lifecycle.recover(record, bad.status, false, Object.assign(bad.error, { retryable: false }));
  }

  shutdown(graceful: boolean, timeoutMs: number): Promise<void> {
    return (this.#shutdown ??= this.#stop(graceful, timeoutMs));
  }

  async #stop(graceful: boolean, timeoutMs: number): Promise<void> {
    const wasRunning = this.#state === 'running';
    this.#state = 'draining';
    this.#source.rejectWaiters();
    if (graceful && wasRunning && this.#table.liveCount > 0) await this.#drainedOrTimeout(timeoutMs);
    this.#checkpoints.stop();
    this.#telemetry?.close();
    // A durable store keeps what did not finish here, for the next start() or (shared) for the
    // other nodes: the tasks end in this process only. Before the store opened, nothing is kept.
    const keepInStore = this.#store.durable && this.#opened;
    const reason = !keepInStore
      ? this.#store.durable
        ? 'the orchestrator shut down before start() opened its store; the task was not kept'
        : 'the orchestrator shut down'
      : this.#source.shared
        ? 'the orchestrator shut down; the task stays with the cluster'
        : 'the orchestrator shut down; the task stays in the store for the next start()';
    // Rows are taken when a batch commits: commit the unfinished states (flush() commits at once,
    // its promise only reports) before they turn to cancelled here.
    const committed = keepInStore && this.#opened ? this.#store.flush() : COMMITTED;
    let cancelled = 0;
    for (const record of [...this.#table.liveTasks()]) if (this.#lifecycle.cancel(record, reason, keepInStore)) cancelled++;
    await this.#source.close();
    let storeFailure: unknown = null;
    await committed.catch((error: unknown) => (storeFailure = error));
    this.#state = 'stopped';
    this.#dispatcher.enabled = false;
    this.#executor.stop();
    this.#directory.close();
    await this.#pool.close();
    if (this.events.has('orchestrator:shutdown')) this.events.emit('orchestrator:shutdown', { graceful, cancelled, timestamp: Date.now() });
    this.events.removeAll();
    this.#table.close();
    await this.#store.close().catch((error: unknown) => (storeFailure ??= error));
    if (storeFailure !== null) throw storeFailure;
  }

  /** Waits for the tasks this process holds (all live ones, unless the store is shared) to end, or the timeout. */
  #drainedOrTimeout(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      void this.#source.drained().then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  get acceptingWork(): boolean {
    return this.#state === 'created' || this.#state === 'running';
  }

  /** Resolves once every write so far is committed to the store (at once before start(), and for the memory store). */
  flush(): Promise<void> {
    return this.#opened ? this.#store.flush() : COMMITTED;
  }

  // Agents

  registerAgent(spec: AgentSpec): AgentInfo {
    if (this.#state === 'stopped') throw new OrchestratorShutdownError();
    const info = this.#directory.register(parseAgentSpec(spec)).info();
    this.#shared?.agentsChanged();
    return info;
  }

  /** Running tasks of the agent finish; queued tasks route elsewhere or, with no capable agent left, fail. */
  unregisterAgent(agentId: string): void {
    const touched = this.#directory.unregister(requireId(agentId, 'agentId'));
    this.#source.agentsLeft(touched);
    this.#shared?.agentsChanged();
  }

  getAgent(agentId: string): AgentInfo | undefined {
    return this.#directory.get(agentId)?.info();
  }

  listAgents(): AgentInfo[] {
    return this.#directory.list();
  }

  resetCircuit(agentId: string): void {
    this.#directory.resetCircuit(requireId(agentId, 'agentId'));
  }

  isolateAgent(agentId: string): void {
    this.#directory.isolate(requireId(agentId, 'agentId'));
  }

  // Submitting

  submit(spec: TaskSpec): TaskObservable {
    if (!this.acceptingWork) throw new OrchestratorShutdownError();
    validateTaskSpec(spec);
    if (this.#source.full) throw new QueueFullError(this.#source.maxSize);
    return this.#admit(spec);
  }

  async submitAsync(spec: TaskSpec, signal: AbortSignal | undefined): Promise<TaskObservable> {
    validateTaskSpec(spec);
    for (;;) {
      if (!this.acceptingWork) throw new OrchestratorShutdownError();
      if (!this.#source.full) {
        let observable: TaskObservable;
        try {
          observable = this.#admit(spec);
        } catch (error) {
          // The room this caller was woken for goes to the next waiter.
          this.#source.passRoom();
          throw error;
        }
        // On a shared store the task is in the table (committed) when this resolves.
        if (this.#shared !== null) await this.#shared.queued(observable as TaskRecord);
        return observable;
      }
      await this.#source.waitForRoom(signal);
    }
  }

  #admit(spec: TaskSpec): TaskObservable {
    if (spec.id !== undefined && this.#table.hasLive(spec.id)) throw new DuplicateTaskError(spec.id);
    const record = this.#newRecord(spec, captureScope());
    this.#lifecycle.submit(record, spec.id !== undefined);
    return record;
  }

  /** A task record in its lane; refuses a payload its agents could not receive or the store could not keep. */
  #newRecord(spec: TaskSpec, asyncScope: AsyncResource | null): TaskRecord {
    const lane = this.#source.lane(signatureKey(spec.capabilities ?? NO_CAPABILITIES));
    let payloadJson: string | null | undefined;
    try {
      if (spec.payload !== undefined && lane.key.threadAgents > 0) assertCloneable(spec);
      payloadJson = this.#store.durable ? storableJson(spec) : undefined;
    } catch (error) {
      // No task holds a lane made for a refused one.
      this.#source.laneIdle(lane);
      throw error;
    }
    const record = new TaskRecord(this.#runHost, spec, this.#defaults, lane, this.#table.nextSeq(), asyncScope);
    record.payloadJson = payloadJson;
    return record;
  }

  /**
   * Cancels a live task wherever it is; false when it is not live. On a shared store, a task this
   * process does not hold is cancelled in the table, or on the node that runs it.
   */
  cancel(taskId: string, reason: string): boolean | Promise<boolean> {
    const record = this.#table.live(requireId(taskId, 'taskId'));
    if (typeof reason !== 'string') throw new InvalidArgumentError('reason', 'must be a string');
    const shared = this.#shared;
    if (shared === null || (record !== undefined && shared.isHere(record))) return record !== undefined && this.#lifecycle.cancel(record, reason, false);
    return shared.cancelElsewhere(taskId, reason).then((was) => {
      // Cancelled in the table: so it is here at once (a running one ends when its node has stopped it).
      // No other node counts it: counted here, with its event.
      if (was === 'queued' && record !== undefined && this.#lifecycle.remoteEnded(record, TaskStatus.CANCELLED, reason, { attempts: record.attempt, agentId: null, workerId: null, duration: 0 })) this.#counters.cancelled();
      return was !== null;
    });
  }

  /** Resolves once no task is queued, running or waiting for a retry. */
  onIdle(): Promise<void> {
    return this.#table.onIdle();
  }

  // Progress, checkpoints, the event stream

  /** The orchestrator-wide stream; history is kept from the first call on. */
  streamEvents(options: EventStreamOptions): AsyncIterableIterator<OrchestratorStreamItem> {
    const streaming = this.options.streaming;
    this.#eventLog ??= new EventLog(
      this.events,
      streaming.eventHistory,
      streaming.backpressureThreshold,
      (error) => this.reportListenerError(error, 'events'),
      this.#state === 'stopped',
    );
    return this.#eventLog.stream(options);
  }

  /**
   * A live task, or a finished one still retained. On a shared store, any task of the cluster:
   * an observable that follows it from now on (and errors with TaskNotFoundError if there is none).
   */
  observe(taskId: string): TaskObservable | undefined {
    const known = this.#table.find(taskId);
    if (known !== undefined || this.#shared === null || this.#state !== 'running') return known;
    const record = new TaskRecord(this.#runHost, { id: taskId, type: '', waitForAgent: true }, this.#defaults, this.#source.lane(''), this.#table.nextSeq(), null);
    this.#table.add(record, true);
    this.#shared.watch(record).catch((error: unknown) => this.#reportStoreError(error));
    return record;
  }

  checkpointTask(taskId: string, state: unknown): Promise<void> {
    // Inside a handler a state JSON cannot carry is a TypeError; from the caller it is a bad argument.
    const badState = (error: unknown) => {
      throw error instanceof TypeError ? new InvalidArgumentError('state', error.message) : error;
    };
    const record = this.#table.live(taskId);
    if (record !== undefined) return this.#checkpoints.save(record, state, record.run?.agent.agentId ?? null, record.attempt, false).catch(badState);
    return this.#source.isDeadLetter(taskId).then((dead) => {
      if (!dead) throw new TaskNotFoundError(taskId);
      return this.#checkpoints.save({ id: taskId }, state, null, null, false).catch(badState);
    });
  }

  resumeFromCheckpoint(taskId: string): unknown {
    return this.#checkpoints.latest(taskId);
  }

  history(taskId: string): Promise<AuditEvent[]> {
    return this.#store.history(requireId(taskId, 'taskId'));
  }

  audit(query: unknown): Promise<AuditEvent[]> {
    return this.#store.audit(parseAuditQuery(query));
  }

  // Dead letters

  deadLetters(): Promise<DeadLetter[]> {
    // A durable store's dead letters are loaded by start(): before it the store's read rejects
    // (StoreError, as history() and audit() do) instead of an empty list that would be untrue.
    if (this.#store.durable && !this.#opened) return this.#store.listDeadLetters().then(() => []);
    return this.#source.deadLetters();
  }

  async requeueDeadLetter(taskId: string, waitForAgent: boolean): Promise<TaskObservable> {
    requireId(taskId, 'taskId');
    if (!this.acceptingWork) throw new OrchestratorShutdownError();
    const entry = await this.#source.takeDeadLetter(taskId);
    if (entry === undefined) throw new TaskNotFoundError(taskId);
    try {
      const observable = this.submit(waitForAgent ? { ...entry.spec, waitForAgent: true } : entry.spec);
      this.#journal.requeuedDeadLetter(taskId);
      return observable;
    } catch (error) {
      this.#source.restoreDeadLetter(entry);
      throw error;
    }
  }

  // Inspection

  getTask(taskId: string): TaskInfo | undefined {
    const record = this.#table.find(taskId);
    return record === undefined ? undefined : taskInfo(record);
  }

  /** A task with its payload and outcome: a live or retained one, else (durable stores) its stored row. */
  async findTask(taskId: string): Promise<TaskDetails | undefined> {
    const record = this.#table.find(requireId(taskId, 'taskId'));
    if (record !== undefined) return taskDetails(record.toRow(), record);
    if (!this.#store.durable || !this.#opened) return undefined;
    const row = await this.#store.findTask(taskId);
    return row === undefined ? undefined : taskDetails(row, undefined);
  }

  /** Tasks matching `query`, newest first: live and retained ones, and (durable stores) stored rows. */
  async listTasks(query: unknown): Promise<TaskInfo[]> {
    const parsed = parseTaskQuery(query);
    const limit = parsed.limit ?? 100;
    const matches = (status: TaskStatus, type: string) => (parsed.status === undefined || parsed.status.includes(status)) && (parsed.type === undefined || parsed.type === type);
    const out: TaskInfo[] = [];
    const seen = new Set<string>();
    const live = [...this.#table.liveTasks()].sort((a, b) => b.seq - a.seq);
    for (const record of [...live, ...this.#table.recentTasks()]) {
      if (out.length >= limit) return out;
      if (!matches(record.status, record.type) || seen.has(record.id)) continue;
      seen.add(record.id);
      out.push(taskInfo(record));
    }
    if (!this.#store.durable || !this.#opened) return out;
    for (const row of await this.#store.listTasks(parsed)) {
      if (out.length >= limit) break;
      if (seen.has(row.id)) continue;
      seen.add(row.id);
      out.push(taskInfo(row));
    }
    return out;
  }

  getStats(): OrchestratorStats {
    return buildStats({
      counts: this.#counters.counts,
      uptime: this.#state === 'created' ? 0 : Date.now() - this.#startedAt,
      checkpoints: this.#checkpoints.count,
      store: this.#store.kind,
      pool: this.#pool,
      source: this.#source,
      directory: this.#directory,
      cluster: this.#shared?.cluster,
      eventSequence: this.#eventLog?.sequence ?? 0,
    });
  }

  reportListenerError(error: unknown, event: PropertyKey): void {
    if (event !== 'listener:error' && this.events.has('listener:error')) {
      this.events.emit('listener:error', { event: String(event), error });
    } else {
      process.emitWarning(`a listener of '${String(event)}' threw: ${coerceError(error).message}`, 'ParallelOrchestratorWarning');
    }
  }

  #reportStoreError(error: unknown): void {
    const failure = coerceError(error);
    if (this.events.has('store:error')) this.events.emit('store:error', { error: failure });
    else process.emitWarning(failure.message, 'ParallelOrchestratorWarning');
  }
}

/** A durable store keeps the task as JSON: a payload or metadata JSON cannot carry is refused now, not lost at commit. @throws InvalidTaskError */
function storableJson(spec: TaskSpec): string | null {
  let field: 'payload' | 'metadata' = 'metadata';
  try {
    JSON.stringify(spec.metadata);
    field = 'payload';
    return JSON.stringify(spec.payload) ?? null;
  } catch (error) {
    throw new InvalidTaskError(field, `of task ${spec.id ?? spec.type} cannot be stored as JSON: ${(error as Error).message}`, { cause: error });
  }
}

/** A payload that a worker thread will receive must survive structured cloning. @throws InvalidTaskError */
function assertCloneable(spec: TaskSpec): void {
  try {
    structuredClone(spec.payload);
  } catch (error) {
    throw new InvalidTaskError('payload', `of task ${spec.id ?? spec.type} cannot be cloned for a worker thread: ${(error as Error).message}`, { cause: error });
  }
}

/** The spec to submit a stored task again. */
function specOf(row: TaskRow): TaskSpec {
  return {
    ...(row.options as Partial<TaskSpec>),
    id: row.id,
    type: row.type,
    priority: row.priority as TaskPriority,
    capabilities: row.capabilities,
    payload: row.payload,
    metadata: row.metadata,
  };
}
