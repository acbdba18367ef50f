import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll } from 'vitest';

/**
 * A tracer provider whose spans go to an in-memory exporter (emptied after each test), with the
 * async-hooks context manager registered for the file's tests (as an application would).
 */
export function useInMemoryTracing(): { spans: InMemorySpanExporter; tracerProvider: BasicTracerProvider } {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const contextManager = new AsyncLocalStorageContextManager();
  beforeAll(() => {
    context.setGlobalContextManager(contextManager.enable());
  });
  afterAll(async () => {
    context.disable();
    await tracerProvider.shutdown();
  });
  afterEach(() => spans.reset());
  return { spans, tracerProvider };
}
