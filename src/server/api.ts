import type { IncomingMessage, ServerResponse } from 'node:http';
import { AUDIT_EVENT_TYPES, type AuditQuery, type ParallelOrchestrator, type RequeueOptions, type TaskEvent } from '../index.js';
import { HttpError } from './http-error.js';
import { stringify, wireError } from './json.js';
import { prometheusText } from './metrics.js';
import { intParam, queryParams, readJsonBody } from './request.js';
import { parseCancelBody, parseStatuses, parseSubmitBody } from './schemas.js';
import type { EventStream } from './sse.js';

/** What a route gets. `params` are the decoded `:name` segments of its pattern, in order. */
export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: string[];
}

/** What the routes need from the server around them. */
export interface ApiHost {
  readonly orchestrator: ParallelOrchestrator;
  readonly bodyLimit: number;
  /** Opens an event stream on the response. @throws HttpError 503 when too many are open */
  openStream(req: IncomingMessage, res: ServerResponse): EventStream;
  readonly eventStreams: number;
}

export interface Route {
  method: 'GET' | 'POST';
  /** An event stream: not answered to HEAD (it would hold a stream open for no body). */
  stream?: true;
  /** Path segments; `:name` matches any one segment. */
  pattern: string[];
  handle(ctx: RouteContext): Promise<void>;
}

const TERMINAL = new Set(['complete', 'error', 'cancelled']);

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/**
 * The HTTP API: each route is a thin adapter over one public method of the orchestrator, so it
 * behaves the same on every store.
 */
export function apiRoutes(host: ApiHost): Route[] {
  const o = host.orchestrator;
  return [
    {
      method: 'GET',
      pattern: ['api', 'stats'],
      handle: async ({ res, url }) => {
        queryParams(url, []);
        sendJson(res, 200, o.getStats());
      },
    },
    {
      method: 'GET',
      pattern: ['api', 'agents'],
      handle: async ({ res, url }) => {
        queryParams(url, []);
        sendJson(res, 200, o.listAgents());
      },
    },
    {
      method: 'GET',
      pattern: ['api', 'tasks'],
      handle: async ({ res, url }) => {
        const params = queryParams(url, ['status', 'type', 'limit']);
        const status = parseStatuses(params.get('status'));
        const limit = intParam(params, 'limit', 1, 10_000);
        const type = params.get('type');
        sendJson(res, 200, await o.listTasks({ ...(status && { status }), ...(type !== undefined && { type }), ...(limit !== undefined && { limit }) }));
      },
    },
    {
      method: 'POST',
      pattern: ['api', 'tasks'],
      handle: async ({ req, res, url }) => {
        queryParams(url, []);
        const spec = parseSubmitBody(await readJsonBody(req, host.bodyLimit));
        const observable = o.submit(spec);
        sendJson(res, 201, { taskId: observable.taskId, status: observable.state }, { location: `/api/tasks/${encodeURIComponent(observable.taskId)}` });
      },
    },
    {
      method: 'GET',
      pattern: ['api', 'tasks', ':id'],
      handle: async ({ res, url, params: [id] }) => {
        queryParams(url, []);
        const details = await o.findTask(id!);
        if (details === undefined) throw notFound(id!);
        const history = await o.history(id!);
        sendJson(res, 200, { ...details, ...(details.error !== undefined && { error: wireError(details.error) }), history });
      },
    },
    {
      method: 'POST',
      pattern: ['api', 'tasks', ':id', 'cancel'],
      handle: async ({ req, res, url, params: [id] }) => {
        queryParams(url, []);
        const { reason } = parseCancelBody(await readJsonBody(req, host.bodyLimit));
        if (await o.cancel(id!, reason ?? 'cancelled through the HTTP API')) {
          sendJson(res, 200, { taskId: id, cancelled: true });
          return;
        }
        const details = await o.findTask(id!);
        if (details === undefined) throw notFound(id!);
        throw new HttpError(409, 'TASK_NOT_LIVE', `task ${id} is ${details.status}: only a queued, retrying or running task can be cancelled`);
      },
    },
    {
      method: 'GET',
      stream: true,
      pattern: ['api', 'tasks', ':id', 'events'],
      handle: async ({ req, res, url, params: [id] }) => {
        const params = queryParams(url, ['lastEventId']);
        const last = lastEventId(req, params);
        const observable = o.observe(id!);
        if (observable === undefined) {
          // Not live nor retained in memory: what the store knows, as one event, then the end.
          const details = await o.findTask(id!);
          if (details === undefined) throw notFound(id!);
          const stream = host.openStream(req, res);
          await stream.send('details', stringify({ ...details, ...(details.error !== undefined && { error: wireError(details.error) }) }));
          stream.close();
          return;
        }
        const stream = host.openStream(req, res);
        const unsubscribe = observable.subscribe(
          async (event: TaskEvent) => {
            const id = 'metadata' in event ? String(event.metadata.sequence) : undefined;
            await stream.send(event.type, stringify(event), id);
            if (TERMINAL.has(event.type)) stream.close();
          },
          last === undefined ? {} : { fromSequence: last + 1 },
        );
        stream.signal.addEventListener('abort', unsubscribe, { once: true });
      },
    },
    {
      method: 'GET',
      pattern: ['api', 'dlq'],
      handle: async ({ res, url }) => {
        queryParams(url, []);
        const letters = await o.deadLetters();
        sendJson(res, 200, letters.map((d) => ({ taskId: d.taskId, type: d.type, code: d.code, attempts: d.attempts, failedAt: d.failedAt, error: wireError(d.error), spec: d.spec })));
      },
    },
    {
      method: 'POST',
      pattern: ['api', 'dlq', ':id', 'requeue'],
      handle: async ({ req, res, url, params: [id] }) => {
        queryParams(url, []);
        // The body, if any, is requeueDeadLetter's options: the orchestrator refuses a bad one naming the field.
        const options = (await readJsonBody(req, host.bodyLimit)) as RequeueOptions | undefined;
        const observable = await o.requeueDeadLetter(id!, options);
        sendJson(res, 202, { taskId: observable.taskId, status: observable.state }, { location: `/api/tasks/${encodeURIComponent(observable.taskId)}` });
      },
    },
    {
      method: 'GET',
      pattern: ['api', 'audit'],
      handle: async ({ res, url }) => {
        const params = queryParams(url, ['since', 'limit', 'type']);
        const since = intParam(params, 'since', 0, Number.MAX_SAFE_INTEGER);
        const limit = intParam(params, 'limit', 1, 10_000);
        const type = params.get('type');
        if (type !== undefined && !(AUDIT_EVENT_TYPES as readonly string[]).includes(type)) {
          throw new HttpError(400, 'INVALID_ARGUMENT', `type must be one of ${AUDIT_EVENT_TYPES.join(', ')} (received ${JSON.stringify(type.slice(0, 40))})`, 'type');
        }
        const query = { ...(since !== undefined && { since }), ...(limit !== undefined && { limit }), ...(type !== undefined && { type }) } as AuditQuery;
        sendJson(res, 200, await o.audit(query));
      },
    },
    {
      method: 'GET',
      stream: true,
      pattern: ['api', 'events'],
      handle: async ({ req, res, url }) => {
        const params = queryParams(url, ['lastEventId', 'stats']);
        const last = lastEventId(req, params);
        const statsEvery = intParam(params, 'stats', 250, 60_000);
        const stream = host.openStream(req, res);
        let timer: NodeJS.Timeout | undefined;
        if (statsEvery !== undefined) {
          // Figures for charts: no `id:`, so they never move a client's Last-Event-ID.
          const sendStats = () => {
            if (!stream.busy) void stream.send('stats', stringify(o.getStats()));
          };
          sendStats();
          timer = setInterval(sendStats, statsEvery);
          timer.unref();
        }
        try {
          const items = o.events({ ...(last !== undefined && { fromSequence: last + 1 }), signal: stream.signal });
          for await (const item of items) {
            if (!(await stream.send(item.event, stringify(item), String(item.sequence)))) break;
          }
        } finally {
          clearInterval(timer);
          stream.close();
        }
      },
    },
    {
      method: 'GET',
      pattern: ['metrics'],
      handle: async ({ res, url }) => {
        queryParams(url, []);
        const text = prometheusText(o.getStats(), { eventStreams: host.eventStreams });
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' });
        res.end(text);
      },
    },
  ];
}

function notFound(id: string): HttpError {
  return new HttpError(404, 'TASK_NOT_FOUND', `no task ${id} is known`);
}

/** The last event a reconnecting client saw: the `Last-Event-ID` header (set by EventSource) or `?lastEventId=`. */
function lastEventId(req: IncomingMessage, params: Map<string, string>): number | undefined {
  const header = req.headers['last-event-id'];
  const raw = (Array.isArray(header) ? header[0] : header) ?? params.get('lastEventId');
  if (raw === undefined || raw === '') return undefined;
  const value = /^\d{1,16}$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(value)) {
    throw new HttpError(400, 'INVALID_ARGUMENT', `Last-Event-ID must be the sequence number of an event (received ${JSON.stringify(raw.slice(0, 40))})`, 'lastEventId');
  }
  return value;
}
