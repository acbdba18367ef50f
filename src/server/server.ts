import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { InvalidArgumentError, InvalidOptionsError } from '../errors.js';
import type { ParallelOrchestrator } from '../index.js';
import { apiRoutes, sendJson, type Route } from './api.js';
import { hostName, isLoopback, TokenCheck } from './auth.js';
import { errorResponse, HttpError } from './http-error.js';
import { pathSegments } from './request.js';
import { EventStream } from './sse.js';
import { loadStaticFiles, type StaticFile } from './static-files.js';

/** Options of `createServer`. Every field is optional. */
export interface PorchServerOptions {
  /**
   * Bearer token that every `/api` request and `/metrics` must carry (`Authorization: Bearer <token>`),
   * compared in constant time. Required to listen on an address other than loopback.
   * @default none: only loopback clients, with a `Host` header naming a loopback host, are served
   */
  token?: string;
  /** Largest request body, bytes; a larger one gets 413. @default 1048576 (1 MiB) */
  bodyLimit?: number;
  /** Serve the dashboard at `/`. @default true */
  dashboard?: boolean;
  /** ms between keep-alive comments on event streams. @default 15000 */
  keepAliveInterval?: number;
  /** An event-stream client that reads nothing for this long, while events wait, is disconnected (ms). @default 30000 */
  stallTimeout?: number;
  /** Most event streams open at once; more get 503. @default 100 */
  maxEventStreams?: number;
  /**
   * Called with errors the server cannot answer with a clear status (a 500, a failed stream):
   * the client sees only `internal error`. @default process.emitWarning
   */
  onError?: (error: unknown) => void;
}

/** Where `listen()` binds. */
export interface ListenOptions {
  /** 0 picks a free port. @default 7070 */
  port?: number;
  /** Any other address than loopback needs `token`. @default '127.0.0.1' */
  host?: string;
}

/** The HTTP API, the event streams and the dashboard of one orchestrator. */
export interface PorchServer {
  /**
   * Starts listening; resolves with the URL (`http://127.0.0.1:7070/`).
   * @throws InvalidArgumentError (field `token`) for a non-loopback host without a token; the listen error (EADDRINUSE, …)
   */
  listen(options?: ListenOptions): Promise<string>;
  /** The URL once listening, else undefined. */
  readonly url: string | undefined;
  /**
   * Stops listening, ends the event streams and waits for requests in flight (at most 5 s).
   * The orchestrator is not shut down: it is the caller's. Idempotent.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const optionsSchema = z.strictObject({
  token: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).optional(),
  bodyLimit: z.int({ error: 'must be a number of bytes' }).min(1, { error: 'must be ≥ 1 byte' }).optional(),
  dashboard: z.boolean({ error: 'must be true or false' }).optional(),
  keepAliveInterval: z.number({ error: 'must be a number of ms' }).min(10, { error: 'must be ≥ 10 ms' }).optional(),
  stallTimeout: z.number({ error: 'must be a number of ms' }).min(10, { error: 'must be ≥ 10 ms' }).optional(),
  maxEventStreams: z.int({ error: 'must be an integer' }).min(1, { error: 'must be ≥ 1' }).optional(),
  onError: z.custom<(error: unknown) => void>((f) => typeof f === 'function', { error: 'must be a function' }).optional(),
});

const listenSchema = z.strictObject({
  port: z.int({ error: 'must be an integer 0..65535' }).min(0, { error: 'must be 0..65535' }).max(65535, { error: 'must be 0..65535' }).optional(),
  host: z.string({ error: 'must be a host name or address' }).min(1, { error: 'must be a host name or address' }).optional(),
});

const CLOSE_GRACE_MS = 5_000;
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};
const PAGE_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * Creates the HTTP server of `porch serve` for an orchestrator: the JSON API under `/api`, event
 * streams (Server-Sent Events), `/metrics` (Prometheus), `/healthz` and the dashboard at `/`.
 * It uses only the orchestrator's public API, so it works the same on every store.
 *
 * @throws InvalidOptionsError naming a bad option
 * @example
 * const server = createServer(orchestrator, { token: process.env.PORCH_TOKEN });
 * console.log(await server.listen({ port: 7070 })); // http://127.0.0.1:7070/
 * // later
 * await server.close();
 * await orchestrator.shutdown();
 */
export function createServer(orchestrator: ParallelOrchestrator, options: PorchServerOptions = {}): PorchServer {
  const checked = optionsSchema.safeParse(options);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    const field = issue.code === 'unrecognized_keys' ? String(issue.keys[0]) : issue.path.map(String).join('.');
    throw new InvalidOptionsError(field, issue.code === 'unrecognized_keys' ? 'is not a known option (check its spelling)' : issue.message);
  }
  return new Server(orchestrator, checked.data);
}

class Server implements PorchServer {
  readonly orchestrator: ParallelOrchestrator;
  readonly bodyLimit: number;
  readonly #token: TokenCheck | null;
  readonly #dashboard: boolean;
  readonly #streamSettings: { keepAliveInterval: number; stallTimeout: number };
  readonly #maxStreams: number;
  readonly #onError: (error: unknown) => void;
  readonly #routes: Route[];
  readonly #streams = new Set<EventStream>();
  #static: Promise<Map<string, StaticFile>> | null = null;
  #http: HttpServer | null = null;
  #url: string | undefined;
  #closing: Promise<void> | null = null;
  #stopped = false;

  constructor(orchestrator: ParallelOrchestrator, options: PorchServerOptions) {
    this.orchestrator = orchestrator;
    this.bodyLimit = options.bodyLimit ?? 1024 * 1024;
    this.#token = options.token === undefined ? null : new TokenCheck(options.token);
    this.#dashboard = options.dashboard ?? true;
    this.#streamSettings = { keepAliveInterval: options.keepAliveInterval ?? 15_000, stallTimeout: options.stallTimeout ?? 30_000 };
    this.#maxStreams = options.maxEventStreams ?? 100;
    this.#onError = options.onError ?? ((error) => process.emitWarning(`porch server: ${error instanceof Error ? error.message : String(error)}`, 'PorchServerWarning'));
    this.#routes = apiRoutes(this);
    // The event stream holds history from its first use on: start it now, so a client that
    // reconnects with Last-Event-ID can be given what happened since the server was created.
    const started = new AbortController();
    started.abort();
    void orchestrator.events({ signal: started.signal }).return?.();
    orchestrator.once('orchestrator:shutdown', () => (this.#stopped = true));
  }

  get url(): string | undefined {
    return this.#url;
  }

  get eventStreams(): number {
    return this.#streams.size;
  }

  async listen(options: ListenOptions = {}): Promise<string> {
    const parsed = listenSchema.safeParse(options);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new InvalidArgumentError(issue.code === 'unrecognized_keys' ? String(issue.keys[0]) : issue.path.map(String).join('.'), issue.code === 'unrecognized_keys' ? 'is not a known option' : issue.message);
    }
    const port = parsed.data.port ?? 7070;
    const host = parsed.data.host ?? '127.0.0.1';
    if (this.#token === null && !isLoopback(host)) {
      throw new InvalidArgumentError('token', `must be set to listen on ${host}, which other machines can reach (set a token, or listen on 127.0.0.1)`);
    }
    if (this.#http !== null || this.#closing !== null) throw new InvalidArgumentError('listen', 'was already called on this server');
    const http = createHttpServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => void this.#handle(req, res));
    this.#http = http;
    if (this.#dashboard) this.#static = loadStaticFiles();
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, host, () => {
        http.off('error', reject);
        resolve();
      });
    });
    http.on('error', (error) => this.#onError(error));
    const address = http.address() as AddressInfo;
    const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.#url = `http://${shown}:${address.port}/`;
    return this.#url;
  }

  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(): Promise<void> {
    const http = this.#http;
    for (const stream of this.#streams) stream.close();
    if (http === null) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => http.closeAllConnections(), CLOSE_GRACE_MS);
      force.unref();
      http.close(() => {
        clearTimeout(force);
        resolve();
      });
      http.closeIdleConnections();
    });
    this.#url = undefined;
  }

  openStream(req: IncomingMessage, res: ServerResponse): EventStream {
    if (this.#closing !== null) throw new HttpError(503, 'SHUTTING_DOWN', 'the server is shutting down');
    if (this.#streams.size >= this.#maxStreams) {
      throw new HttpError(503, 'TOO_MANY_STREAMS', `${this.#maxStreams} event streams are open already; try again later`, undefined, { 'retry-after': '5' });
    }
    const stream = new EventStream(req, res, this.#streamSettings);
    this.#streams.add(stream);
    stream.signal.addEventListener('abort', () => this.#streams.delete(stream), { once: true });
    return stream;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
      const url = parseUrl(req.url);
      this.#checkOrigin(req);
      const path = url.pathname;
      if (path === '/healthz') return this.#health(req, res);
      const api = path === '/api' || path.startsWith('/api/') || path === '/metrics';
      if (api) {
        this.#authorize(req);
        return await this.#route(req, res, url);
      }
      return await this.#serveStatic(req, res, path);
    } catch (error) {
      this.#fail(req, res, error);
    }
  }

  /**
   * Without a token the server answers only requests addressed to a loopback name, so a web
   * page that rebinds its own DNS name to 127.0.0.1 cannot read or drive it; and it refuses
   * state changes from a page of another origin (browsers send Origin on cross-site requests).
   */
  #checkOrigin(req: IncomingMessage): void {
    if (this.#token === null) {
      const name = hostName(req.headers.host);
      if (name === undefined || !isLoopback(name)) {
        throw new HttpError(403, 'FORBIDDEN_HOST', 'this server answers only requests to a loopback host (127.0.0.1, localhost, [::1]); start it with a token to serve other names');
      }
    }
    const origin = req.headers.origin;
    if (req.method !== 'GET' && req.method !== 'HEAD' && origin !== undefined) {
      let originHost: string | undefined;
      try {
        originHost = new URL(origin).host;
      } catch {
        originHost = undefined;
      }
      if (originHost !== req.headers.host) throw new HttpError(403, 'CROSS_ORIGIN', 'requests from another origin are refused (CORS is off)');
    }
  }

  #authorize(req: IncomingMessage): void {
    if (this.#token === null) return;
    const verdict = this.#token.verdict(req.headers.authorization);
    if (verdict === 'ok') return;
    const challenge = { 'www-authenticate': 'Bearer realm="porch"' };
    if (verdict === 'missing') throw new HttpError(401, 'UNAUTHORIZED', 'this server needs a token: send Authorization: Bearer <token>', undefined, challenge);
    throw new HttpError(401, 'UNAUTHORIZED', 'the token is wrong', undefined, challenge);
  }

  async #route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const segments = pathSegments(url.pathname);
    const allowed: string[] = [];
    for (const route of this.#routes) {
      if (route.pattern.length !== segments.length) continue;
      if (!route.pattern.every((part, i) => part.startsWith(':') || part === segments[i])) continue;
      if (route.method !== req.method && !(route.method === 'GET' && req.method === 'HEAD' && route.stream !== true)) {
        allowed.push(route.method);
        continue;
      }
      const params = route.pattern.flatMap((part, i) => (part.startsWith(':') ? [segments[i]!] : []));
      if (params.some((p) => p.length === 0 || p.length > 256)) throw new HttpError(400, 'INVALID_ARGUMENT', 'an id must be 1..256 characters', 'id');
      return route.handle({ req, res, url, params });
    }
    if (allowed.length > 0) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed here (allowed: ${allowed.join(', ')})`, undefined, { allow: allowed.join(', ') });
    throw new HttpError(404, 'NOT_FOUND', `no endpoint ${url.pathname}`);
  }

  #health(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed here (allowed: GET)`, undefined, { allow: 'GET' });
    if (this.#stopped) sendJson(res, 503, { status: 'stopped' });
    else sendJson(res, 200, { status: 'ok', uptime: this.orchestrator.getStats().uptime });
  }

  async #serveStatic(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const files = this.#static === null ? null : await this.#static;
    const file = files?.get(path);
    if (file === undefined) throw new HttpError(404, 'NOT_FOUND', `no endpoint ${path.slice(0, 200)}`);
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed here (allowed: GET)`, undefined, { allow: 'GET' });
    const headers: Record<string, string> = { 'content-type': file.type, etag: file.etag, 'cache-control': 'no-cache' };
    if (file.type.startsWith('text/html')) headers['content-security-policy'] = PAGE_POLICY;
    if (req.headers['if-none-match'] === file.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': String(file.body.length) });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  }

  #fail(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    const { status, body, headers, internal } = errorResponse(error);
    if (internal) this.#onError(error);
    if (res.headersSent) {
      // An event stream failed after it began: end it (the client reconnects with Last-Event-ID).
      res.end();
      return;
    }
    sendJson(res, status, body, headers);
    if (headers.connection === 'close') {
      // The unread rest of an oversized body is not wanted: drop the connection once answered.
      res.once('finish', () => req.destroy());
    }
  }
}

function parseUrl(raw: string | undefined): URL {
  // Only origin-form targets ("/path?query"): "//host/x" or "http://host/x" would otherwise name another host.
  if (raw === undefined || !raw.startsWith('/')) throw new HttpError(400, 'INVALID_PATH', 'the request target must be a path');
  try {
    return new URL(`http://localhost${raw}`);
  } catch {
    throw new HttpError(400, 'INVALID_PATH', 'the request target is not a valid path');
  }
}
