import { AsyncResource } from 'node:async_hooks';

/**
 * The submitter's async context (AsyncLocalStorage stores, tracing spans), for an in-process
 * handler to run in, bound as worker pools bind theirs: an AsyncResource per task, created when it
 * is submitted. (Node 20 offers no cheaper way to know whether there is any context to keep: a
 * store set by `AsyncLocalStorage.run()` can sit on the current resource whatever
 * `executionAsyncId()` says.)
 */
export function captureScope(): AsyncResource {
  return new AsyncResource('parallel-orchestrator.task', { requireManualDestroy: true });
}

/** Calls the handler in the submitter's context. */
export function runInScope<A extends unknown[], R>(scope: AsyncResource | null, fn: (...args: A) => R, ...args: A): R {
  return scope === null ? fn(...args) : scope.runInAsyncScope(fn, null, ...args);
}
