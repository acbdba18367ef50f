import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error.js';

/**
 * Reads a JSON body of at most `limit` bytes. An empty body is `undefined`. The declared length is
 * checked before reading, and the bytes as they arrive (a chunked body declares none), so an
 * oversized body is refused without being held. @throws HttpError 413, 415 or 400
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `the body must be JSON (content-type: application/json; received ${type === '' ? 'none' : JSON.stringify(type.slice(0, 60))})`);
  }
  try {
    return JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
  } catch (error) {
    throw new HttpError(400, 'INVALID_JSON', `the body is not valid JSON: ${(error as Error).message}`);
  }
}

function tooLarge(limit: number): HttpError {
  // The rest of the body is not read: the connection is closed after the response.
  return new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body is larger than ${limit} bytes`, undefined, { connection: 'close' });
}

/** The path split into decoded segments (`/api/tasks/a%2Fb` → ['api', 'tasks', 'a/b']). @throws HttpError 400 */
export function pathSegments(pathname: string): string[] {
  try {
    return pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
  } catch {
    throw new HttpError(400, 'INVALID_PATH', 'the path is not validly percent-encoded');
  }
}

/** Query parameters, refusing unknown or repeated ones. @throws HttpError 400 */
export function queryParams(url: URL, known: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of url.searchParams) {
    if (!known.includes(name)) {
      throw new HttpError(400, 'INVALID_ARGUMENT', `${name} is not a known query parameter (known: ${known.join(', ') || 'none'})`, name);
    }
    if (out.has(name)) throw new HttpError(400, 'INVALID_ARGUMENT', `${name} is given more than once`, name);
    out.set(name, value);
  }
  return out;
}

/** An integer query parameter within bounds, or undefined when absent. @throws HttpError 400 */
export function intParam(params: Map<string, string>, name: string, min: number, max: number): number | undefined {
  const raw = params.get(name);
  if (raw === undefined) return undefined;
  const value = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new HttpError(400, 'INVALID_ARGUMENT', `${name} must be an integer ${min}..${max} (received ${JSON.stringify(raw.slice(0, 40))})`, name);
  }
  return value;
}
