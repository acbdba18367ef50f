/** Nesting a state may have: deeper (or cyclic) states are refused with a TypeError. */
const MAX_JSON_DEPTH = 1000;

/**
 * A deep copy of a value as JSON would carry it (undefined and functions dropped from objects,
 * `null` in arrays, `toJSON` honoured). Hand-written because it runs on every progress update:
 * JSON.parse(JSON.stringify()) and structuredClone cost 3-5x more on small states, and
 * structuredClone keeps non-JSON types that a patch could not describe.
 */
export function cloneJson(value: unknown, depth = 0): unknown {
  if (typeof value !== 'object' || value === null) {
    return typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint' ? undefined : value;
  }
  // A cycle would recurse until the stack overflows; a state this deep is almost surely one.
  if (depth > MAX_JSON_DEPTH) throw new TypeError(`the state is cyclic or nested deeper than ${MAX_JSON_DEPTH} levels, which JSON cannot carry`);
  const json = value as { toJSON?: () => unknown };
  if (typeof json.toJSON === 'function') return cloneJson(json.toJSON(), depth + 1);
  if (Array.isArray(value)) {
    const copy = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) {
      const item = cloneJson(value[i], depth + 1);
      copy[i] = item === undefined ? null : item;
    }
    return copy;
  }
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const item = cloneJson((value as Record<string, unknown>)[key], depth + 1);
    if (item === undefined) continue;
    // An own "__proto__" key (JSON.parse makes those) must stay data, not become the prototype.
    if (key === '__proto__') Object.defineProperty(copy, key, { value: item, enumerable: true, writable: true, configurable: true });
    else copy[key] = item;
  }
  return copy;
}

/** True for values a JSON Patch can address inside: objects and arrays. */
export function isContainer(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}
