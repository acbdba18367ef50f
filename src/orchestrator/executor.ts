import { TaskStatus } from '../enums.js';
import { NonRetryableError, PreemptedError, TaskTimeoutError, WorkerCrashedError, coerceError } from '../errors.js';
import { DeadlineScheduler } from '../resilience/deadlines.js';
import type { Agent } from '../routing/agent.js';
import type { AgentDirectory } from '../routing/agent-directory.js';
import type { AgentHandler, OrchestratorEvents } from '../types.js';
import type { Emitter } from '../util/emitter.js';
import { HealthMonitor } from '../workers/health-monitor.js';
import { deserializeError, type SerializedError } from '../workers/protocol.js';
import type { ThreadHost, ThreadWorker } from '../workers/thread-worker.js';
import type { InlineWorker, WorkerPool } from '../workers/worker-pool.js';
import { runInScope } from './async-scope.js';
import type { Checkpoints } from './checkpoints.js';
import type { RunControl, TaskLifecycle } from './task-lifecycle.js';
import { TaskRun, type TaskRecord } from './task-record.js';

const now = (): number => performance.now();

/** Keeps the result's JSON on the record for the store; returns the error when JSON cannot carry it. */
function encodeResult(record: TaskRecord, value: unknown): Error | null {
  try {
    record.resultJson = JSON.stringify(value);
    return null;
  } catch (cause) {
    return new NonRetryableError(`the result of task ${record.id} cannot be stored as JSON: ${(cause as Error).message}`, { cause });
  }
}

export interface ExecutorOptions {
  healthCheckInterval: number;
  stuckGrace: number;
  /** The store keeps results as JSON: a result JSON cannot carry fails its attempt rather than being lost at commit. */
  storesResults: boolean;
  /** Calls an in-process handler (telemetry makes its attempt's span active); null: the handler is called as is. */
  enter: ((handler: AgentHandler, run: TaskRun) => unknown) | null;
}

/**
 * Runs attempts: starts a task on its agent and worker, and ends every run one way (`#settle`):
 * the worker and the agent slot are given back, the breaker judges the run, then the lifecycle
 * records the outcome. Supervises runs: deadlines (timeouts), and handlers that keep running
 * after their attempt ended (stuck: a thread is terminated, an in-process slot reclaimed).
 *
 * A run is `finished` once the attempt has an outcome (result, error, timeout or cancel) and
 * `settled` once its handler returned; between the two, a late result is discarded.
 */
export class Executor implements ThreadHost<TaskRun>, RunControl {
  readonly #deadlines = new DeadlineScheduler(now);
  readonly #health: HealthMonitor<TaskRun>;
  /** Runs whose handler has not returned yet (in-process or in a thread): a list through the runs (a Set churned its table once per task). */
  #unsettled: TaskRun | null = null;
  /** Running tasks a more urgent one could preempt; dispatch looks for victims only while there are some. */
  preemptibleRunning = 0;
  /** Preempted runs whose handler has not given its slot back yet, with the timer that takes it. */
  readonly #preempting = new Map<TaskRun, NodeJS.Timeout>();
  readonly #storesResults: boolean;
  readonly #enter: ExecutorOptions['enter'];
  #stopped = false;

  constructor(
    readonly pool: WorkerPool<TaskRun>,
    readonly directory: AgentDirectory,
    readonly lifecycle: TaskLifecycle,
    readonly checkpoints: Checkpoints,
    readonly events: Emitter<OrchestratorEvents>,
    options: ExecutorOptions,
    /** Runs dispatch: a run that ended freed a worker. */
    readonly pump: () => void,
    readonly reportError: (error: unknown) => void,
  ) {
    this.#health = new HealthMonitor(options.healthCheckInterval, options.stuckGrace, (run) => this.#onStuck(run));
    this.#storesResults = options.storesResults;
    this.#enter = options.enter;
  }

  /** Starts the next attempt of `record` on `agent`, on a worker the pool gave for it. */
  start(record: TaskRecord, agent: Agent, worker: InlineWorker | ThreadWorker<TaskRun>): void {
    const startedAt = now();
    const ticket = this.directory.runStarted(agent, startedAt);
    record.agent = agent;
    const run = new TaskRun(record, agent, worker, ++record.attempt, this.checkpoints.resumeState(record), startedAt);
    run.probeTicket = ticket;
    this.#linkUnsettled(run);
    if (record.preemptible) this.preemptibleRunning++;
    if (record.timeout > 0) this.#deadlines.add(run, record.timeout);
    const execution = agent.execution;
    // A thread job gets its seq before 'start' listeners run, so one that cancels aborts the right job.
    if (execution.kind === 'thread') {
      run.threadSeq = (worker as ThreadWorker<TaskRun>).dispatch(run, { module: execution.module, task: run.task, resumeState: run.resumeState, agentId: agent.agentId });
    }
    this.lifecycle.start(record, run);
    if (execution.kind !== 'inline') return;
    // Cancelled by a listener of 'start': the handler never runs, its slot is given back.
    if (run.finished) this.#settle(run, false, undefined);
    else void this.#execute(run, execution.handler, record.scope);
  }

  /** Runs whose handler has not returned yet. */
  *runs(): IterableIterator<TaskRun> {
    for (let run = this.#unsettled; run !== null; ) {
      const next = run.unsettledNext;
      yield run;
      run = next;
    }
  }

  #linkUnsettled(run: TaskRun): void {
    const first = this.#unsettled;
    run.unsettledNext = first;
    if (first !== null) first.unsettledPrev = run;
    this.#unsettled = run;
  }

  #unlinkUnsettled(run: TaskRun): void {
    const { unsettledPrev: prev, unsettledNext: next } = run;
    if (prev !== null) prev.unsettledNext = next;
    else if (this.#unsettled === run) this.#unsettled = next;
    else return;
    if (next !== null) next.unsettledPrev = prev;
    run.unsettledPrev = run.unsettledNext = null;
  }

  /**
   * Takes the run's slot for the more urgent task `by`: its signal aborts with PreemptedError.
   * Once the handler returns (or after `graceMs`: an in-process slot is reclaimed, a thread
   * terminated and replaced) the task is queued again and the slot freed; a handler that
   * completes its work anyway completes the task.
   */
  preempt(run: TaskRun, by: TaskRecord, graceMs: number): void {
    run.preemptedBy = by;
    if (run.deadlineBucket !== null) this.#deadlines.cancel(run);
    const reason = new PreemptedError(run.record.id, by.id);
    run.abort(reason);
    if (run.worker.kind === 'thread') (run.worker as ThreadWorker<TaskRun>).abort(run.threadSeq, reason);
    const timer = setTimeout(() => this.#preemptionOverdue(run), graceMs);
    timer.unref();
    this.#preempting.set(run, timer);
  }

  #preemptionOverdue(run: TaskRun): void {
    this.#preempting.delete(run);
    if (run.settled) return;
    // A run cancelled while it gave way is not queued again, but its slot still goes to the
    // waiting task now rather than after stuckGrace.
    const requeue = !run.finished;
    if (requeue) {
      run.finished = true;
      run.duration = now() - run.startedAt;
      this.directory.runJudged(run.agent, run.probeTicket, 'abandoned');
    } else if (run.overdueSince !== 0) {
      this.#health.forget(run);
    }
    if (run.worker.kind === 'inline') {
      if (!run.released) this.#release(run, now());
    } else {
      void (run.worker as ThreadWorker<TaskRun>).terminate();
    }
    if (requeue) this.lifecycle.preempted(run.record, run, run.preemptedBy!);
    this.pump();
  }

  async #execute(run: TaskRun, handler: AgentHandler, scope: TaskRecord['scope']): Promise<void> {
    let ok = true;
    let value: unknown;
    if (run.startCommitted !== null) {
      // A recovered task that crashed its process must have this attempt counted if it does again.
      await run.startCommitted;
      // Cancelled (or timed out) meanwhile: the handler never runs.
      if (run.finished) {
        this.#settle(run, false, undefined);
        return;
      }
    }
    try {
      const enter = this.#enter;
      value = await (enter === null ? runInScope(scope, handler, run.task, run) : runInScope(scope, enter, handler, run));
    } catch (error) {
      ok = false;
      value = error;
    }
    this.#settle(run, ok, value);
  }

  /** The one way a run ends: its handler returned (or its thread said so). */
  #settle(run: TaskRun, ok: boolean, value: unknown): void {
    const at = now();
    run.settled = true;
    this.#unlinkUnsettled(run);
    if (run.deadlineBucket !== null) this.#deadlines.cancel(run);
    if (run.overdueSince !== 0) this.#health.forget(run);
    if (!run.released) this.#release(run, at);
    if (run.preemptedBy !== null && this.#preempting.size > 0) {
      clearTimeout(this.#preempting.get(run));
      this.#preempting.delete(run);
    }
    if (run.preemptedBy !== null && !run.finished && !ok) {
      // Gave way to a more urgent task: queued again, no verdict on the agent, no attempt used.
      run.finished = true;
      run.duration = at - run.startedAt;
      this.directory.runJudged(run.agent, run.probeTicket, 'abandoned');
      this.lifecycle.preempted(run.record, run, run.preemptedBy);
    } else if (!run.finished) {
      run.finished = true;
      const record = run.record;
      run.duration = at - run.startedAt;
      // A late event loop can run the handler's continuation before the deadline timer that
      // was due first: a result past the timeout is still a timeout. (Threads time their runs
      // in shared memory, and their deadline handler sees that.) Not after a preemption: it
      // stopped the deadline, and a handler that completes within graceMs completes the task.
      if (ok && record.timeout > 0 && run.preemptedBy === null && run.duration >= record.timeout && run.worker.kind === 'inline') {
        const error = new TaskTimeoutError(record.id, record.timeout);
        run.abort(error);
        this.#failed(run, error, TaskStatus.TIMEOUT);
      } else if (ok) {
        const unstorable = this.#storesResults ? encodeResult(record, value) : null;
        if (unstorable !== null) {
          this.#failed(run, unstorable, TaskStatus.FAILED);
        } else {
          this.directory.runJudged(run.agent, run.probeTicket, 'success', run.record.lane.key, run.record.type, run.duration);
          this.lifecycle.complete(record, run, value);
        }
      } else {
        this.#failed(run, coerceError(value), TaskStatus.FAILED);
      }
    }
    this.pump();
  }

  #failed(run: TaskRun, error: Error, status: TaskStatus): void {
    this.directory.runJudged(run.agent, run.probeTicket, 'failure', run.record.lane.key, run.record.type, run.duration);
    this.lifecycle.attemptFailed(run.record, run, error, status);
  }

  /** Gives back the run's worker (idle since `at`) and its agent slot. */
  #release(run: TaskRun, at: number): void {
    run.released = true;
    if (run.record.preemptible) this.preemptibleRunning--;
    if (run.worker.kind === 'inline') this.pool.releaseInline(run.worker as InlineWorker, at);
    this.directory.runReleased(run.agent);
  }

  /** Ends an attempt now, without a verdict (cancelled); its handler is aborted and watched. */
  abandon(run: TaskRun, reason: Error): void {
    run.finished = true;
    run.duration = now() - run.startedAt;
    if (run.deadlineBucket !== null) this.#deadlines.cancel(run);
    this.directory.runJudged(run.agent, run.probeTicket, 'abandoned');
    this.#abortRun(run, reason);
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
    this.#failed(run, error, TaskStatus.TIMEOUT);
  }

  /** Aborts an attempt that ended (timeout, cancel) while its handler still runs; watches it for being stuck. */
  #abortRun(run: TaskRun, reason: Error): void {
    run.abort(reason);
    if (run.worker.kind === 'thread') (run.worker as ThreadWorker<TaskRun>).abort(run.threadSeq, reason);
    if (!run.settled && !this.#stopped) this.#health.watch(run, now());
  }

  /** Work still holding its worker `stuckGrace` after its timeout or cancellation. */
  #onStuck(run: TaskRun): void {
    if (run.settled) return;
    if (this.events.has('worker:stuck')) {
      this.events.emit('worker:stuck', { workerId: run.worker.workerId, taskId: run.record.id, agentId: run.agent.agentId });
    }
    if (run.worker.kind === 'inline') {
      if (!run.released) this.#release(run, now());
      this.pump();
    } else {
      void (run.worker as ThreadWorker<TaskRun>).terminate();
    }
  }

  // Worker threads

  threadResult(run: TaskRun, ok: boolean, value: unknown): void {
    this.#settle(run, ok, ok ? value : deserializeError(value as SerializedError));
  }

  threadRefused(run: TaskRun, error: Error): void {
    this.#settle(run, false, error);
  }

  threadProgress(run: TaskRun, state: unknown): void {
    // The thread checks what it sends; this only keeps a state that still fails here from reaching the message loop.
    try {
      run.progress(state);
    } catch (error) {
      this.reportError(error);
    }
  }

  threadCheckpoint(run: TaskRun, state: unknown): Promise<void> {
    return run.checkpoint(state);
  }

  threadExited(worker: ThreadWorker<TaskRun>, current: TaskRun | null, lost: TaskRun[], unstarted: TaskRun[], error: Error): void {
    const crashed = !worker.retiring || current !== null;
    const replacement = this.pool.removeThread(worker, crashed && !this.#stopped);
    if (crashed && !this.#stopped && this.events.has('worker:failed')) {
      this.events.emit('worker:failed', { workerId: worker.workerId, error, taskId: current?.record.id });
    }
    if (replacement !== null && this.events.has('worker:replaced')) {
      this.events.emit('worker:replaced', { workerId: worker.workerId, replacementId: replacement.workerId });
    }
    if (current !== null) {
      this.#settle(current, false, new WorkerCrashedError(current.record.id, worker.workerId, worker.retiring ? 'was terminated' : 'died', { cause: error }));
    }
    // Finished in the thread, but the result went down with it: they fail (and retry per their policy).
    for (const run of lost) {
      this.#settle(run, false, new WorkerCrashedError(run.record.id, worker.workerId, 'died before sending the result', { cause: error }));
    }
    for (const run of unstarted) this.#requeueUnstarted(run);
    this.pump();
  }

  /** A thread gave back jobs it had not started (they waited behind a long one while another thread went idle). */
  threadReturned(runs: TaskRun[]): void {
    for (const run of runs) this.#requeueUnstarted(run);
    this.pump();
  }

  /** A run handed to a thread that never started there goes back to the queue without using up an attempt. */
  #requeueUnstarted(run: TaskRun): void {
    this.#health.forget(run);
    if (run.deadlineBucket !== null) this.#deadlines.cancel(run);
    run.settled = true;
    this.#unlinkUnsettled(run);
    if (!run.released) this.#release(run, now());
    if (run.finished) return;
    run.finished = true;
    // Not a verdict on the agent: a probe's place is freed.
    this.directory.runJudged(run.agent, run.probeTicket, 'abandoned');
    this.lifecycle.handBack(run.record);
  }

  /**
   * At shutdown, after every live task was ended: stops supervision and gives back the slots of
   * handlers that never settled (they are abandoned), so the pool and the agents read idle.
   */
  stop(): void {
    this.#stopped = true;
    this.#deadlines.clear();
    this.#health.stop();
    for (const timer of this.#preempting.values()) clearTimeout(timer);
    this.#preempting.clear();
    for (const run of this.runs()) if (!run.released) this.#release(run, now());
    this.#unsettled = null;
  }
}
