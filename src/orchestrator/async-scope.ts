import { AsyncLocalStorage, AsyncResource, executionAsyncResource } from 'node:async_hooks';

/**
 * The submitter's async context (AsyncLocalStorage stores, tracing spans), for an in-process
 * handler to run in, bound as worker pools bind theirs: an AsyncResource per task, created when
 * it is submitted.
 *
 * An AsyncResource costs about as much as the rest of a submit, and most submits have no context
 * to keep. Where Node keeps AsyncLocalStorage stores as symbol-keyed properties of the current
 * async resource (Node 20 and 22 without async context frames), a submit whose resource holds
 * no store has nothing to keep: its task gets no resource and runs in an empty context.
 * Elsewhere every task gets its resource.
 */
const storeKey = findStoreKey();

/**
 * The description of the symbols under which stores sit on resources, or null when they do not:
 * such a storage names its symbol in its own `kResourceStore` property. Read from an instance
 * that is never run: running one would turn on promise hooks, which slow every promise of the
 * process for good.
 */
function findStoreKey(): string | null {
  const key = (new AsyncLocalStorage() as unknown as { kResourceStore?: unknown }).kResourceStore;
  return typeof key === 'symbol' ? (key.description ?? null) : null;
}

/** True when some AsyncLocalStorage has a store on `resource`. */
function holdsStores(resource: object): boolean {
  const symbols = Object.getOwnPropertySymbols(resource);
  for (let i = 0; i < symbols.length; i++) {
    const symbol = symbols[i]!;
    if (symbol.description === storeKey && (resource as Record<symbol, unknown>)[symbol] !== undefined) return true;
  }
  return false;
}

/** Clears every store on `resource`. */
function clearStores(resource: object): void {
  for (const symbol of Object.getOwnPropertySymbols(resource)) if (symbol.description === storeKey) (resource as Record<symbol, unknown>)[symbol] = undefined;
}

/** The context of tasks submitted in none, when the dispatching code has one of its own. */
let emptyScope: AsyncResource | null = null;

function empty(): AsyncResource {
  if (emptyScope === null) {
    emptyScope = new AsyncResource('parallel-orchestrator.empty', { requireManualDestroy: true });
    clearStores(emptyScope);
  }
  return emptyScope;
}

/** The submitter's context, or null when it has none to keep. */
export function captureScope(): AsyncResource | null {
  if (storeKey !== null && !holdsStores(executionAsyncResource())) return null;
  return new AsyncResource('parallel-orchestrator.task', { requireManualDestroy: true });
}

/** Calls the handler in the submitter's context (an empty one for a task submitted in none). Two arguments: no rest array per call. */
export function runInScope<A, B, R>(scope: AsyncResource | null, fn: (a: A, b: B) => R, a: A, b: B): R {
  if (scope !== null) return scope.runInAsyncScope(fn, null, a, b);
  // Dispatched from code that has a context (another task's completion): not the handler's.
  // (Dispatch runs in the engine's own microtasks and continuations, never in a caller's code, so
  // a store a handler enters there dies with that pass, and the next handler comes here.)
  if (holdsStores(executionAsyncResource())) return runEmpty(fn, a, b);
  return fn(a, b);
}

function runEmpty<A, B, R>(fn: (a: A, b: B) => R, a: A, b: B): R {
  const scope = empty();
  try {
    return scope.runInAsyncScope(fn, null, a, b);
  } finally {
    // A handler's enterWith() left a store on the shared empty context: the next task gets a fresh one.
    if (holdsStores(scope)) emptyScope = null;
  }
}
