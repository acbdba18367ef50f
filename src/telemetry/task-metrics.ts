import { ValueType, createNoopMeter, type Attributes, type BatchObservableResult, type Histogram, type Meter, type Observable } from '@opentelemetry/api';
import { CircuitState, TaskPriority } from '../enums.js';
import type { OrchestratorStats } from '../orchestrator/stats.js';
import { ATTR } from './names.js';

/** The messaging conventions' duration buckets (s), extended for tasks that run for minutes. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120, 300];
const PRIORITIES = Object.entries(TaskPriority) as [keyof typeof TaskPriority, TaskPriority][];
const CIRCUIT_STATES = Object.values(CircuitState);
/** One shared object: the SDK's default for absent attributes is a new `{}` per measurement. */
const NO_ATTRIBUTES: Attributes = Object.freeze({});

/**
 * The orchestrator's metrics. Only the two histograms are recorded per task, and without
 * attributes: the SDK keys each measurement by its attributes' JSON, which cost 3.5 µs of CPU a
 * task in bench/telemetry.mjs (spans carry agent, priority and outcome). Counts, queue depth,
 * running tasks and circuit states are read from `getStats()` when the SDK collects, so they
 * cost nothing per task; they carry the orchestrator's node id, so that orchestrators sharing a
 * meter (in one process) do not overwrite each other's. Names and units: docs/telemetry.md.
 */
export class TaskMetrics {
  /** False with the API's no-op meter (no SDK registered): the histograms are not fed then. */
  readonly recording: boolean;
  readonly #meter: Meter;
  readonly #wait: Histogram;
  readonly #run: Histogram;
  readonly #submitted: Observable;
  readonly #completed: Observable;
  readonly #failed: Observable;
  readonly #retried: Observable;
  readonly #queued: Observable;
  readonly #running: Observable;
  readonly #circuit: Observable;
  readonly #observables: Observable[];
  readonly #observe = (result: BatchObservableResult): void => this.#collect(result);
  readonly #node: Attributes;
  readonly #queuedAttributes: Attributes[];

  constructor(
    meter: Meter,
    nodeId: string,
    readonly stats: () => OrchestratorStats,
  ) {
    this.#meter = meter;
    this.#node = { [ATTR.NODE]: nodeId };
    this.#queuedAttributes = PRIORITIES.map(([, priority]) => ({ ...this.#node, [ATTR.PRIORITY]: priority }));
    this.recording = Object.getPrototypeOf(meter) !== Object.getPrototypeOf(createNoopMeter());
    const duration = { unit: 's', advice: { explicitBucketBoundaries: DURATION_BUCKETS } };
    const count = (unit: string, description: string) => ({ unit, description, valueType: ValueType.INT });
    this.#wait = meter.createHistogram('parallel_orchestrator.task.wait.duration', { ...duration, description: 'Time a task waited to start an attempt: from its submission, or the end of its retry delay' });
    this.#run = meter.createHistogram('parallel_orchestrator.task.run.duration', { ...duration, description: 'Run time of an attempt, whatever its outcome' });
    this.#submitted = meter.createObservableCounter('parallel_orchestrator.task.submitted', count('{task}', 'Tasks submitted (and recovered by start())'));
    this.#completed = meter.createObservableCounter('parallel_orchestrator.task.completed', count('{task}', 'Tasks completed'));
    this.#failed = meter.createObservableCounter('parallel_orchestrator.task.failed', count('{task}', 'Tasks failed for good (dead-lettered), timeouts on their last attempt included'));
    this.#retried = meter.createObservableCounter('parallel_orchestrator.task.retried', count('{retry}', 'Retries scheduled after a failed or timed-out attempt'));
    this.#queued = meter.createObservableUpDownCounter('parallel_orchestrator.task.queued', count('{task}', 'Tasks waiting in the queue, by priority'));
    this.#running = meter.createObservableUpDownCounter('parallel_orchestrator.task.running', count('{task}', 'Tasks running now'));
    this.#circuit = meter.createObservableUpDownCounter('parallel_orchestrator.agent.circuit.state', count('{agent}', "1 for the state an agent's circuit is in, 0 for the others"));
    this.#observables = [this.#submitted, this.#completed, this.#failed, this.#retried, this.#queued, this.#running, this.#circuit];
    meter.addBatchObservableCallback(this.#observe, this.#observables);
  }

  /** An attempt started `ms` after the task became ready. */
  waited(ms: number): void {
    this.#wait.record(ms / 1000, NO_ATTRIBUTES);
  }

  /** An attempt ended after running `ms`. */
  ran(ms: number): void {
    this.#run.record(ms / 1000, NO_ATTRIBUTES);
  }

  /** Stops the observations: the meter no longer holds the orchestrator. */
  close(): void {
    this.#meter.removeBatchObservableCallback(this.#observe, this.#observables);
  }

  #collect(result: BatchObservableResult): void {
    const stats = this.stats();
    const node = this.#node;
    result.observe(this.#submitted, stats.totalSubmitted, node);
    result.observe(this.#completed, stats.totalCompleted, node);
    result.observe(this.#failed, stats.totalFailed, node);
    result.observe(this.#retried, stats.totalRetries, node);
    for (const [name, priority] of PRIORITIES) result.observe(this.#queued, stats.taskQueue.byPriority[name], this.#queuedAttributes[priority]);
    result.observe(this.#running, stats.running, node);
    for (const agent of stats.agentRouter.agentStats) {
      for (const state of CIRCUIT_STATES) result.observe(this.#circuit, agent.circuitState === state ? 1 : 0, { ...node, [ATTR.AGENT]: agent.agentId, [ATTR.CIRCUIT_STATE]: state });
    }
  }
}
