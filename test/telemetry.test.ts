// OpenTelemetry spans and metrics through the SDK's in-memory exporters, and the `logger` option
// with a real pino logger. Thread agents load the built entry, so this imports dist.
import { context, trace, SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { AlwaysOffSampler, BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AgentRole,
  CircuitState,
  TaskPriority,
  createParallelOrchestrator,
  type OrchestratorOptions,
  type ParallelOrchestrator,
  type StoreOptions,
} from '../dist/index.js';
import { deferred, nextEvent, settle, useOrchestrators } from './helpers.js';
import { refusal, useInMemoryTracing } from './otel-helpers.js';
import { DATABASE_URL, dropSchema, postgresAvailable, sql, uniqueSchema } from './pg-helpers.js';

const moduleUrl = (name: string): URL => new URL(`./fixtures/modules/${name}.mjs`, import.meta.url);
const started = useOrchestrators(createParallelOrchestrator);

const { spans, tracerProvider } = useInMemoryTracing();
const tracer = tracerProvider.getTracer('test');

/** Options sending spans to the in-memory exporter, and metrics to `meterProvider` when given. */
function traced(options: OrchestratorOptions = {}, meterProvider?: MeterProvider): OrchestratorOptions {
  return { ...options, telemetry: { tracerProvider, ...(meterProvider ? { meterProvider } : {}) } };
}

const taskSpans = (): ReadableSpan[] => spans.getFinishedSpans().filter((span) => span.name.startsWith('process '));

/** Runs `fn` inside a new active span, ended when `fn`'s promise settles; returns both. */
async function inSpan<T>(name: string, fn: (span: Span) => Promise<T>): Promise<{ span: Span; value: T }> {
  return tracer.startActiveSpan(name, async (span) => {
    try {
      return { span, value: await fn(span) };
    } finally {
      span.end();
    }
  });
}

function executor(o: ParallelOrchestrator, agentId: string, handler: (task: { payload: unknown; attempt: number }, ctx: { signal: AbortSignal }) => unknown, maxConcurrent = 4): void {
  o.registerAgent({ agentId, role: AgentRole.EXECUTOR, capabilities: [agentId], maxConcurrent, handler: async (task, ctx) => handler(task, ctx) });
}

describe('spans', () => {
  it('makes one span per attempt, a child of the span active around submit(), with the task in its attributes', async () => {
    const o = await started(traced());
    executor(o, 'echo', (task) => task.payload);
    const { span: request, value: outcome } = await inSpan('request', async () => {
      const task = o.submit({ id: 'echo-1', type: 'echo-job', priority: TaskPriority.HIGH, capabilities: ['echo'], payload: 7 });
      return task.result();
    });
    expect(outcome.result).toBe(7);
    const [span, ...others] = taskSpans();
    expect(others).toEqual([]);
    expect(span!.name).toBe('process echo-job');
    expect(span!.kind).toBe(SpanKind.CONSUMER);
    expect(span!.spanContext().traceId).toBe(request.spanContext().traceId);
    expect(span!.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(span!.attributes).toEqual({
      'messaging.system': 'parallel_orchestrator',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': 'echo-job',
      'messaging.message.id': 'echo-1',
      'parallel_orchestrator.task.priority': TaskPriority.HIGH,
      'parallel_orchestrator.task.attempt': 1,
      'parallel_orchestrator.agent.id': 'echo',
      'parallel_orchestrator.task.outcome': 'completed',
    });
    expect(span!.status.code).toBe(SpanStatusCode.UNSET);
    expect(span!.events).toEqual([]);
  });

  it('gives a retried task a span per attempt, all children of the submitter; a failed attempt has error status and the exception', async () => {
    const o = await started(traced({ taskQueue: { retry: { initialDelay: 1, jitter: 0 } } }));
    executor(o, 'flaky', (task) => {
      if (task.attempt === 1) throw new TypeError('first attempt breaks');
      return 'ok';
    });
    const { span: request } = await inSpan('request', () => o.submit({ type: 'flaky', capabilities: ['flaky'] }).result());
    const [first, second, ...others] = taskSpans();
    expect(others).toEqual([]);
    for (const span of [first!, second!]) expect(span.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(first!.attributes).toMatchObject({ 'parallel_orchestrator.task.attempt': 1, 'parallel_orchestrator.task.outcome': 'failed', 'error.type': 'TypeError' });
    expect(first!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'first attempt breaks' });
    expect(first!.events.map((event) => [event.name, event.attributes?.['exception.type'], event.attributes?.['exception.message']])).toEqual([['exception', 'TypeError', 'first attempt breaks']]);
    expect(second!.attributes).toMatchObject({ 'parallel_orchestrator.task.attempt': 2, 'parallel_orchestrator.task.outcome': 'completed' });
    expect(second!.status.code).toBe(SpanStatusCode.UNSET);
    expect(second!.attributes['error.type']).toBeUndefined();
  });

  it('ends a timed-out attempt as an error with the timeout recorded, and a cancelled one without error', async () => {
    const o = await started(traced({ workerPool: { stuckGrace: 10_000 } }));
    let running = deferred();
    executor(o, 'slow', (_task, ctx) => {
      running.resolve();
      return new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
    });
    const timedOut = await settle(o.submit({ id: 'late', type: 'slow', capabilities: ['slow'], timeout: 20, retry: { maxAttempts: 1 } }).result());
    expect(timedOut.ok).toBe(false);
    const [timeout] = taskSpans();
    expect(timeout!.attributes).toMatchObject({ 'parallel_orchestrator.task.outcome': 'timeout', 'error.type': 'TASK_TIMEOUT' });
    expect(timeout!.status.code).toBe(SpanStatusCode.ERROR);
    expect(timeout!.events[0]!.attributes?.['exception.message']).toBe('task late timed out after 20 ms');

    spans.reset();
    running = deferred();
    const cancelled = o.submit({ id: 'stopped', type: 'slow', capabilities: ['slow'] });
    const ended = settle(cancelled.result());
    await running.promise;
    expect(await o.cancel('stopped', 'not needed')).toBe(true);
    await ended;
    const [cancel] = taskSpans();
    expect(cancel!.attributes).toMatchObject({ 'parallel_orchestrator.task.outcome': 'cancelled', 'messaging.message.id': 'stopped' });
    expect(cancel!.status.code).toBe(SpanStatusCode.UNSET);
    expect(cancel!.ended).toBe(true);
  });

  it('ends a preempted attempt with outcome preempted and the id of the task that took its slot; the resumed attempt gets its own span', async () => {
    const o = await started(traced({ workerPool: { minWorkers: 1, maxWorkers: 1 } }));
    const reached = deferred();
    o.registerAgent({
      agentId: 'solo',
      role: AgentRole.EXECUTOR,
      capabilities: ['work'],
      maxConcurrent: 1,
      handler: async (task, ctx) => {
        if (task.type === 'background' && ctx.resumeState === undefined) {
          await ctx.checkpoint({ step: 1 });
          reached.resolve();
          await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
          throw ctx.signal.reason;
        }
        return task.type;
      },
    });
    const background = o.submit({ type: 'background', priority: TaskPriority.BACKGROUND, capabilities: ['work'], preemptible: true });
    await reached.promise;
    const critical = o.submit({ type: 'critical', priority: TaskPriority.CRITICAL, capabilities: ['work'] });
    await critical.result();
    await background.result();
    const outcomes = taskSpans().map((span) => [span.name, span.attributes['parallel_orchestrator.task.outcome'], span.attributes['parallel_orchestrator.task.preempted_by'] ?? null]);
    expect(outcomes).toEqual([
      ['process background', 'preempted', critical.taskId],
      ['process critical', 'completed', null],
      ['process background', 'completed', null],
    ]);
  });

  it("makes the attempt's span active in the handler; a task submitted outside any span gets a root span, whatever ran before it", async () => {
    const o = await started(traced());
    const seen: { task: string; active: string | undefined }[] = [];
    // One at a time: the second task is dispatched from the end of the first one's handler.
    executor(
      o,
      'one',
      async (task) => {
        seen.push({ task: task.payload as string, active: trace.getActiveSpan()?.spanContext().spanId });
        tracer.startSpan('inner').end();
      },
      1,
    );
    let second: Promise<unknown> = Promise.resolve();
    const { span: request } = await inSpan('request', async () => {
      const first = o.submit({ type: 'one', capabilities: ['one'], payload: 'first' }).result();
      // Out of the request's context: no parent.
      second = context.with(trace.deleteSpan(context.active()), () => o.submit({ type: 'one', capabilities: ['one'], payload: 'second' }).result());
      return first;
    });
    await second;
    const [firstSpan, secondSpan] = taskSpans();
    const inner = spans.getFinishedSpans().filter((span) => span.name === 'inner');
    expect(seen).toEqual([
      { task: 'first', active: firstSpan!.spanContext().spanId },
      { task: 'second', active: secondSpan!.spanContext().spanId },
    ]);
    expect(inner.map((span) => span.parentSpanContext?.spanId)).toEqual([firstSpan!.spanContext().spanId, secondSpan!.spanContext().spanId]);
    expect(firstSpan!.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(secondSpan!.parentSpanContext).toBeUndefined();
    expect(secondSpan!.spanContext().traceId).not.toBe(request.spanContext().traceId);
  });

  it('makes the span of a thread agent on the main thread around the job, a crash included', async () => {
    const o = await started(traced({ workerPool: { minWorkers: 1, maxWorkers: 1 }, taskQueue: { retry: { initialDelay: 1 } } }));
    o.registerAgent({ agentId: 'fib', role: AgentRole.EXECUTOR, capabilities: ['fib'], module: moduleUrl('fib') });
    o.registerAgent({ agentId: 'crasher', role: AgentRole.EXECUTOR, capabilities: ['crash'], module: moduleUrl('crash') });
    const { span: request } = await inSpan('request', async () => {
      await o.submit({ type: 'fib', capabilities: ['fib'], payload: { n: 10 } }).result();
      await o.submit({ type: 'crash', capabilities: ['crash'], payload: { mode: 'exit', onlyFirstAttempt: true } }).result();
    });
    const [fib, crashed, retried, ...others] = taskSpans();
    expect(others).toEqual([]);
    for (const span of [fib!, crashed!, retried!]) expect(span.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(fib!.attributes).toMatchObject({ 'parallel_orchestrator.agent.id': 'fib', 'parallel_orchestrator.task.outcome': 'completed' });
    expect(crashed!.attributes).toMatchObject({ 'parallel_orchestrator.agent.id': 'crasher', 'parallel_orchestrator.task.attempt': 1, 'parallel_orchestrator.task.outcome': 'failed', 'error.type': 'WORKER_CRASHED' });
    expect(crashed!.status.code).toBe(SpanStatusCode.ERROR);
    expect(retried!.attributes).toMatchObject({ 'parallel_orchestrator.task.attempt': 2, 'parallel_orchestrator.task.outcome': 'completed' });
  });

  it('honours the sampler: a sampled-out task makes no span, and its handler runs in the submitter\'s context', async () => {
    const exporter = new InMemorySpanExporter();
    const sampledOut = new BasicTracerProvider({ sampler: new AlwaysOffSampler(), spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const o = await started({ telemetry: { tracerProvider: sampledOut } });
    let active: string | undefined;
    executor(o, 'quiet', () => (active = trace.getActiveSpan()?.spanContext().spanId));
    const { span: request } = await inSpan('request', () => o.submit({ type: 'quiet', capabilities: ['quiet'] }).result());
    expect(exporter.getFinishedSpans()).toEqual([]);
    expect(active).toBe(request.spanContext().spanId);
    await sampledOut.shutdown();
  });

  it('uses the global provider by default, even one registered after the orchestrator was made, and none when disabled', async () => {
    const byDefault = await started();
    const disabled = await started({ telemetry: { enabled: false } });
    for (const o of [byDefault, disabled]) executor(o, 'echo', (task) => task.payload);
    await byDefault.submit({ type: 'before', capabilities: ['echo'] }).result();
    expect(trace.setGlobalTracerProvider(tracerProvider)).toBe(true);
    try {
      await byDefault.submit({ type: 'after', capabilities: ['echo'] }).result();
      await inSpan('request', () => disabled.submit({ type: 'disabled', capabilities: ['echo'] }).result());
    } finally {
      trace.disable();
    }
    expect(taskSpans().map((span) => span.name)).toEqual(['process after']);
  });
});

describe('metrics', () => {
  let reader: PeriodicExportingMetricReader;
  let exporter: InMemoryMetricExporter;
  let meterProvider: MeterProvider;
  beforeAll(() => {
    exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    meterProvider = new MeterProvider({ readers: [reader] });
  });
  afterAll(() => meterProvider.shutdown());

  /** The data points of each metric of the orchestrator, as collected now. */
  async function collect(): Promise<Map<string, { unit: string; points: DataPoint<unknown>[] }>> {
    exporter.reset();
    await reader.forceFlush();
    const metrics = new Map<string, { unit: string; points: DataPoint<unknown>[] }>();
    for (const resource of exporter.getMetrics()) {
      for (const scope of resource.scopeMetrics) {
        if (scope.scope.name !== 'parallel-orchestrator') continue;
        for (const metric of scope.metrics) metrics.set(metric.descriptor.name, { unit: metric.descriptor.unit, points: metric.dataPoints as DataPoint<unknown>[] });
      }
    }
    return metrics;
  }
  const value = (metrics: Map<string, { points: DataPoint<unknown>[] }>, name: string, attributes: Record<string, unknown> = {}) =>
    metrics.get(name)?.points.find((point) => JSON.stringify(point.attributes) === JSON.stringify(attributes))?.value;

  it('counts tasks, times their waits and runs, and reads queue depth, running tasks and circuit states', async () => {
    const o = await started(traced({ taskQueue: { retry: { initialDelay: 1, jitter: 0 } }, circuitBreaker: { failureThreshold: 2, resetTimeout: 60_000 } }, meterProvider));
    const from = performance.now();
    const hold = deferred();
    const holding = deferred();
    executor(o, 'work', async (task) => {
      if (task.payload === 'retry' && task.attempt === 1) throw new Error('once');
      if (task.payload === 'hold') {
        holding.resolve();
        await hold.promise;
      }
      return task.payload;
    });
    executor(o, 'broken', () => {
      throw new Error('always');
    });
    await Promise.all(['a', 'b', 'retry'].map((payload) => o.submit({ type: 'work', capabilities: ['work'], payload }).result()));
    await settle(o.submit({ type: 'broken', capabilities: ['broken'], retry: { maxAttempts: 2 } }).result());
    const held = o.submit({ type: 'work', capabilities: ['work'], payload: 'hold' });
    await holding.promise;
    for (const priority of [TaskPriority.CRITICAL, TaskPriority.LOW, TaskPriority.LOW]) o.submit({ type: 'later', capabilities: ['nobody-yet'], priority, waitForAgent: true });

    const metrics = await collect();
    const node = { 'parallel_orchestrator.node.id': o.nodeId };
    expect(value(metrics, 'parallel_orchestrator.task.submitted', node)).toBe(8);
    expect(value(metrics, 'parallel_orchestrator.task.completed', node)).toBe(3);
    expect(value(metrics, 'parallel_orchestrator.task.failed', node)).toBe(1);
    expect(value(metrics, 'parallel_orchestrator.task.retried', node)).toBe(2);
    expect(value(metrics, 'parallel_orchestrator.task.running', node)).toBe(1);
    expect([0, 1, 2, 3, 4].map((priority) => value(metrics, 'parallel_orchestrator.task.queued', { ...node, 'parallel_orchestrator.task.priority': priority }))).toEqual([1, 0, 0, 2, 0]);
    const circuit = (agentId: string, state: string) => value(metrics, 'parallel_orchestrator.agent.circuit.state', { ...node, 'parallel_orchestrator.agent.id': agentId, 'parallel_orchestrator.circuit.state': state });
    expect([CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN].map((state) => [circuit('work', state), circuit('broken', state)])).toEqual([
      [1, 0],
      [0, 1],
      [0, 0],
    ]);
    // Attempts: a, b, retry and broken twice each, and the held one, still running.
    const waits = value(metrics, 'parallel_orchestrator.task.wait.duration') as Histogram;
    expect(waits.count).toBe(7);
    // In seconds, and no wait longer than the test so far: a wait in ms, or from the wrong clock, fails.
    const elapsedSeconds = (performance.now() - from) / 1000;
    expect(waits.min).toBeGreaterThanOrEqual(0);
    expect(waits.max).toBeLessThanOrEqual(elapsedSeconds);
    expect(waits.sum).toBeLessThanOrEqual(7 * elapsedSeconds);
    const runs = value(metrics, 'parallel_orchestrator.task.run.duration') as Histogram;
    expect(runs.count).toBe(6);
    expect(runs.sum).toBeLessThan(60);
    for (const name of ['parallel_orchestrator.task.wait.duration', 'parallel_orchestrator.task.run.duration']) expect(metrics.get(name)?.unit).toBe('s');
    for (const name of ['parallel_orchestrator.task.submitted', 'parallel_orchestrator.task.queued', 'parallel_orchestrator.task.running']) expect(metrics.get(name)?.unit).toBe('{task}');

    hold.resolve();
    await held.result();
    await o.shutdown({ graceful: false });
    // After shutdown the meter no longer reads the orchestrator: the last values it read stay.
    const after = await collect();
    expect(value(after, 'parallel_orchestrator.task.completed', node)).toBe(3);
    expect(value(after, 'parallel_orchestrator.task.running', node)).toBe(1);
  });
});

describe('options', () => {
  it('refuses a provider or a logger of the wrong shape, naming the field', () => {
    const cases: [OrchestratorOptions, string][] = [
      [{ telemetry: { tracerProvider: {} as never } }, 'telemetry.tracerProvider'],
      [{ telemetry: { meterProvider: { getMeter: 1 } as never } }, 'telemetry.meterProvider'],
      [{ telemetry: { enabled: 'yes' as never } }, 'telemetry.enabled'],
      [{ telemetry: { sampler: 1 } as never }, 'telemetry.sampler'],
      [{ logger: console.log as never }, 'logger'],
      [{ logger: { debug() {}, info() {}, warn() {}, error() {}, child: 'x' } as never }, 'logger'],
    ];
    for (const [options, field] of cases) expect(refusal(options).field).toBe(field);
  });
});

describe('the logger option', () => {
  /** A pino logger at debug level writing JSON lines into an array; `next(match)` waits for a line. */
  function logged() {
    const lines: Record<string, unknown>[] = [];
    const waiting: { match: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }[] = [];
    const logger = pino(
      { level: 'debug' },
      {
        write(chunk: string) {
          const line = JSON.parse(chunk) as Record<string, unknown>;
          lines.push(line);
          for (const waiter of waiting.filter((w) => w.match(line))) {
            waiting.splice(waiting.indexOf(waiter), 1);
            waiter.resolve(line);
          }
        },
      },
    );
    const next = (match: (line: Record<string, unknown>) => boolean) =>
      new Promise<Record<string, unknown>>((resolve) => {
        const seen = lines.find(match);
        if (seen) resolve(seen);
        else waiting.push({ match, resolve });
      });
    return { logger, lines, next };
  }
  const WARN = 40;
  const ERROR = 50;

  it('logs circuit changes, dead letters, stuck workers, listener errors and its lifecycle through a child logger', async () => {
    const { logger, lines, next } = logged();
    const o = await started({ logger, circuitBreaker: { failureThreshold: 1, resetTimeout: 60_000 }, workerPool: { stuckGrace: 10, healthCheckInterval: 5 } });
    expect(await next((line) => line.msg === 'orchestrator started')).toMatchObject({ level: 30, name: 'parallel-orchestrator', nodeId: o.nodeId });

    executor(o, 'broken', () => {
      throw new Error('always');
    });
    await settle(o.submit({ id: 'doomed', type: 'broken', capabilities: ['broken'], retry: { maxAttempts: 1 } }).result());
    expect(await next((line) => line.agentId === 'broken' && line.to === 'open')).toMatchObject({ level: WARN, from: 'closed' });
    expect(await next((line) => line.taskId === 'doomed')).toMatchObject({ level: WARN, attempts: 1, err: { message: 'always' } });

    // A handler that ignores its abort keeps its slot past the timeout: the worker is stuck.
    executor(o, 'stubborn', () => new Promise(() => {}));
    void settle(o.submit({ id: 'stuck', type: 'stubborn', capabilities: ['stubborn'], timeout: 10, retry: { maxAttempts: 1 } }).result());
    expect(await next((line) => line.taskId === 'stuck' && line.workerId !== undefined)).toMatchObject({ level: WARN, agentId: 'stubborn' });

    o.on('task:completed', () => {
      throw new Error('listener broke');
    });
    executor(o, 'fine', () => 1);
    await o.submit({ type: 'fine', capabilities: ['fine'] }).result();
    expect(await next((line) => line.event === 'task:completed')).toMatchObject({ level: ERROR, err: { message: 'listener broke' } });

    await o.shutdown();
    expect(lines.at(-1)).toMatchObject({ level: 30, graceful: true });
    expect(lines.filter((line) => (line.level as number) >= ERROR).map((line) => line.msg)).toEqual(["a listener of 'task:completed' threw"]);
  });

  it('logs a worker thread that died as an error', async () => {
    const { logger, next } = logged();
    const o = await started({ logger, workerPool: { minWorkers: 1, maxWorkers: 1 }, taskQueue: { retry: { initialDelay: 1 } } });
    o.registerAgent({ agentId: 'crasher', role: AgentRole.EXECUTOR, capabilities: ['crash'], module: moduleUrl('crash') });
    const replaced = nextEvent(o, 'worker:replaced');
    await o.submit({ id: 'crashing', type: 'crash', capabilities: ['crash'], payload: { mode: 'exit', onlyFirstAttempt: true } }).result();
    await replaced;
    expect(await next((line) => line.level === ERROR)).toMatchObject({ taskId: 'crashing', name: 'parallel-orchestrator' });
    expect(await next((line) => line.replacementId !== undefined)).toMatchObject({ level: 30 });
  });
});

const pgAvailable = await postgresAvailable();

describe.skipIf(!pgAvailable)('spans across PostgreSQL nodes', () => {
  let schema = '';
  const live: ParallelOrchestrator[] = [];
  afterEach(async () => {
    await Promise.all(live.splice(0).map((o) => o.shutdown({ graceful: false })));
    if (schema !== '') await dropSchema(schema);
  });

  it("makes the span of a task run by another node a child of the submitter's span, through the task's row", async () => {
    schema = uniqueSchema('po_otel');
    const store: StoreOptions = { type: 'postgres', connectionString: DATABASE_URL, schema, leaseMs: 1_000, pollIntervalMs: 200 };
    const submitter = createParallelOrchestrator(traced({ store }));
    const runner = createParallelOrchestrator(traced({ store }));
    live.push(submitter, runner);
    await Promise.all([submitter.start(), runner.start()]);
    let active: string | undefined;
    runner.registerAgent({
      agentId: 'remote',
      role: AgentRole.EXECUTOR,
      capabilities: ['remote'],
      handler: async (task) => {
        active = trace.getActiveSpan()?.spanContext().spanId;
        return task.payload;
      },
    });
    await runner.flush();
    const { span: request, value: outcome } = await inSpan('request', () => submitter.submit({ id: 'far', type: 'remote-job', capabilities: ['remote'], payload: 3 }).result());
    expect(outcome.result).toBe(3);
    const [span, ...others] = taskSpans();
    expect(others).toEqual([]);
    expect(span!.spanContext().traceId).toBe(request.spanContext().traceId);
    expect(span!.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(span!.parentSpanContext?.isRemote).toBe(true);
    expect(span!.attributes).toMatchObject({ 'parallel_orchestrator.agent.id': 'remote', 'parallel_orchestrator.task.outcome': 'completed' });
    expect(active).toBe(span!.spanContext().spanId);
    const [row] = await sql<{ trace: Record<string, string> }>(`select trace from ${schema}.tasks where id = $1`, ['far']);
    expect(row!.trace.traceparent).toBe(`00-${request.spanContext().traceId}-${request.spanContext().spanId}-01`);
  });
});
