import { createRequire } from 'node:module';
import {
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  isSpanContextValid,
  metrics,
  trace,
  type Context,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { TaskStatus } from '../enums.js';
import type { ResolvedOptions } from '../options.js';
import type { OrchestratorStats } from '../orchestrator/stats.js';
import type { TransitionSink } from '../orchestrator/task-lifecycle.js';
import type { TaskRecord, TaskRun } from '../orchestrator/task-record.js';
import type { AgentHandler } from '../types.js';
import { ATTR, INSTRUMENTATION_SCOPE, SYSTEM } from './names.js';
import { TaskMetrics } from './task-metrics.js';
import { TaskTelemetry } from './task-telemetry.js';
import { extractTraceContext, injectTraceContext } from './trace-context.js';

const VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/** What telemetry needs of the engine. */
export interface TelemetryHost {
  readonly nodeId: string;
  /** The store is shared with other processes: a task's trace context goes with its row. */
  readonly propagate: boolean;
  /** `getStats()`, read when the SDK collects metrics. */
  stats(): OrchestratorStats;
  /** The engine's clock (ms, `performance.now()`), that runs' start times are read from. */
  clock(): number;
}

/** An attempt's outcome as its span tells it. */
type Outcome = 'completed' | 'failed' | 'timeout' | 'cancelled' | 'preempted' | 'claim-lost' | 'handed-back';

/**
 * OpenTelemetry for the orchestrator, as one more sink of the task lifecycle: a span per attempt
 * (a child of the context the task was submitted in, here or on another node), the wait and run
 * time histograms, and the metrics read from `getStats()` (see TaskMetrics). Through the API
 * only: without an SDK it makes no span and records nothing.
 */
export class Telemetry implements TransitionSink {
  readonly #provider: TracerProvider;
  #tracer: Tracer | null = null;
  readonly #metrics: TaskMetrics;

  constructor(
    options: ResolvedOptions['telemetry'],
    readonly host: TelemetryHost,
  ) {
    this.#provider = options.tracerProvider ?? trace.getTracerProvider();
    const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_SCOPE, VERSION);
    this.#metrics = new TaskMetrics(meter, host.nodeId, () => host.stats());
  }

  /**
   * Calls an in-process handler (already in the submitter's async context) with its attempt's
   * span active, so the spans it makes are children of it.
   */
  readonly enter = (handler: AgentHandler, run: TaskRun): unknown => {
    const span = run.record.telemetry?.span;
    if (span == null) return handler(run.task, run);
    return context.with(trace.setSpan(context.active(), span), handler, undefined, run.task, run);
  };

  /** Stops the metrics' observations (at shutdown). */
  close(): void {
    this.#metrics.close();
  }

  submitted(record: TaskRecord): void {
    // submit() runs in the submitter's context: a span active there is the parent of the task's.
    const active = context.active();
    const spanContext = trace.getSpanContext(active);
    const parent = spanContext !== undefined && isSpanContextValid(spanContext) ? active : null;
    if (parent !== null && this.host.propagate) record.traceContext = injectTraceContext(parent);
    this.#queued(record, parent);
  }

  recovered(record: TaskRecord): void {
    this.#queued(record, null);
  }

  #queued(record: TaskRecord, parent: Context | null): void {
    if (parent === null && !this.#metrics.recording) return;
    const state = (record.telemetry = new TaskTelemetry(parent));
    if (this.#metrics.recording) state.readyAt = this.host.clock();
  }

  started(record: TaskRecord, run: TaskRun): void {
    let state = record.telemetry;
    if (state !== null && !Number.isNaN(state.readyAt)) this.#metrics.waited(Math.max(0, run.startedAt - state.readyAt));
    const tracer = this.#resolveTracer();
    if (tracer === null) return;
    // A task submitted on another node (shared store) brings the submitter's context with its row.
    if (state === null && record.traceContext !== null) state = record.telemetry = new TaskTelemetry(extractTraceContext(record.traceContext));
    const span = tracer.startSpan(
      `process ${record.type}`,
      {
        kind: SpanKind.CONSUMER,
        startTime: run.startedAt,
        // The messaging conventions' sampling-relevant attributes, given at creation so that
        // samplers see them. The SDK validates these three times, the ones set later once.
        attributes: {
          'messaging.system': SYSTEM,
          'messaging.operation.type': 'process',
          'messaging.operation.name': 'process',
          'messaging.destination.name': record.type,
        },
      },
      // Never the context active at dispatch: that may be another task's handler.
      state?.parent ?? ROOT_CONTEXT,
    );
    // Sampled out: the span does nothing, and nothing needs to keep it.
    if (!span.isRecording()) return;
    // Literal keys: an object literal with computed keys is built property by property.
    span.setAttributes({
      'messaging.message.id': record.id,
      'parallel_orchestrator.task.priority': record.priority,
      'parallel_orchestrator.task.attempt': run.attempt,
      'parallel_orchestrator.agent.id': run.agent.agentId,
    });
    (state ?? (record.telemetry = new TaskTelemetry(null))).span = span;
  }

  completed(record: TaskRecord, run: TaskRun): void {
    if (this.#metrics.recording) this.#metrics.ran(run.duration);
    this.#endSpan(record, 'completed', run.startedAt + run.duration);
    record.telemetry = null;
  }

  attemptFailed(record: TaskRecord, run: TaskRun | null, error: Error, status: TaskStatus): void {
    if (run === null) return;
    const outcome = status === TaskStatus.TIMEOUT ? 'timeout' : 'failed';
    if (this.#metrics.recording) this.#metrics.ran(run.duration);
    const span = record.telemetry?.span;
    if (span == null) return;
    span.setAttribute(ATTR.ERROR_TYPE, errorType(error));
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    this.#endSpan(record, outcome, run.startedAt + run.duration);
  }

  retrying(record: TaskRecord, _error: Error, delay: number): void {
    const state = record.telemetry;
    if (state !== null && this.#metrics.recording) state.readyAt = this.host.clock() + delay;
  }

  requeued(record: TaskRecord): void {
    const state = record.telemetry;
    if (state === null) return;
    if (this.#metrics.recording) state.readyAt = this.host.clock();
    // A thread handed back a job it never started.
    this.#endSpan(record, 'handed-back', undefined);
  }

  failed(record: TaskRecord): void {
    record.telemetry = null;
  }

  /** A more urgent task took the attempt's slot: it ends here, and the task waits at the front of its lane. */
  preempted(record: TaskRecord, run: TaskRun, by: TaskRecord): void {
    const state = record.telemetry;
    if (state === null) return;
    if (this.#metrics.recording) {
      this.#metrics.ran(run.duration);
      state.readyAt = this.host.clock();
    }
    state.span?.setAttribute(ATTR.PREEMPTED_BY, by.id);
    this.#endSpan(record, 'preempted', run.startedAt + run.duration);
  }

  cancelled(record: TaskRecord): void {
    // The running attempt, if any, is still the record's while the sinks hear of its cancel.
    const run = record.run;
    if (run !== null && this.#metrics.recording) this.#metrics.ran(run.duration);
    this.#endSpan(record, 'cancelled', run === null ? undefined : run.startedAt + run.duration);
    record.telemetry = null;
  }

  /** Another process took the task over (shared store): the attempt here ends without an outcome that counts. */
  claimLost(record: TaskRecord): void {
    this.#endSpan(record, 'claim-lost', undefined);
    record.telemetry = null;
  }

  #endSpan(record: TaskRecord, outcome: Outcome, endTime: number | undefined): void {
    const state = record.telemetry;
    const span = state?.span;
    if (span == null) return;
    state!.span = null;
    span.setAttribute(ATTR.OUTCOME, outcome);
    span.end(endTime);
  }

  /**
   * The SDK's tracer, once one is registered. Until then no span is made at all: the API's
   * non-recording span would cost its attributes for nothing. (The global provider is a proxy
   * that gets its SDK when the application registers one, possibly after this orchestrator was made.)
   */
  #resolveTracer(): Tracer | null {
    if (this.#tracer === null) {
      const provider = this.#provider;
      this.#tracer = (provider instanceof ProxyTracerProvider ? provider.getDelegateTracer(INSTRUMENTATION_SCOPE, VERSION) : provider.getTracer(INSTRUMENTATION_SCOPE, VERSION)) ?? null;
    }
    return this.#tracer;
  }
}

/** `error.type`: the error's code when it has one (every error of this library does), else its class name. */
function errorType(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : error.name;
}
