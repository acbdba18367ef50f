import { AsyncResource, executionAsyncId } from 'node:async_hooks';

/**
 * The submitter's async context (AsyncLocalStorage stores, tracing spans), for an in-process
 * handler to run in, as worker pools bind theirs with AsyncResource.
 *
 * An AsyncResource per task costs (its creation, and keeping it alive with the queued task) a
 * third of the engine's throughput, so none is made when there is no context to keep: in a
 * promise continuation that runs with async hooks off, `executionAsyncId()` is 0, and with hooks
 * off no AsyncLocalStorage has a store (enabling one turns them on).
 */
export function captureScope(): AsyncResource | null {
  return executionAsyncId() === 0 ? null : new AsyncResource('parallel-orchestrator.task', { requireManualDestroy: true });
}

/** A context with no stores, made when this module loads: where a task without one runs once hooks are on. */
let emptyScope: AsyncResource | null = null;

/**
 * Calls the handler in `scope`, or, for a task submitted without context, in an empty one when
 * hooks are on by now (so it never runs in the context of whatever dispatched it).
 */
export function runInScope<A extends unknown[], R>(scope: AsyncResource | null, fn: (...args: A) => R, ...args: A): R {
  if (scope !== null) return scope.runInAsyncScope(fn, null, ...args);
  if (executionAsyncId() === 0) return fn(...args);
  return (emptyScope ??= new AsyncResource('parallel-orchestrator.empty', { requireManualDestroy: true })).runInAsyncScope(fn, null, ...args);
}
