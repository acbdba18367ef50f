/**
 * JSON for the wire (HTTP bodies, SSE data, `--json` lines): event payloads and task results are
 * whatever handlers produced, so this never throws. Errors become `{ name, message, code?, field? }`
 * (never a stack, never the other properties an error may carry, such as a request's headers),
 * bigints become strings, cycles become "[Circular]", and nesting deeper than MAX_DEPTH is cut.
 */
const MAX_DEPTH = 64;

/** The error fields a client may see. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  field?: string;
}

export function wireError(error: unknown): WireError {
  // An Error, or an error as a store keeps it ({ name, message, code }).
  const like = typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string';
  if (!like) return { name: 'Error', message: typeof error === 'string' ? error : safeString(error) };
  const { name } = error as { name?: unknown };
  const out: WireError = { name: typeof name === 'string' ? name : 'Error', message: (error as { message: string }).message };
  const { code, field } = error as { code?: unknown; field?: unknown };
  if (typeof code === 'string') out.code = code;
  if (typeof field === 'string') out.field = field;
  return out;
}

/** `JSON.stringify` that accepts anything (see the module comment). */
export function stringify(value: unknown, indent?: number): string {
  try {
    // The fast path: plain data, with errors and bigints replaced.
    return JSON.stringify(value, replacer, indent) ?? 'null';
  } catch {
    // A cycle (or a throwing toJSON): copy with cycle detection.
    return JSON.stringify(toPlain(value, [], 0), null, indent) ?? 'null';
  }
}

function replacer(this: unknown, _key: string, value: unknown): unknown {
  if (value instanceof Error) return wireError(value);
  if (typeof value === 'bigint') return value.toString();
  return value;
}

function toPlain(value: unknown, ancestors: object[], depth: number): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return typeof value === 'function' || typeof value === 'symbol' ? undefined : value;
  if (value instanceof Error) return wireError(value);
  if (ancestors.includes(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Too deep]';
  let source: unknown = value;
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    try {
      source = toJSON.call(value);
    } catch {
      return '[Unserializable]';
    }
    if (source === null || typeof source !== 'object') return toPlain(source, ancestors, depth + 1);
  }
  ancestors.push(value);
  try {
    if (Array.isArray(source)) return source.map((item) => toPlain(item, ancestors, depth + 1) ?? null);
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(source as object)) {
      let item: unknown;
      try {
        item = (source as Record<string, unknown>)[key];
      } catch {
        continue;
      }
      const plain = toPlain(item, ancestors, depth + 1);
      if (plain !== undefined) out[key] = plain;
    }
    return out;
  } finally {
    ancestors.pop();
  }
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return 'a value that cannot be shown';
  }
}
