// Hostile inputs to the telemetry and logger options, and an OpenTelemetry SDK (or a context, or
// an error) that throws: each must be refused at construction, naming the field, or be survived
// by the task that met it. Real SDK components throughout; thread agents are not involved.
import { ProxyTracerProvider, SpanStatusCode, context, trace, type Span, type TracerProvider } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { AgentRole, createParallelOrchestrator, type ParallelOrchestrator } from '../dist/index.js';
import { settle, useOrchestrators } from './helpers.js';
import { refusal, useInMemoryTracing } from './otel-helpers.js';

const started = useOrchestrators(createParallelOrchestrator);
const { spans, tracerProvider } = useInMemoryTracing();

/** A metric reader collected on demand. */
class Reader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** The process warnings emitted while `fn` runs. */
async function warningsDuring(fn: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const listener = (warning: Error): void => void seen.push(warning.message);
  process.on('warning', listener);
  try {
    await fn();
    // 'warning' is emitted on the next tick after process.emitWarning.
    await new Promise((resolve) => process.nextTick(resolve));
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', listener);
  }
  return seen;
}

function echo(o: ParallelOrchestrator, handler: (payload: unknown) => unknown = (payload) => payload): void {
  o.registerAgent({ agentId: 'echo', role: AgentRole.EXECUTOR, capabilities: ['echo'], handler: async (task) => handler(task.payload) });
}

describe('providers and loggers that break once called', () => {
  it('refuses a meter provider whose getMeter() throws or returns junk, or whose meter throws, naming telemetry.meterProvider', () => {
    const providers = [
      { getMeter: () => { throw new Error('no meter'); } },
      { getMeter: () => null },
      { getMeter: () => ({}) },
      { getMeter: () => ({ createHistogram: () => { throw new Error('no histogram'); } }) },
    ];
    for (const meterProvider of providers) {
      const error = refusal({ telemetry: { meterProvider: meterProvider as never } });
      expect(error.field).toBe('telemetry.meterProvider');
    }
    expect(refusal({ telemetry: { meterProvider: providers[0] as never } }).message).toContain('no meter');
  });

  it('refuses a tracer provider whose getTracer() throws or returns junk at construction, naming telemetry.tracerProvider', () => {
    for (const getTracer of [() => { throw new Error('no tracer'); }, () => ({}), () => 42]) {
      const error = refusal({ telemetry: { tracerProvider: { getTracer } as never } });
      expect(error.field).toBe('telemetry.tracerProvider');
    }
  });

  it('refuses a logger whose child() throws or is no logger, or whose methods cannot be read, naming logger', () => {
    const methods = { debug() {}, info() {}, warn() {}, error() {} };
    const loggers = [
      { ...methods, child: () => { throw new Error('no child'); } },
      { ...methods, child: () => undefined },
      { ...methods, child: () => ({ info() {} }) },
      Object.defineProperty({ debug() {}, info() {}, warn() {} }, 'error', { get: () => { throw new Error('getter'); } }),
    ];
    for (const logger of loggers) expect(refusal({ logger: logger as never }).field).toBe('logger');
  });

  it('leaves no metrics callback behind when the logger is refused', async () => {
    const reader = new Reader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    refusal({ logger: { debug() {}, info() {}, warn() {}, error() {}, child: () => null } as never, telemetry: { meterProvider } });
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    const points = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics).flatMap((metric) => metric.dataPoints as unknown[]);
    expect(points).toEqual([]);
    await meterProvider.shutdown();
  });
});

describe('an SDK that throws while tasks run', () => {
  const processor = (part: 'onStart' | 'onEnd'): SpanProcessor => ({
    onStart: () => {
      if (part === 'onStart') throw new Error('onStart broke');
    },
    onEnd: () => {
      if (part === 'onEnd') throw new Error('onEnd broke');
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  });
  const broken: [string, () => TracerProvider][] = [
    ['a span processor whose onStart throws', () => new BasicTracerProvider({ spanProcessors: [processor('onStart')] })],
    ['a span processor whose onEnd throws', () => new BasicTracerProvider({ spanProcessors: [processor('onEnd')] })],
    ['a sampler that throws', () => new BasicTracerProvider({ sampler: { shouldSample: () => { throw new Error('sampler broke'); }, toString: () => 'broken' } })],
    [
      'a global provider whose getTracer() returns junk, resolved at the first task',
      () => {
        const proxy = new ProxyTracerProvider();
        proxy.setDelegate({ getTracer: () => ({}) } as never);
        return proxy;
      },
    ],
  ];
  for (const [name, provider] of broken) {
    it(`completes tasks despite ${name}, warning once`, async () => {
      const o = await started({ telemetry: { tracerProvider: provider() } });
      echo(o);
      const warnings = await warningsDuring(async () => {
        const results = await Promise.all([1, 2, 3].map((payload) => o.submit({ type: 'echo', capabilities: ['echo'], payload }).result()));
        expect(results.map((outcome) => outcome.result)).toEqual([1, 2, 3]);
      });
      expect(warnings.filter((message) => message.startsWith('telemetry:'))).toHaveLength(1);
    });
  }

  it('submits a task once, as a root span, when the active span is hostile (spanContext() throws, or is no span)', async () => {
    const o = await started({ telemetry: { tracerProvider } });
    let runs = 0;
    echo(o, (payload) => {
      runs++;
      return payload;
    });
    const hostile = [{ spanContext: () => { throw new Error('no context'); } }, { spanContext: () => ({ get traceId(): string { throw new Error('no id'); }, spanId: 'b7ad6b7169203331', traceFlags: 1 }) }, 42];
    for (const [i, span] of hostile.entries()) {
      const observable = context.with(trace.setSpan(context.active(), span as unknown as Span), () => o.submit({ type: 'hostile', capabilities: ['echo'], payload: i }));
      expect((await observable.result()).result).toBe(i);
    }
    expect(runs).toBe(hostile.length);
    const made = spans.getFinishedSpans().filter((span) => span.name === 'process hostile');
    expect(made).toHaveLength(hostile.length);
    for (const span of made) expect(span.parentSpanContext).toBeUndefined();
  });
});

describe('errors whose properties throw', () => {
  it("ends the failed attempt's span with error status and the exception when the error's name or message getter throws", async () => {
    class BadName extends Error {
      override get name(): string {
        throw new Error('name getter');
      }
    }
    class BadMessage extends Error {
      constructor() {
        super('unused');
        Object.defineProperty(this, 'message', {
          get: () => {
            throw new Error('message getter');
          },
        });
      }
    }
    const o = await started({ telemetry: { tracerProvider } });
    echo(o, (payload) => {
      throw payload === 'name' ? new BadName('bad name') : new BadMessage();
    });
    for (const payload of ['name', 'message']) {
      const outcome = await settle(o.submit({ type: `bad-${payload}`, capabilities: ['echo'], payload, retry: { maxAttempts: 1 } }).result());
      expect(outcome.ok).toBe(false);
    }
    const [byName, byMessage] = ['process bad-name', 'process bad-message'].map((name) => spans.getFinishedSpans().find((span) => span.name === name)!);
    for (const span of [byName!, byMessage!]) {
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
      expect(span.attributes['parallel_orchestrator.task.outcome']).toBe('failed');
      expect(span.events.map((event) => event.name)).toEqual(['exception']);
    }
    // The engine replaces such an error with a readable one (its cause) before any sink sees it.
    for (const span of [byName!, byMessage!]) {
      expect(span.status.message).toBe('an error was thrown whose message, name, code or retryable cannot be read');
      expect(span.attributes['error.type']).toBe('Error');
    }
  });
});
