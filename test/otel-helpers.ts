import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { InvalidOptionsError, createParallelOrchestrator, type OrchestratorOptions } from '../dist/index.js';

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

/** The InvalidOptionsError that creating an orchestrator with `options` throws (fails the test if none). */
export function refusal(options: OrchestratorOptions): InvalidOptionsError {
  let thrown: unknown;
  try {
    createParallelOrchestrator(options);
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(InvalidOptionsError);
  return thrown as InvalidOptionsError;
}
