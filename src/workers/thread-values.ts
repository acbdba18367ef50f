/**
 * Checks, in the thread that made them, the values a thread agent sends to the main thread, so
 * that a value the main thread could not take fails the handler's own call with a TypeError
 * instead of failing (or crashing) the main thread when it arrives.
 */

/**
 * Deepest nesting of objects and arrays a value may have. Node's deserializer on the main
 * thread gives up near 1,930 levels of objects (3,250 of arrays) with the default stack, and
 * drops the whole message; the streaming code's own recursion lasts past 4,000.
 */
export const MAX_DEPTH = 1000;

/** Objects visited by the quick walk of a result before the exact one (which remembers each) takes over. */
const QUICK_WALK_NODES = 100_000;

/**
 * What keeps a result from reaching the main thread whole, or null: nesting deeper than
 * MAX_DEPTH as structured cloning counts it (each object once, so cycles are fine).
 */
export function resultProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return null;
  // Most results are trees: walked without remembering objects; a cycle, shared objects or a
  // huge result end the quick walk early, and the exact walk decides.
  if (!tooDeep(value, 0, null, { nodes: 0 })) return null;
  return tooDeep(value, 0, new Set(), { nodes: 0 }) ? `is nested deeper than ${MAX_DEPTH} levels, more than a worker thread can send` : null;
}

/** True when `value` nests deeper than MAX_DEPTH; also (without `seen`) when the quick walk gives up. */
function tooDeep(value: unknown, depth: number, seen: Set<object> | null, walked: { nodes: number }): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (seen === null) {
    if (++walked.nodes > QUICK_WALK_NODES) return true;
  } else if (seen.has(value)) {
    return false;
  } else {
    seen.add(value);
  }
  if (depth === MAX_DEPTH) return true;
  if (ArrayBuffer.isView(value) || value instanceof Date || value instanceof RegExp || value instanceof Error) return false;
  if (value instanceof Map) {
    for (const [key, item] of value) if (tooDeep(key, depth + 1, seen, walked) || tooDeep(item, depth + 1, seen, walked)) return true;
    return false;
  }
  const items: Iterable<unknown> = Array.isArray(value) || value instanceof Set ? value : Object.values(value);
  for (const item of items) if (tooDeep(item, depth + 1, seen, walked)) return true;
  return false;
}

/**
 * A JSON copy of a progress or checkpoint state (`.value`, and its `.size`), as the main
 * thread's `cloneJson` makes it (`toJSON` honoured; undefined, functions and symbols dropped
 * from objects and `null` in arrays). @throws TypeError naming `what`, the problem and where it is: a BigInt, a cycle,
 * nesting deeper than MAX_DEPTH, or a state that is itself a function or a symbol.
 */
export function jsonState(value: unknown, what: string): JsonCopy {
  if (typeof value === 'function' || typeof value === 'symbol') throw new TypeError(`${what} must be a JSON value, not a ${typeof value}`);
  const copy = new JsonCopy(what);
  copy.value = copy.copy(value, 0);
  return copy;
}

class JsonCopy {
  value: unknown;
  /** Values copied (objects, arrays and primitives alike): what the copy costs to send and diff. */
  size = 0;
  /** The containers on the path to the value being copied, and the key taken in each. */
  readonly #ancestors: object[] = [];
  readonly #keys: (string | number)[] = [];

  constructor(readonly what: string) {}

  copy(value: unknown, depth: number): unknown {
    this.size++;
    if (typeof value !== 'object' || value === null) {
      if (typeof value === 'bigint') throw this.#problem('a BigInt, which JSON cannot carry', depth);
      return typeof value === 'function' || typeof value === 'symbol' ? undefined : value;
    }
    const json = value as { toJSON?: () => unknown };
    if (typeof json.toJSON === 'function') return this.copy(json.toJSON(), depth);
    // A cycle nests without end: it is told apart from deep nesting only once the limit is hit.
    if (depth === MAX_DEPTH) throw this.#tooDeep(depth);
    this.#ancestors[depth] = value;
    if (Array.isArray(value)) {
      const copy = new Array<unknown>(value.length);
      for (let i = 0; i < value.length; i++) {
        this.#keys[depth] = i;
        const item = this.copy(value[i], depth + 1);
        copy[i] = item === undefined ? null : item;
      }
      return copy;
    }
    const copy: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      this.#keys[depth] = key;
      const item = this.copy((value as Record<string, unknown>)[key], depth + 1);
      if (item === undefined) continue;
      // An own "__proto__" key (JSON.parse makes those) must stay data, not become the prototype.
      if (key === '__proto__') Object.defineProperty(copy, key, { value: item, enumerable: true, writable: true, configurable: true });
      else copy[key] = item;
    }
    return copy;
  }

  #tooDeep(depth: number): TypeError {
    const ancestors = this.#ancestors;
    for (let d = 1; d < depth; d++) {
      const first = ancestors.indexOf(ancestors[d]!);
      if (first < d) return this.#problem(`a cycle, which JSON cannot carry: it refers back to ${this.#path(first)}`, d);
    }
    return this.#problem(`nesting deeper than ${MAX_DEPTH} levels, more than a worker thread can send`, depth);
  }

  #problem(problem: string, depth: number): TypeError {
    return new TypeError(`${this.what} has ${problem} (at ${this.#path(depth)})`);
  }

  /** A JSON Pointer to the value at `depth` on the current path. */
  #path(depth: number): string {
    if (depth === 0) return 'the top';
    const segments = this.#keys.slice(0, depth).map((key) => `/${String(key).replaceAll('~', '~0').replaceAll('/', '~1')}`);
    return segments.length > 8 ? `${segments.slice(0, 8).join('')}/… (${depth} levels)` : segments.join('');
  }
}
