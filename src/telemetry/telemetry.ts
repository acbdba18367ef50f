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
  type Meter,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { TaskStatus } from '../enums.js';
import { InvalidOptionsError, describeThrown } from '../errors.js';
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
  /** Whether the SDK's throwing was reported already (once per orchestrator: it may throw at every task). */
  #faultReported = false;

  /** @throws InvalidOptionsError when a provider, or what it returns, cannot be used. */
  constructor(
    options: ResolvedOptions['telemetry'],
    readonly host: TelemetryHost,
  ) {
    this.#provider = options.tracerProvider ?? trace.getTracerProvider();
    // A provider given as an option is asked for its tracer now, so that a broken one is refused
    // here rather than at the first task (the global proxy gets its SDK later: see #resolveTracer).
    if (options.tracerProvider !== undefined && !(options.tracerProvider instanceof ProxyTracerProvider)) {
      let tracer: unknown;
      try {
        tracer = options.tracerProvider.getTracer(INSTRUMENTATION_SCOPE, VERSION);
      } catch (error) {
        throw new InvalidOptionsError('telemetry.tracerProvider', `threw from getTracer(): ${describeThrown(error instanceof Error ? error.message : error)}`);
      }
      if (!isTracer(tracer)) throw new InvalidOptionsError('telemetry.tracerProvider', `getTracer() must return an OpenTelemetry Tracer (an object with startSpan()) (received ${tracer === null ? 'null' : typeof tracer})`);
      this.#tracer = tracer;
    }
    const where = options.meterProvider === undefined ? ' (the global MeterProvider, as registered with metrics.setGlobalMeterProvider)' : '';
    try {
      const meter: unknown = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_SCOPE, VERSION);
      if (typeof meter !== 'object' || meter === null) throw new TypeError(`getMeter() returned ${describeThrown(meter)}, not a Meter`);
      this.#metrics = new TaskMetrics(meter as Meter, host.nodeId, () => host.stats());
    } catch (error) {
      throw new InvalidOptionsError('telemetry.meterProvider', `could not make the orchestrator's instruments${where}: ${describeThrown(error instanceof Error ? error.message : error)}`);
    }
  }

  /**
   * Calls an in-process handler (already in the submitter's async context) with its attempt's
   * span active, so the spans it makes are children of it.
   */
  readonly enter = (handler: AgentHandler, run: TaskRun): unknown => {
    const span = run.record.telemetry?.span;
    if (span == null) return handler(run.task, run);
    let active: Context;
    try {
      active = trace.setSpan(context.active(), span);
    } catch (error) {
      this.#fault(error);
      return handler(run.task, run);
    }
    return context.with(active, handler, undefined, run.task, run);
  };

  /** Stops the metrics' observations (at shutdown). */
  close(): void {
    this.#metrics.close();
  }

  // Every sink method catches what the SDK (or a span, context or propagator handed to it) throws:
  // the lifecycle calls its sinks mid-transition, and a throw there would leave the task
  // half-moved (submit() throwing for a task it queued, an attempt that never settles).

  submitted(record: TaskRecord): void {
    // submit() runs in the submitter's context: a span active there is the parent of the task's.
    let parent: Context | null;
    try {
      const active = context.active();
      const spanContext = trace.getSpanContext(active);
      parent = spanContext !== undefined && isSpanContextValid(spanContext) ? active : null;
      if (parent !== null && this.host.propagate) record.traceContext = injectTraceContext(parent);
    } catch (error) {
      this.#fault(error);
      parent = null;
      record.traceContext = null;
    }
    this.#queued(record, parent);
  }

  recovered(record: TaskRecord): void {
    this.#queued(record, null);
  }

  #queued(record: TaskRecord, parent: Context | null): void {
    if (this.#metrics.recording) record.readyAt = this.host.clock();
    if (parent !== null) record.telemetry = new TaskTelemetry(parent);
  }

  started(record: TaskRecord, run: TaskRun): void {
    try {
      this.#started(record, run);
    } catch (error) {
      this.#fault(error);
    }
  }

  #started(record: TaskRecord, run: TaskRun): void {
    if (record.readyAt >= 0) this.#metrics.waited(Math.max(0, run.startedAt - record.readyAt));
    let state = record.telemetry;
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
    // Kept before anything else is asked of it, so that it is ended whatever the SDK throws next.
    (state ?? (record.telemetry = new TaskTelemetry(null))).span = span;
    // Literal keys: an object literal with computed keys is built property by property.
    span.setAttributes({
      'messaging.message.id': record.id,
      'parallel_orchestrator.task.priority': record.priority,
      'parallel_orchestrator.task.attempt': run.attempt,
      'parallel_orchestrator.agent.id': run.agent.agentId,
    });
  }

  completed(record: TaskRecord, run: TaskRun): void {
    this.#ran(run);
    this.#endSpan(record, 'completed', run.startedAt + run.duration);
    record.telemetry = null;
  }

  attemptFailed(record: TaskRecord, run: TaskRun | null, error: Error, status: TaskStatus): void {
    if (run === null) return;
    const outcome = status === TaskStatus.TIMEOUT ? 'timeout' : 'failed';
    this.#ran(run);
    const span = record.telemetry?.span;
    if (span == null) return;
    try {
      // The error is the handler's: any of its properties may be a getter that throws.
      const exception = describeError(error);
      span.setAttribute(ATTR.ERROR_TYPE, exception.code ?? exception.name);
      span.recordException(exception);
      span.setStatus({ code: SpanStatusCode.ERROR, message: exception.message });
    } catch (fault) {
      this.#fault(fault);
    }
    this.#endSpan(record, outcome, run.startedAt + run.duration);
  }

  retrying(record: TaskRecord, _error: Error, delay: number): void {
    if (this.#metrics.recording) record.readyAt = this.host.clock() + delay;
  }

  requeued(record: TaskRecord): void {
    if (this.#metrics.recording) record.readyAt = this.host.clock();
    // A thread handed back a job it never started.
    this.#endSpan(record, 'handed-back', undefined);
  }

  failed(record: TaskRecord): void {
    record.telemetry = null;
  }

  /** A more urgent task took the attempt's slot: it ends here, and the task waits at the front of its lane. */
  preempted(record: TaskRecord, run: TaskRun, by: TaskRecord): void {
    this.#ran(run);
    if (this.#metrics.recording) record.readyAt = this.host.clock();
    try {
      record.telemetry?.span?.setAttribute(ATTR.PREEMPTED_BY, by.id);
    } catch (error) {
      this.#fault(error);
    }
    this.#endSpan(record, 'preempted', run.startedAt + run.duration);
  }

  cancelled(record: TaskRecord): void {
    // The running attempt, if any, is still the record's while the sinks hear of its cancel.
    const run = record.run;
    if (run !== null) this.#ran(run);
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
    try {
      span.setAttribute(ATTR.OUTCOME, outcome);
      span.end(endTime);
    } catch (error) {
      this.#fault(error);
    }
  }

  /** The run-time histogram, when metrics are recorded. */
  #ran(run: TaskRun): void {
    if (!this.#metrics.recording) return;
    try {
      this.#metrics.ran(run.duration);
    } catch (error) {
      this.#fault(error);
    }
  }

  /**
   * The SDK (or a span, context or propagator handed to it) threw: the task goes on without that
   * span or measurement. Reported once per orchestrator, as a process warning.
   */
  #fault(error: unknown): void {
    if (this.#faultReported) return;
    this.#faultReported = true;
    let message: string;
    try {
      message = error instanceof Error ? error.message : describeThrown(error);
    } catch {
      message = describeThrown(error);
    }
    process.emitWarning(`telemetry: OpenTelemetry threw (${message}); the orchestrator goes on without the span or measurement concerned (reported once)`, 'ParallelOrchestratorWarning');
  }

  /**
   * The SDK's tracer, once one is registered. Until then no span is made at all: the API's
   * non-recording span would cost its attributes for nothing. (The global provider is a proxy
   * that gets its SDK when the application registers one, possibly after this orchestrator was made.)
   */
  #resolveTracer(): Tracer | null {
    if (this.#tracer === null) {
      const provider = this.#provider;
      const tracer: unknown = provider instanceof ProxyTracerProvider ? provider.getDelegateTracer(INSTRUMENTATION_SCOPE, VERSION) : provider.getTracer(INSTRUMENTATION_SCOPE, VERSION);
      if (tracer == null) return null;
      // The global provider is whatever the application registered: a junk one is reported, not called.
      if (!isTracer(tracer)) throw new TypeError(`the TracerProvider's getTracer() returned ${describeThrown(tracer)}, not a Tracer`);
      this.#tracer = tracer;
    }
    return this.#tracer;
  }
}

function isTracer(value: unknown): value is Tracer {
  return typeof value === 'object' && value !== null && typeof (value as { startSpan?: unknown }).startSpan === 'function';
}

/**
 * What a span records of an error, read once and safely: `code` (`error.type`, and the
 * exception's type, when it is a string: every error of this library has one), `name`, `message`
 * and `stack`. A property whose getter throws is left out (the name and message fall back).
 */
function describeError(error: Error): { code?: string; name: string; message: string; stack?: string } {
  const read = (key: 'code' | 'name' | 'message' | 'stack'): string | undefined => {
    try {
      const value = (error as unknown as Record<string, unknown>)[key];
      return typeof value === 'string' ? value : undefined;
    } catch {
      return undefined;
    }
  };
  const code = read('code');
  const stack = read('stack');
  return { ...(code === undefined ? {} : { code }), name: read('name') ?? 'Error', message: read('message') ?? '(its message could not be read)', ...(stack === undefined ? {} : { stack }) };
}
