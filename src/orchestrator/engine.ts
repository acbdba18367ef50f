import { randomBytes } from 'node:crypto';
import { TaskPriority, TaskStatus, type AgentRole } from '../enums.js';
import {
  AgentNotFoundError,
  DuplicateAgentError,
  DuplicateTaskError,
  NoCapableAgentError,
  OrchestratorShutdownError,
  InvalidOptionsError,
  InvalidTaskError,
  QueueFullError,
  TaskCancelledError,
  TaskNotFoundError,
  TaskTimeoutError,
  WorkerCrashedError,
  coerceError,
  errorCode,
  isRetryable,
} from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import { retryDelay } from '../queue/backoff.js';
import { DeadLetterQueue } from '../queue/dead-letter-queue.js';
import { Lane } from '../queue/lane.js';
import { TaskQueue } from '../queue/task-queue.js';
import { CircuitBreaker } from '../resilience/circuit-breaker.js';
import { DeadlineScheduler } from '../resilience/deadlines.js';
import { StartRateLimiter } from '../resilience/rate-limiter.js';
import { Agent } from '../routing/agent.js';
import { AgentRouter } from '../routing/agent-router.js';
import { signatureKey, type CapabilitySignature } from '../routing/capability-signature.js';
import { createStore } from '../persistence/index.js';
import type { AuditEvent, AuditQuery, AuditSubject, Store, TaskRow } from '../persistence/store.js';
import { EventLog } from '../streaming/event-log.js';
import { cloneJson } from '../streaming/json.js';
import { ProgressStream } from '../streaming/progress-stream.js';
import type { TaskObservable } from '../streaming/task-observable.js';
import { Emitter } from '../util/emitter.js';
import { HealthMonitor } from '../workers/health-monitor.js';
import { deserializeError, type SerializedError } from '../workers/protocol.js';
import type { ThreadHost, ThreadWorker } from '../workers/thread-worker.js';
import { WorkerPool, type InlineWorker } from '../workers/worker-pool.js';
import type {
  AgentHandler,
  AgentInfo,
  AgentSpec,
  CompleteEvent,
  DeadLetter,
  EventStreamOptions,
  OrchestratorEvents,
  OrchestratorStreamItem,
  TaskSpec,
} from '../types.js';
import { CircuitState } from '../enums.js';
import { parseAgentSpec } from './agent-spec.js';
import type { OrchestratorStats, TaskInfo } from './stats.js';
import { NO_CAPABILITIES, TaskRecord, TaskRun, type RunHost, type TaskDefaults } from './task-record.js';
import { Journal } from './journal.js';
import { LiveTasks } from './live-tasks.js';
import { RecentTasks } from './recent-tasks.js';
import { validateTaskSpec } from './task-spec.js';

type Lifecycle = 'created' | 'running' | 'draining' | 'stopped';

const DEAD_LETTER_LIMIT = 10_000;
const COMMITTED: Promise<void> = Promise.resolve();
const now = (): number => performance.now();
const PRUNE_EVERY_MS = 3_600_000;
const DEFAULT_RETAIN_FINISHED_MS = 7 * 24 * 3_600_000;

/**
 * The in-process engine behind `ParallelOrchestrator`.
 *
 * Dispatch is event-driven: `pump()` runs on a microtask after submits (never inside `submit`)
 * and synchronously whenever a slot frees. Each pass starts tasks while the pool has room and
 * some queued task has an available agent, so there is no polling timer at all.
 *
 * Task lifecycle (see TaskStatus): queued → running → completed | failed | timeout | cancelled;
 * a failed attempt with retries left goes running → retrying → queued. Every task reaches
 * exactly one final state, recorded by `#finish`.
 */
export class Engine implements RunHost, ThreadHost<TaskRun> {
  readonly options: ResolvedOptions;
  readonly events: Emitter<OrchestratorEvents>;
  readonly #router: AgentRouter;
  readonly #queue: TaskQueue<TaskRecord, CapabilitySignature>;
  readonly #pool: WorkerPool<TaskRun>;
  readonly #health: HealthMonitor<TaskRun>;
  readonly #deadlines = new DeadlineScheduler(now);
  // An evicted dead letter can no longer be requeued: its checkpoint goes with it (a durable store keeps both).
  readonly #deadLetters = new DeadLetterQueue(DEAD_LETTER_LIMIT, (entry) => this.#checkpoints.delete(entry.taskId));
  readonly #lanes = new Map<string, Lane<TaskRecord, CapabilitySignature>>();
  readonly #live: LiveTasks<TaskRecord>;
  readonly #recent: RecentTasks<TaskRecord>;
  #eventLog: EventLog | null = null;
  /** Latest checkpoint of each live task (the store holds them durably). */
  readonly #checkpoints = new Map<string, unknown>();
  readonly #store: Store;
  readonly #journal: Journal;
  /**
   * Recovered tasks not started yet: their start is committed before their handler runs, so a
   * task that crashes the process again has that attempt counted, and its attempts run out.
   */
  readonly #recoveredUnstarted = new Set<TaskRecord>();
  /** Running tasks whose progress changed since the last automatic checkpoint. */
  readonly #progressed = new Set<TaskRecord>();
  #checkpointTimer: NodeJS.Timeout | null = null;
  #pruneTimer: NodeJS.Timeout | null = null;
  #opening: Promise<void> | null = null;
  readonly #defaults: TaskDefaults;

  get taskDefaults(): TaskDefaults {
    return this.#defaults;
  }
  readonly #idleWaiters: (() => void)[] = [];
  #lifecycle: Lifecycle = 'created';
  #shutdown: Promise<void> | null = null;
  #seq = 0;
  #pumpScheduled = false;
  #pumping = false;
  #pumpAgain = false;
  #startedAt = Date.now();
  /** Tasks waiting out a retry delay, with the timer that requeues each. */
  readonly #retryTimers = new Map<TaskRecord, NodeJS.Timeout>();
  readonly #counts = { submitted: 0, completed: 0, failed: 0, cancelled: 0, timeouts: 0, retries: 0, deadLettered: 0, checkpoints: 0, recovered: 0, failedAttempts: 0, durationTotal: 0 };

  constructor(options: ResolvedOptions) {
    this.options = options;
    this.#live = new LiveTasks(`${randomBytes(4).toString('hex')}-`);
    this.#recent = new RecentTasks(options.streaming.retainCompletedMax, options.streaming.retainCompletedMs, now);
    this.#store = createStore(options.store, options.audit, (error) => {
      if (this.events.has('store:error')) this.events.emit('store:error', { error });
      else process.emitWarning(error.message, 'ParallelOrchestratorWarning');
    });
    this.#journal = new Journal(this.#store, options.audit.enabled);
    this.events = new Emitter<OrchestratorEvents>((error, event) => this.reportListenerError(error, event));
    this.#router = new AgentRouter(options.workerPool.assignmentStrategy);
    this.#queue = new TaskQueue(options.taskQueue.maxSize, options.taskQueue.agingMs);
    this.#pool = new WorkerPool(options.workerPool, this);
    this.#health = new HealthMonitor(options.workerPool.healthCheckInterval, options.workerPool.stuckGrace, (run) => this.#onStuck(run));
    const taskOptions = { timeout: options.taskQueue.defaultTimeout, retry: options.taskQueue.retry, preferredRole: undefined, waitForAgent: false };
    this.#defaults = {
      priority: options.taskQueue.defaultPriority,
      options: taskOptions,
      waitingOptions: { ...taskOptions, waitForAgent: true },
    };
  }

  // ── lifecycle ────────────────────────────────────────────────────────────

  start(): Promise<void> {
    if (this.#lifecycle === 'running') return COMMITTED;
    if (this.#lifecycle !== 'created') return Promise.reject(new OrchestratorShutdownError());
    return (this.#opening ??= this.#open());
  }

  async #open(): Promise<void> {
    try {
      await this.#store.open();
    } catch (error) {
      this.#opening = null;
      throw error;
    }
    // shutdown() came while the store opened.
    if (this.#lifecycle !== 'created') throw new OrchestratorShutdownError();
    if (this.#journal.durable) {
      this.#recover();
      this.#pruneFinished();
      this.#pruneTimer = setInterval(() => this.#pruneFinished(), PRUNE_EVERY_MS);
      this.#pruneTimer.unref();
    }
    this.#lifecycle = 'running';
    this.#startedAt = Date.now();
    const checkpointing = this.options.checkpointing;
    if (checkpointing.enabled) {
      this.#checkpointTimer = setInterval(() => this.#checkpointProgress(), checkpointing.interval);
      this.#checkpointTimer.unref();
    }
    if (this.events.has('orchestrator:started')) this.events.emit('orchestrator:started', { timestamp: this.#startedAt });
    this.#schedulePump();
  }

  /** Deletes the rows of tasks that finished more than `store.retainFinishedMs` ago. */
  #pruneFinished(): void {
    const store = this.options.store;
    const retainMs = (store.type === 'sqlite' ? store.retainFinishedMs : undefined) ?? DEFAULT_RETAIN_FINISHED_MS;
    try {
      this.#store.pruneFinished(Date.now() - retainMs);
    } catch (error) {
      this.reportListenerError(error, 'store');
    }
  }

  /** Resolves once every write so far is committed to the store (at once for the memory store). */
  flush(): Promise<void> {
    return this.#lifecycle === 'created' ? COMMITTED : this.#store.flush();
  }

  /**
   * Queues again the tasks a previous process left unfinished, with their attempt count (a run
   * that was cut short counts) and latest checkpoint. They wait for an agent: agents are usually
   * registered after `start()`.
   */
  #recover(): void {
    for (const entry of this.#store.listDeadLetters()) {
      const error = deserializeError(entry.error);
      this.#deadLetters.add({ taskId: entry.taskId, type: entry.row.type, spec: specOf(entry.row), error, code: entry.code, attempts: entry.attempts, failedAt: entry.failedAt });
    }
    for (const row of this.#store.unfinishedTasks()) {
      if (this.#live.has(row.id)) continue;
      const spec = { ...specOf(row), waitForAgent: true };
      const key = signatureKey(spec.capabilities ?? NO_CAPABILITIES);
      const lane = this.#lanes.get(key) ?? this.#createLane(key);
      const record = new TaskRecord(this, spec, this.#defaults, lane, ++this.#seq, this.#queue.agingMs > 0 ? now() : 0);
      record.attempt = row.attempt;
      const resumed = this.#store.hasCheckpoint(row.id);
      if (resumed) this.#checkpoints.set(row.id, this.#store.loadCheckpoint(row.id));
      this.#live.add(record, true);
      this.#counts.submitted++;
      this.#counts.recovered++;
      this.#journal.recovered(record, row.status, resumed);
      // The run the crash cut short used up the last attempt: it may be what crashes the process.
      if (row.status === TaskStatus.RUNNING && record.attempt >= record.retry.maxAttempts) {
        this.#fail(record, new WorkerCrashedError(record.id, 'a previous process', `died while running it (attempt ${record.attempt} of ${record.retry.maxAttempts})`), TaskStatus.FAILED);
        continue;
      }
      this.#recoveredUnstarted.add(record);
      this.#enqueue(record);
    }
  }

  shutdown(graceful: boolean, timeoutMs: number): Promise<void> {
    return (this.#shutdown ??= this.#stop(graceful, timeoutMs));
  }

  async #stop(graceful: boolean, timeoutMs: number): Promise<void> {
    const wasRunning = this.#lifecycle === 'running';
    this.#lifecycle = 'draining';
    this.#queue.rejectWaiters();
    if (graceful && wasRunning && this.#live.size > 0) await this.#idleOrTimeout(timeoutMs);
    let cancelled = 0;
    if (this.#checkpointTimer !== null) clearInterval(this.#checkpointTimer);
    if (this.#pruneTimer !== null) clearInterval(this.#pruneTimer);
    this.#checkpointTimer = this.#pruneTimer = null;
    // Forced, on a durable store: the tasks stop here but stay unfinished in the store, so the next start() runs them again.
    const keepInStore = this.#journal.durable && !graceful;
    const reason = keepInStore ? 'the orchestrator shut down; the task stays in the store for the next start()' : 'the orchestrator shut down';
    // Rows are taken when a batch commits: commit the unfinished states (flush() commits at once,
    // its promise only reports) before they turn to cancelled here.
    const committed = keepInStore && wasRunning ? this.#store.flush() : COMMITTED;
    for (const record of [...this.#live.values()]) if (this.#cancel(record, reason, keepInStore)) cancelled++;
    let storeFailure: unknown = null;
    await committed.catch((error: unknown) => (storeFailure = error));
    this.#lifecycle = 'stopped';
    this.#deadlines.clear();
    this.#health.stop();
    for (const agent of this.#router.agents()) this.#disposeAgent(agent);
    await this.#pool.close();
    if (this.events.has('orchestrator:shutdown')) {
      this.events.emit('orchestrator:shutdown', { graceful, cancelled, timestamp: Date.now() });
    }
    this.events.removeAll();
    this.#recent.clear();
    await this.#store.close();
    if (storeFailure !== null) throw storeFailure;
  }

  #idleOrTimeout(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const waiter = () => done();
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#idleWaiters.push(waiter);
    });
  }

  get acceptingWork(): boolean {
    return this.#lifecycle === 'created' || this.#lifecycle === 'running';
  }

  // ── agents ───────────────────────────────────────────────────────────────

  registerAgent(spec: AgentSpec): AgentInfo {
    if (this.#lifecycle === 'stopped') throw new OrchestratorShutdownError();
    const parsed = parseAgentSpec(spec);
    if (this.#router.get(parsed.agentId) !== undefined) throw new DuplicateAgentError(parsed.agentId);
    const breakerOptions = this.options.circuitBreaker;
    let agent: Agent | null = null;
    const breaker = breakerOptions.enabled ? new CircuitBreaker(breakerOptions, (transition) => this.#onCircuitChange(agent!, transition.from, transition.to)) : null;
    const limiter = parsed.rateLimit === undefined ? null : new StartRateLimiter(parsed.rateLimit, now);
    agent = new Agent(parsed.agentId, parsed.role, parsed.capabilities, parsed.maxConcurrent, parsed.execution, breaker, limiter);
    this.#router.register(agent);
    if (this.events.has('agent:registered')) {
      this.events.emit('agent:registered', { agentId: agent.agentId, role: agent.role, capabilities: agent.capabilities });
    }
    this.#schedulePump();
    return agent.info();
  }

  /** Running tasks of the agent finish; queued tasks route elsewhere or, with no capable agent left, fail. */
  unregisterAgent(agentId: string): void {
    const agent = this.#router.get(agentId);
    if (agent === undefined) throw new AgentNotFoundError(agentId);
    agent.registered = false;
    this.#disposeAgent(agent);
    const orphaned = this.#router.unregister(agent).filter((signature) => signature.agents.length === 0);
    for (const signature of orphaned) {
      const lane = this.#lanes.get(signature.key);
      if (lane === undefined) continue;
      for (const record of [...this.#live.values()]) {
        if (record.lane === lane && record.inQueue && !record.waitForAgent) {
          this.#unqueue(record);
          this.#fail(record, new NoCapableAgentError(record.id, signature.capabilities), TaskStatus.FAILED);
        }
      }
    }
    if (this.events.has('agent:unregistered')) this.events.emit('agent:unregistered', { agentId });
  }

  getAgent(agentId: string): AgentInfo | undefined {
    return this.#router.get(agentId)?.info();
  }

  /** Closes an agent's circuit by hand. */
  resetCircuit(agentId: string): void {
    const agent = this.#requireAgent(agentId);
    agent.breaker?.reset();
    this.#schedulePump();
  }

  /** Opens an agent's circuit by hand and holds it open until `resetCircuit`. */
  isolateAgent(agentId: string): void {
    const agent = this.#requireAgent(agentId);
    if (agent.breaker === null) throw new InvalidOptionsError('circuitBreaker.enabled', 'is false: agents have no circuit breaker to isolate');
    agent.breaker.isolate();
  }

  #requireAgent(agentId: string): Agent {
    const agent = this.#router.get(agentId);
    if (agent === undefined) throw new AgentNotFoundError(agentId);
    return agent;
  }

  #onCircuitChange(agent: Agent, from: CircuitState, to: CircuitState): void {
    agent.refreshAdmission();
    this.#journal.circuit(agent.agentId, from, to);
    if (this.events.has('agent:circuit-state')) this.events.emit('agent:circuit-state', { agentId: agent.agentId, from, to });
    if (to !== CircuitState.OPEN) this.#schedulePump();
  }

  /** Records a start against the agent's rate limit; once no further start is allowed, stops admitting until one is due. */
  #recordStart(agent: Agent, limiter: StartRateLimiter, at: number): void {
    if (limiter.recordStart(at)) return;
    agent.mayStart = false;
    agent.refreshAdmission();
    this.#armRateTimer(agent, limiter);
  }

  // Timers may fire a little early by performance.now(): re-arm until the start is really due.
  #armRateTimer(agent: Agent, limiter: StartRateLimiter): void {
    agent.rateTimer = setTimeout(() => {
      agent.rateTimer = null;
      if (!agent.registered) return;
      if (!limiter.canStart) return this.#armRateTimer(agent, limiter);
      agent.mayStart = true;
      agent.refreshAdmission();
      this.#schedulePump();
    }, Math.max(1, Math.ceil(limiter.msUntilStart)));
  }

  /** A half-open breaker admits again once a probe ends without closing or reopening it. */
  #afterBreakerVerdict(agent: Agent): void {
    if (agent.breaker!.state !== CircuitState.HALF_OPEN || agent.admitting) return;
    agent.refreshAdmission();
    if (agent.admitting) this.#schedulePump();
  }

  #disposeAgent(agent: Agent): void {
    agent.breaker?.dispose();
    if (agent.rateTimer !== null) clearTimeout(agent.rateTimer);
    agent.rateTimer = null;
    agent.refreshAdmission();
  }

  listAgents(): AgentInfo[] {
    return Array.from(this.#router.agents(), (agent) => agent.info());
  }

  // ── submitting ───────────────────────────────────────────────────────────

  submit(spec: TaskSpec): TaskObservable {
    if (!this.acceptingWork) throw new OrchestratorShutdownError();
    validateTaskSpec(spec);
    if (this.#queue.full) throw new QueueFullError(this.#queue.maxSize);
    return this.#admit(spec);
  }

  async submitAsync(spec: TaskSpec, signal: AbortSignal | undefined): Promise<TaskObservable> {
    validateTaskSpec(spec);
    for (;;) {
      if (!this.acceptingWork) throw new OrchestratorShutdownError();
      if (!this.#queue.full) {
        try {
          return this.#admit(spec);
        } catch (error) {
          // The room this caller was woken for goes to the next waiter.
          this.#queue.passRoom();
          throw error;
        }
      }
      await this.#queue.waitForRoom(signal);
    }
  }

  #admit(spec: TaskSpec): TaskObservable {
    const seq = this.#seq + 1;
    if (spec.id !== undefined && this.#live.has(spec.id)) throw new DuplicateTaskError(spec.id);
    const key = signatureKey(spec.capabilities ?? NO_CAPABILITIES);
    const lane = this.#lanes.get(key) ?? this.#createLane(key);
    if (spec.payload !== undefined && lane.key.threadAgents > 0) assertCloneable(spec);
    if (this.#journal.durable) assertStorable(spec);
    const record = new TaskRecord(this, spec, this.#defaults, lane, (this.#seq = seq), this.#queue.agingMs > 0 ? now() : 0);
    this.#live.add(record, spec.id !== undefined);
    this.#counts.submitted++;
    this.#journal.submitted(record);
    if (lane.key.agents.length === 0 && !record.waitForAgent) {
      // Failed on a microtask, so listeners added right after submit() see the error; unless an agent came meanwhile.
      queueMicrotask(() => {
        if (record.status !== TaskStatus.QUEUED || record.inQueue) return;
        if (lane.key.agents.length > 0) this.#enqueue(record);
        else this.#fail(record, new NoCapableAgentError(record.id, lane.key.capabilities), TaskStatus.FAILED);
      });
    } else {
      this.#enqueue(record);
    }
    if (this.events.has('task:submitted')) this.events.emit('task:submitted', { taskId: record.id, type: record.type, priority: record.priority });
    return record;
  }

  #createLane(key: string): Lane<TaskRecord, CapabilitySignature> {
    const lane = new Lane<TaskRecord, CapabilitySignature>(this.#router.signature(key));
    this.#lanes.set(key, lane);
    return lane;
  }

  #enqueue(record: TaskRecord): void {
    record.level = record.priority;
    this.#queue.push(record);
    this.#schedulePump();
  }

  #unqueue(record: TaskRecord): void {
    this.#queue.remove(record);
    record.level = -1;
  }

  generatedId(seq: number): string {
    return this.#live.generatedId(seq);
  }

  // ── dispatch ─────────────────────────────────────────────────────────────

  #schedulePump(): void {
    if (this.#pumpScheduled || this.#lifecycle === 'created' || this.#lifecycle === 'stopped') return;
    this.#pumpScheduled = true;
    queueMicrotask(this.#scheduledPump);
  }

  readonly #scheduledPump = (): void => {
    this.#pumpScheduled = false;
    this.#pump();
  };

  /** Routes a lane's head: records the chosen agent on it, or says no agent is available. */
  readonly #route = (head: TaskRecord): boolean => {
    const agent = this.#router.select(head.lane.key, head.preferredRole);
    if (agent === null) return false;
    if (agent.execution.kind === 'inline' ? !this.#pool.inlineAvailable : (head.worker = this.#pool.acquireThread()) === null) return false;
    head.agent = agent;
    return true;
  };

  #pump(): void {
    if (this.#lifecycle !== 'running' && this.#lifecycle !== 'draining') return;
    // A handler may submit, cancel or settle synchronously while we start it; run once more then.
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    const queue = this.#queue;
    const pool = this.#pool;
    do {
      this.#pumpAgain = false;
      if (queue.agingMs > 0) queue.age(now());
      while (queue.size > 0 && pool.anyAvailable) {
        const record = queue.take(this.#route);
        if (record === null) break;
        record.level = -1;
        this.#startRun(record);
      }
    } while (this.#pumpAgain);
    this.#pumping = false;
  }

  #startRun(record: TaskRecord): void {
    const agent = record.agent!;
    const execution = agent.execution;
    const worker = execution.kind === 'inline' ? this.#pool.acquireInline() : (record.worker as ThreadWorker<TaskRun>);
    agent.active++;
    let probeTicket = 0;
    if (agent.breaker !== null && agent.breaker.state !== CircuitState.CLOSED) {
      probeTicket = agent.breaker.onStart();
      agent.refreshAdmission();
    }
    const startedAt = now();
    if (agent.limiter !== null) this.#recordStart(agent, agent.limiter, startedAt);
    const attempt = ++record.attempt;
    record.status = TaskStatus.RUNNING;
    const resumeState = this.#checkpoints.size === 0 ? undefined : this.#checkpoints.get(record.id);
    const run = new TaskRun(record, agent, worker, attempt, resumeState, startedAt);
    run.probeTicket = probeTicket;
    record.run = run;
    record.worker = worker;
    if (record.timeout > 0) this.#deadlines.add(run, record.timeout);
    // A thread job gets its seq first, so a listener of 'start' that cancels it aborts the right job.
    if (execution.kind === 'thread') {
      run.threadSeq = (worker as ThreadWorker<TaskRun>).dispatch(run, { module: execution.module, task: run.task, resumeState, agentId: agent.agentId });
    }
    const events = record.events;
    if (events !== null && events.has('start')) {
      events.emit('start', { type: 'start', taskId: record.id, agentId: agent.agentId, workerId: worker.workerId, attempt, timestamp: Date.now() });
    }
    if (this.events.has('task:started')) {
      this.events.emit('task:started', { taskId: record.id, type: record.type, agentId: agent.agentId, workerId: worker.workerId, attempt });
    }
    this.#journal.started(record, agent.agentId, startedAt);
    // (A failed commit is reported as store:error and retried by the store.)
    if (this.#recoveredUnstarted.size > 0 && this.#recoveredUnstarted.delete(record)) this.#store.flush().catch(() => {});
    if (execution.kind !== 'inline') return;
    // Cancelled by a listener of 'start': the handler never runs, its slot is given back.
    if (run.finished) this.#settle(run, false, undefined);
    else void this.#execute(run, execution.handler);
  }

  async #execute(run: TaskRun, handler: AgentHandler): Promise<void> {
    let ok = true;
    let value: unknown;
    try {
      value = await handler(run.task, run);
    } catch (error) {
      ok = false;
      value = error;
    }
    this.#settle(run, ok, value);
  }

  #settle(run: TaskRun, ok: boolean, value: unknown): void {
    run.settled = true;
    if (run.deadlineBucket !== null) this.#deadlines.cancel(run);
    if (run.overdueSince !== 0) this.#health.forget(run);
    if (!run.released) this.#release(run);
    if (!run.finished) {
      run.finished = true;
      const record = run.record;
      run.duration = now() - run.startedAt;
      // A late event loop can run the handler's continuation before the deadline timer that
      // was due first: a result past the timeout is still a timeout. (Threads time their runs
      // in shared memory, and their deadline handler sees that.)
      if (ok && record.timeout > 0 && run.duration >= record.timeout && run.worker.kind === 'inline') {
        const error = new TaskTimeoutError(record.id, record.timeout);
        run.abort(error);
        this.#attemptFailed(record, run, error, TaskStatus.TIMEOUT);
      } else if (ok) this.#complete(record, run, value);
      else this.#attemptFailed(record, run, coerceError(value), TaskStatus.FAILED);
    }
    this.#pump();
  }

  #release(run: TaskRun): void {
    run.released = true;
    if (run.worker.kind === 'inline') this.#pool.releaseInline(run.worker as InlineWorker);
    run.agent.active--;
  }

  // ── worker threads ───────────────────────────────────────────────────────

  threadResult(run: TaskRun, ok: boolean, value: unknown): void {
    this.#settle(run, ok, ok ? value : deserializeError(value as SerializedError));
  }

  threadRefused(run: TaskRun, error: Error): void {
    this.#settle(run, false, error);
  }

  threadProgress(run: TaskRun, state: unknown): void {
    this.progress(run, state);
  }

  threadCheckpoint(run: TaskRun, state: unknown): Promise<void> {
    return this.checkpoint(run, state);
  }

  threadExited(worker: ThreadWorker<TaskRun>, current: TaskRun | null, lost: TaskRun[], unstarted: TaskRun[], error: Error): void {
    const crashed = !worker.retiring || current !== null;
    const replacement = this.#pool.removeThread(worker, crashed && this.#lifecycle !== 'stopped');
    if (crashed && this.#lifecycle !== 'stopped' && this.events.has('worker:failed')) {
      this.events.emit('worker:failed', { workerId: worker.workerId, error, taskId: current?.record.id });
    }
    if (replacement !== null && this.events.has('worker:replaced')) {
      this.events.emit('worker:replaced', { workerId: worker.workerId, replacementId: replacement.workerId });
    }
    if (current !== null) {
      const failure = new WorkerCrashedError(current.record.id, worker.workerId, worker.retiring ? 'was terminated' : 'died', { cause: error });
      this.#settle(current, false, failure);
    }
    // Finished in the thread, but the result went down with it: they fail (and retry per their policy).
    for (const run of lost) {
      this.#settle(run, false, new WorkerCrashedError(run.record.id, worker.workerId, 'died before sending the result', { cause: error }));
    }
    for (const run of unstarted) this.#requeueUnstarted(run);
    this.#pump();
  }

  threadReturned(runs: TaskRun[]): void {
    for (const run of runs) this.#requeueUnstarted(run);
    this.#pump();
  }

  /** A run handed to a thread that never started there goes back to the queue without using up an attempt. */
  #requeueUnstarted(run: TaskRun): void {
    this.#health.forget(run);
    if (run.deadlineBucket !== null) this.#deadlines.cancel(run);
    run.settled = true;
    if (!run.released) this.#release(run);
    if (run.finished) return;
    run.finished = true;
    const record = run.record;
    record.attempt--;
    record.run = null;
    record.status = TaskStatus.QUEUED;
    this.#enqueue(record);
  }

  /** Work still holding its worker `stuckGrace` after its timeout or cancellation. */
  #onStuck(run: TaskRun): void {
    if (run.settled) return;
    const record = run.record;
    if (this.events.has('worker:stuck')) {
      this.events.emit('worker:stuck', { workerId: run.worker.workerId, taskId: record.id, agentId: run.agent.agentId });
    }
    if (run.worker.kind === 'inline') {
      if (!run.released) this.#release(run);
      this.#pump();
    } else {
      void (run.worker as ThreadWorker<TaskRun>).terminate();
    }
  }

  /**
   * A run's deadline. For a thread job the deadline was armed when it was handed over, but its
   * timeout counts from when the thread actually started it (read from shared memory), so the
   * deadline is pushed back while the job waits behind others.
   */
  onRunDeadline(run: TaskRun): void {
    if (run.finished) return;
    const record = run.record;
    if (run.worker.kind === 'thread') {
      const job = (run.worker as ThreadWorker<TaskRun>).progressOf(run.threadSeq);
      const remaining = job.state === 'running' ? record.timeout - (now() - job.startedAt) : record.timeout;
      if (job.state !== 'running' || remaining > 0) {
        this.#deadlines.add(run, Math.max(1, Math.ceil(remaining)));
        return;
      }
    }
    run.finished = true;
    run.duration = now() - run.startedAt;
    const error = new TaskTimeoutError(record.id, record.timeout);
    this.#abortRun(run, error);
    this.#attemptFailed(record, run, error, TaskStatus.TIMEOUT);
  }

  /** Aborts an attempt that ended (timeout, cancel) while its handler still runs; watches it for being stuck. */
  #abortRun(run: TaskRun, reason: Error): void {
    run.abort(reason);
    if (run.worker.kind === 'thread') (run.worker as ThreadWorker<TaskRun>).abort(run.threadSeq, reason);
    if (!run.settled && this.#lifecycle !== 'stopped') this.#health.watch(run, now());
  }

  // ── outcomes ─────────────────────────────────────────────────────────────

  #complete(record: TaskRecord, run: TaskRun, result: unknown): void {
    record.status = TaskStatus.COMPLETED;
    record.outcome = result;
    record.duration = run.duration;
    const agent = run.agent;
    agent.completed++;
    if (agent.breaker !== null) {
      agent.breaker.onSuccess(run.probeTicket);
      this.#afterBreakerVerdict(agent);
    }
    this.#counts.completed++;
    this.#counts.durationTotal += run.duration;
    const events = record.events;
    if (events !== null && events.has('complete')) events.emit('complete', record.terminalEvent() as CompleteEvent);
    if (this.events.has('task:completed')) {
      this.events.emit('task:completed', {
        taskId: record.id,
        type: record.type,
        agentId: run.agent.agentId,
        workerId: run.worker.workerId,
        duration: run.duration,
        attempts: record.attempt,
        result,
      });
    }
    const finishedAt = run.startedAt + run.duration;
    this.#journal.completed(record, agent.agentId, finishedAt);
    this.#finish(record, finishedAt);
  }

  #attemptFailed(record: TaskRecord, run: TaskRun, error: Error, status: TaskStatus): void {
    const agent = run.agent;
    agent.failed++;
    this.#counts.failedAttempts++;
    if (agent.breaker !== null) {
      agent.breaker.onFailure(run.probeTicket);
      this.#afterBreakerVerdict(agent);
    }
    if (status === TaskStatus.TIMEOUT) this.#counts.timeouts++;
    if (isRetryable(error) && record.attempt < record.retry.maxAttempts && this.#lifecycle !== 'stopped') {
      this.#scheduleRetry(record, error);
    } else {
      this.#fail(record, error, status);
    }
  }

  #scheduleRetry(record: TaskRecord, error: Error): void {
    const attempt = record.attempt + 1;
    const delay = retryDelay(record.retry, attempt);
    record.status = TaskStatus.RETRYING;
    record.outcome = error;
    this.#counts.retries++;
    const timer = setTimeout(() => {
      this.#retryTimers.delete(record);
      record.status = TaskStatus.QUEUED;
      record.level = record.priority;
      record.enqueuedAt = this.#queue.agingMs > 0 ? now() : 0;
      if (record.lane.key.agents.length === 0 && !record.waitForAgent) {
        this.#fail(record, new NoCapableAgentError(record.id, record.capabilities), TaskStatus.FAILED);
      } else {
        this.#enqueue(record);
      }
    }, delay);
    this.#retryTimers.set(record, timer);
    this.#journal.retried(record, record.agent?.agentId ?? null, error, delay);
    const events = record.events;
    if (events !== null && events.has('retry')) events.emit('retry', { type: 'retry', taskId: record.id, attempt, delay, error });
    if (this.events.has('task:retry')) this.events.emit('task:retry', { taskId: record.id, attempt, delay, error });
  }

  #fail(record: TaskRecord, error: Error, status: TaskStatus): void {
    record.status = status;
    record.outcome = error;
    this.#counts.failed++;
    this.#counts.deadLettered++;
    const code = errorCode(error);
    this.#deadLetters.add({ taskId: record.id, type: record.type, spec: record.toSpec(), error, code, attempts: record.attempt, failedAt: Date.now() });
    const events = record.events;
    if (events !== null && events.has('error')) events.emit('error', { type: 'error', taskId: record.id, error, code, attempts: record.attempt });
    if (this.events.has('task:failed')) {
      this.events.emit('task:failed', { taskId: record.id, type: record.type, error, code, attempts: record.attempt, status });
    }
    if (this.events.has('task:dead-letter')) this.events.emit('task:dead-letter', { taskId: record.id, error, attempts: record.attempt });
    this.#journal.failed(record, record.agent?.agentId ?? null, error, status === TaskStatus.TIMEOUT);
    this.#journal.deadLettered(record, error);
    this.#finish(record);
  }

  /** Cancels a live task wherever it is; false when it is not live. */
  cancel(taskId: string, reason: string): boolean {
    const record = this.#live.get(taskId);
    return record !== undefined && this.#cancel(record, reason);
  }

  /** `keepInStore`: a forced shutdown on a durable store, where the task stays unfinished for the next start(). */
  #cancel(record: TaskRecord, reason: string, keepInStore = false): boolean {
    switch (record.status) {
      case TaskStatus.QUEUED:
        if (record.inQueue) this.#unqueue(record);
        break;
      case TaskStatus.RETRYING:
        clearTimeout(this.#retryTimers.get(record));
        this.#retryTimers.delete(record);
        break;
      case TaskStatus.RUNNING: {
        const run = record.run!;
        run.finished = true;
        run.duration = now() - run.startedAt;
        if (run.deadlineBucket !== null) this.#deadlines.cancel(run);
        if (run.agent.breaker !== null) {
          run.agent.breaker.onAbandon(run.probeTicket);
          this.#afterBreakerVerdict(run.agent);
        }
        this.#abortRun(run, new TaskCancelledError(record.id, reason));
        break;
      }
      default:
        return false;
    }
    record.status = TaskStatus.CANCELLED;
    // The reason, not an error: building one (a stack capture) per task cancelled at shutdown is costly.
    record.outcome = reason;
    this.#counts.cancelled++;
    const events = record.events;
    if (events !== null && events.has('cancelled')) events.emit('cancelled', { type: 'cancelled', taskId: record.id, reason });
    if (this.events.has('task:cancelled')) this.events.emit('task:cancelled', { taskId: record.id, reason });
    if (!keepInStore) this.#journal.cancelled(record, reason);
    this.#finish(record, now(), keepInStore);
    return true;
  }

  /** `keepInStore`: the task ends in this process only (forced shutdown on a durable store). */
  #finish(record: TaskRecord, finishedAt = now(), keepInStore = false): void {
    record.run = null;
    this.#live.delete(record);
    this.#recent.add(record, finishedAt);
    if (this.#progressed.size > 0) this.#progressed.delete(record);
    if (this.#recoveredUnstarted.size > 0) this.#recoveredUnstarted.delete(record);
    // A completed or cancelled task will not run again; a failed one may be requeued from the dead letters.
    const done = record.status === TaskStatus.COMPLETED || record.status === TaskStatus.CANCELLED;
    if (done && this.#checkpoints.size > 0 && this.#checkpoints.delete(record.id) && this.#journal.durable && !keepInStore) {
      this.#store.deleteCheckpoint(record.id);
    }
    record.events?.removeAll();
    if (this.#live.size === 0 && this.#idleWaiters.length > 0) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /** Resolves once no task is queued, running or waiting for a retry. */
  onIdle(): Promise<void> {
    if (this.#live.size === 0) return COMMITTED;
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  // ── progress and checkpoints ─────────────────────────────────────────────

  progress(run: TaskRun, state: unknown): void {
    if (run.finished) return;
    const record = run.record;
    const streaming = this.options.streaming;
    const stream = (record.stream ??= new ProgressStream(streaming.enableDeltaCompression, streaming.snapshotInterval));
    const agentId = run.agent.agentId;
    const event = stream.update(state, agentId, Date.now());
    record.updateCount = stream.sequence;
    if (this.#checkpointTimer !== null) this.#progressed.add(record);
    const events = record.events;
    if (events !== null) {
      if (event.type === 'delta') {
        if (events.has('delta')) events.emit('delta', event);
      } else if (events.has('update')) events.emit('update', event);
      if (stream.snapshot?.metadata.sequence === stream.sequence && events.has('snapshot')) events.emit('snapshot', stream.snapshot);
    }
    if (this.events.has('task:progress')) {
      const sequence = stream.sequence;
      this.events.emit('task:progress', event.type === 'delta' ? { taskId: record.id, agentId, sequence, data: state, delta: event.delta } : { taskId: record.id, agentId, sequence, data: state });
    }
  }

  get bufferLimit(): number {
    return this.options.streaming.backpressureThreshold;
  }

  reportConflated(record: TaskRecord, dropped: number): void {
    if (this.events.has('backpressure:conflated')) this.events.emit('backpressure:conflated', { taskId: record.id, dropped });
  }

  /** The orchestrator-wide stream; history is kept from the first call on. */
  streamEvents(options: EventStreamOptions): AsyncIterableIterator<OrchestratorStreamItem> {
    const streaming = this.options.streaming;
    this.#eventLog ??= new EventLog(
      this.events,
      streaming.eventHistory,
      streaming.backpressureThreshold,
      (error) => this.reportListenerError(error, 'events'),
      this.#lifecycle === 'stopped',
    );
    return this.#eventLog.stream(options);
  }

  /** A live task, or a finished one still retained. */
  observe(taskId: string): TaskObservable | undefined {
    return this.#live.get(taskId) ?? this.#recent.get(taskId);
  }

  checkpoint(run: TaskRun, state: unknown): Promise<void> {
    if (run.finished) return COMMITTED;
    return this.#saveCheckpoint(run.record, state, run.agent.agentId, run.attempt, false);
  }

  checkpointTask(taskId: string, state: unknown): Promise<void> {
    const record = this.#live.get(taskId);
    if (record === undefined && !this.#deadLetters.has(taskId)) return Promise.reject(new TaskNotFoundError(taskId));
    return this.#saveCheckpoint(record ?? { id: taskId }, state, record?.run?.agent.agentId ?? null, record?.attempt ?? null, false);
  }

  /** Keeps a copy (the caller may go on changing `state`); resolves once the store committed it. */
  #saveCheckpoint(task: AuditSubject, state: unknown, agentId: string | null, attempt: number | null, automatic: boolean): Promise<void> {
    const copy = cloneJson(state);
    const taskId = task.id;
    this.#checkpoints.set(taskId, copy);
    this.#counts.checkpoints++;
    this.#journal.checkpointed(task, agentId, attempt, automatic);
    return this.#journal.durable ? this.#store.saveCheckpoint(taskId, copy) : COMMITTED;
  }

  /** `checkpointing.enabled`: the latest progress state of each task that streamed since the last pass. */
  #checkpointProgress(): void {
    for (const record of this.#progressed) {
      const run = record.run;
      if (run === null || record.stream === null) continue;
      this.#saveCheckpoint(record, record.stream.currentState(), run.agent.agentId, run.attempt, true).catch((error: unknown) =>
        this.reportListenerError(error, 'checkpoint'),
      );
    }
    this.#progressed.clear();
  }

  history(taskId: string): AuditEvent[] {
    return this.#store.history(taskId);
  }

  audit(query: AuditQuery): AuditEvent[] {
    return this.#store.audit(query);
  }

  resumeFromCheckpoint(taskId: string): unknown {
    return this.#checkpoints.has(taskId) ? this.#checkpoints.get(taskId) : null;
  }

  // ── dead letters ─────────────────────────────────────────────────────────

  deadLetters(): DeadLetter[] {
    return this.#deadLetters.list();
  }

  requeueDeadLetter(taskId: string): TaskObservable {
    if (!this.acceptingWork) throw new OrchestratorShutdownError();
    const entry = this.#deadLetters.take(taskId);
    if (entry === undefined) throw new TaskNotFoundError(taskId);
    try {
      const observable = this.submit(entry.spec);
      this.#journal.requeued(taskId);
      return observable;
    } catch (error) {
      this.#deadLetters.add(entry);
      throw error;
    }
  }

  // ── inspection ───────────────────────────────────────────────────────────

  getTask(taskId: string): TaskInfo | undefined {
    const record = this.#live.get(taskId) ?? this.#recent.get(taskId);
    if (record === undefined) return undefined;
    return {
      taskId: record.id,
      type: record.type,
      status: record.status,
      priority: record.priority,
      attempt: record.attempt,
      agentId: record.status === TaskStatus.RUNNING ? record.run!.agent.agentId : undefined,
    };
  }

  getStats(): OrchestratorStats {
    const c = this.#counts;
    const finished = c.completed + c.failed;
    const attempts = c.completed + c.failedAttempts;
    const attemptSuccessRate = attempts === 0 ? 1 : c.completed / attempts;
    const depth = this.#queue.depth;
    return {
      uptime: this.#lifecycle === 'created' ? 0 : Date.now() - this.#startedAt,
      totalSubmitted: c.submitted,
      totalCompleted: c.completed,
      totalFailed: c.failed,
      totalCancelled: c.cancelled,
      totalTimeouts: c.timeouts,
      totalRetries: c.retries,
      successRate: finished === 0 ? 1 : c.completed / finished,
      averageDuration: c.completed === 0 ? 0 : c.durationTotal / c.completed,
      checkpoints: c.checkpoints,
      recovered: c.recovered,
      store: this.#store.kind,
      running: this.#pool.busy,
      workerPool: { ...this.#pool.stats(), successRate: attemptSuccessRate },
      taskQueue: {
        size: this.#queue.size,
        maxSize: this.#queue.maxSize,
        retrying: this.#retryTimers.size,
        byPriority: {
          CRITICAL: depth[TaskPriority.CRITICAL]!,
          HIGH: depth[TaskPriority.HIGH]!,
          NORMAL: depth[TaskPriority.NORMAL]!,
          LOW: depth[TaskPriority.LOW]!,
          BACKGROUND: depth[TaskPriority.BACKGROUND]!,
        },
        deadLetters: this.#deadLetters.size,
        deadLettersDropped: this.#deadLetters.dropped,
      },
      agentRouter: {
        agents: this.#router.size,
        routingDecisions: this.#router.decisions,
        byRole: this.#countByRole(),
        agentStats: this.listAgents(),
      },
    };
  }

  #countByRole(): Partial<Record<AgentRole, number>> {
    const byRole: Partial<Record<AgentRole, number>> = {};
    for (const agent of this.#router.agents()) byRole[agent.role] = (byRole[agent.role] ?? 0) + 1;
    return byRole;
  }

  reportListenerError(error: unknown, event: PropertyKey): void {
    if (event !== 'listener:error' && this.events.has('listener:error')) {
      this.events.emit('listener:error', { event: String(event), error });
    } else {
      process.emitWarning(`a listener of '${String(event)}' threw: ${coerceError(error).message}`, 'ParallelOrchestratorWarning');
    }
  }
}

/** A durable store keeps the task as JSON: a payload or metadata JSON cannot carry is refused now, not lost at commit. @throws InvalidTaskError */
function assertStorable(spec: TaskSpec): void {
  for (const field of ['payload', 'metadata'] as const) {
    try {
      JSON.stringify(spec[field]);
    } catch (error) {
      throw new InvalidTaskError(field, `of task ${spec.id ?? spec.type} cannot be stored as JSON: ${(error as Error).message}`, { cause: error });
    }
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
