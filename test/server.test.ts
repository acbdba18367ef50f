import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AgentRole,
  createParallelOrchestrator,
  createServer,
  InvalidArgumentError,
  InvalidOptionsError,
  type ParallelOrchestrator,
  type PorchServer,
  type PorchServerOptions,
} from '../src/index.js';
import { deferred, nextEvent } from './helpers.js';
import { http, SseClient } from './porch-helpers.js';

// A real server on an ephemeral port over a real orchestrator (memory store), driven over HTTP.

interface Setup {
  o: ParallelOrchestrator;
  server: PorchServer;
  url: string;
  /** Releases the `hold` agent's tasks. */
  release: () => void;
  /** Payloads the `flaky` agent refuses (they fail for good: retry.maxAttempts is 1). */
  failing: Set<string>;
}

const live: Setup[] = [];
afterEach(async () => {
  for (const s of live.splice(0)) {
    s.release();
    await s.server.close();
    await s.o.shutdown({ graceful: false });
  }
});

async function setup(options: PorchServerOptions = {}, host?: string): Promise<Setup> {
  const o = createParallelOrchestrator({ taskQueue: { retry: { maxAttempts: 1 } }, streaming: { snapshotInterval: 3 } });
  await o.start();
  let gate = deferred();
  const failing = new Set<string>();
  o.registerAgent({
    agentId: 'echo',
    role: AgentRole.EXECUTOR,
    capabilities: ['echo'],
    maxConcurrent: 4,
    handler: async (task, ctx) => {
      for (let progress = 25; progress <= 100; progress += 25) ctx.progress({ progress });
      return task.payload;
    },
  });
  o.registerAgent({
    agentId: 'hold',
    role: AgentRole.MONITOR,
    capabilities: ['hold'],
    maxConcurrent: 4,
    handler: async (_task, ctx) => {
      ctx.progress({ progress: 10 });
      await Promise.race([gate.promise, new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)))]);
      return 'released';
    },
  });
  o.registerAgent({
    agentId: 'flaky',
    role: AgentRole.VALIDATOR,
    capabilities: ['flaky'],
    handler: async (task) => {
      if (failing.has(String(task.payload))) throw new Error(`refused ${String(task.payload)}`);
      return 'accepted';
    },
  });
  const server = createServer(o, options);
  const url = await server.listen({ port: 0, ...(host !== undefined && { host }) });
  const s: Setup = {
    o,
    server,
    url,
    release: () => {
      gate.resolve();
      gate = deferred();
    },
    failing,
  };
  live.push(s);
  return s;
}

const json = (body: unknown) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const errorOf = (reply: { json: unknown }) => (reply.json as { error: { code: string; message: string; field?: string } }).error;

describe('the HTTP API', () => {
  it('GET /healthz, /api/stats and /api/agents', async () => {
    const { url } = await setup();
    const health = await http(url, 'GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.json).toMatchObject({ status: 'ok' });
    const stats = await http(url, 'GET', '/api/stats');
    expect(stats.status).toBe(200);
    expect(stats.headers['content-type']).toMatch(/^application\/json/);
    expect((stats.json as { taskQueue: { byPriority: object } }).taskQueue.byPriority).toEqual({ CRITICAL: 0, HIGH: 0, NORMAL: 0, LOW: 0, BACKGROUND: 0 });
    const agents = await http(url, 'GET', '/api/agents');
    expect((agents.json as { agentId: string; role: string }[]).map((a) => [a.agentId, a.role])).toEqual([
      ['echo', 'α₉-executor'],
      ['hold', 'α₇-monitor'],
      ['flaky', 'α₃-validator'],
    ]);
  });

  it('POST /api/tasks submits (201, Location), GET /api/tasks/:id shows it with its history', async () => {
    const { url, o } = await setup();
    const completed = nextEvent(o, 'task:completed', (e) => e.taskId === 'echo-1');
    const created = await http(url, 'POST', '/api/tasks', json({ id: 'echo-1', type: 'echo', capabilities: ['echo'], priority: 'HIGH', payload: { n: 1 } }));
    expect(created.status).toBe(201);
    expect(created.json).toEqual({ taskId: 'echo-1', status: 'queued' });
    expect(created.headers.location).toBe('/api/tasks/echo-1');
    await completed;
    const task = await http(url, 'GET', '/api/tasks/echo-1');
    expect(task.status).toBe(200);
    expect(task.json).toMatchObject({ taskId: 'echo-1', type: 'echo', status: 'completed', priority: 1, result: { n: 1 }, progress: { progress: 100 } });
    expect((task.json as { history: { type: string }[] }).history.map((h) => h.type)).toEqual(['submitted', 'started', 'completed']);
  });

  it('GET /api/tasks lists by status, type and limit, and refuses bad queries (400 naming the field)', async () => {
    const { url, o } = await setup();
    for (const id of ['a', 'b', 'c']) await o.submit({ id, type: 'echo', capabilities: ['echo'] }).result();
    const list = await http(url, 'GET', '/api/tasks?status=completed&type=echo&limit=2');
    expect(list.status).toBe(200);
    expect((list.json as { taskId: string }[]).map((t) => t.taskId)).toEqual(['c', 'b']);
    for (const [query, field] of [
      ['status=done', 'status'],
      ['limit=0', 'limit'],
      ['limit=abc', 'limit'],
      ['colour=red', 'colour'],
      ['limit=1&limit=2', 'limit'],
    ]) {
      const bad = await http(url, 'GET', `/api/tasks?${query}`);
      expect(bad.status, query).toBe(400);
      expect(errorOf(bad)).toMatchObject({ code: 'INVALID_ARGUMENT', field });
    }
  });

  it('answers 404 for an unknown task, endpoint or file, 405 with Allow for a wrong method', async () => {
    const { url } = await setup();
    const task = await http(url, 'GET', '/api/tasks/nope');
    expect(task.status).toBe(404);
    expect(errorOf(task)).toEqual({ code: 'TASK_NOT_FOUND', message: 'no task nope is known' });
    expect((await http(url, 'GET', '/api/nothing')).status).toBe(404);
    expect((await http(url, 'GET', '/nothing.js')).status).toBe(404);
    const method = await http(url, 'DELETE', '/api/tasks');
    expect(method.status).toBe(405);
    expect(method.headers.allow).toBe('GET, POST');
  });

  it('POST /api/tasks/:id/cancel: 200 for a live task, 409 once it ended, 404 for an unknown one', async () => {
    const { url, o } = await setup();
    const started = nextEvent(o, 'task:started', (e) => e.taskId === 'held');
    o.submit({ id: 'held', type: 'hold', capabilities: ['hold'] });
    await started;
    const cancelled = await http(url, 'POST', '/api/tasks/held/cancel', json({ reason: 'enough' }));
    expect(cancelled.status).toBe(200);
    expect(cancelled.json).toEqual({ taskId: 'held', cancelled: true });
    expect((await o.findTask('held'))?.error?.message).toContain('enough');
    const again = await http(url, 'POST', '/api/tasks/held/cancel');
    expect(again.status).toBe(409);
    expect(errorOf(again).code).toBe('TASK_NOT_LIVE');
    expect((await http(url, 'POST', '/api/tasks/nope/cancel')).status).toBe(404);
  });

  it('GET /api/dlq and POST /api/dlq/:id/requeue (202; 404 when not a dead letter)', async () => {
    const { url, o, failing } = await setup();
    failing.add('x');
    const dead = nextEvent(o, 'task:dead-letter', (e) => e.taskId === 'flaky-1');
    o.submit({ id: 'flaky-1', type: 'check', capabilities: ['flaky'], payload: 'x' });
    await dead;
    const dlq = await http(url, 'GET', '/api/dlq');
    expect(dlq.json).toMatchObject([{ taskId: 'flaky-1', type: 'check', code: 'TASK_FAILED', attempts: 1, error: { name: 'Error', message: 'refused x' } }]);
    expect(JSON.stringify(dlq.json)).not.toMatch(/stack|\n\s+at /);
    failing.delete('x');
    const completed = nextEvent(o, 'task:completed', (e) => e.taskId === 'flaky-1');
    const requeued = await http(url, 'POST', '/api/dlq/flaky-1/requeue');
    expect(requeued.status).toBe(202);
    expect(requeued.json).toEqual({ taskId: 'flaky-1', status: expect.stringMatching(/^(queued|running)$/) });
    expect((await completed).result).toBe('accepted');
    const missing = await http(url, 'POST', '/api/dlq/flaky-1/requeue');
    expect(missing.status).toBe(404);
    expect(errorOf(missing).code).toBe('TASK_NOT_FOUND');
  });

  it('GET /api/audit pages the audit trail', async () => {
    const { url, o } = await setup();
    await o.submit({ id: 'audited', type: 'echo', capabilities: ['echo'] }).result();
    const all = await http(url, 'GET', '/api/audit?type=completed&limit=10');
    expect(all.json).toMatchObject([{ type: 'completed', taskId: 'audited' }]);
    const bad = await http(url, 'GET', '/api/audit?type=exploded');
    expect(bad.status).toBe(400);
    expect(errorOf(bad).field).toBe('type');
  });
});

describe('on a SQLite store', () => {
  it('lists and finds tasks from the store, as on memory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'porch-server-'));
    const o = createParallelOrchestrator({ store: { type: 'sqlite', path: join(dir, 'porch.db') }, taskQueue: { retry: { maxAttempts: 1 } } });
    await o.start();
    o.registerAgent({ agentId: 'echo', role: AgentRole.EXECUTOR, capabilities: ['echo'], handler: async (task) => task.payload });
    const server = createServer(o);
    const url = await server.listen({ port: 0 });
    try {
      const created = await http(url, 'POST', '/api/tasks', json({ id: 'stored', type: 'echo', capabilities: ['echo'], payload: 7 }));
      expect(created.status).toBe(201);
      await o.observe('stored')!.result();
      const list = await http(url, 'GET', '/api/tasks?status=completed');
      expect(list.status).toBe(200);
      expect(list.json).toMatchObject([{ taskId: 'stored', status: 'completed' }]);
      expect((await http(url, 'GET', '/api/tasks/stored')).json).toMatchObject({ taskId: 'stored', result: 7, history: [{ type: 'submitted' }, { type: 'started' }, { type: 'completed' }] });
    } finally {
      await server.close();
      await o.shutdown();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('request bodies', () => {
  it('refuses invalid bodies with 400 naming the field, 415 for non-JSON, 409 for a live duplicate id', async () => {
    const { url, o } = await setup();
    const cases: [string, Record<string, string>, number, string, string | undefined][] = [
      ['{"type":', { 'content-type': 'application/json' }, 400, 'INVALID_JSON', undefined],
      ['[1,2]', { 'content-type': 'application/json' }, 400, 'INVALID_TASK', 'task'],
      ['{}', { 'content-type': 'application/json' }, 400, 'INVALID_TASK', 'type'],
      ['{"type":"echo","colour":"red"}', { 'content-type': 'application/json' }, 400, 'INVALID_TASK', 'colour'],
      ['{"type":"echo","capabilities":"echo"}', { 'content-type': 'application/json' }, 400, 'INVALID_TASK', 'capabilities'],
      ['{"type":"echo","priority":9}', { 'content-type': 'application/json' }, 400, 'INVALID_TASK', 'priority'],
      ['{"type":"echo","priority":"URGENT"}', { 'content-type': 'application/json' }, 400, 'INVALID_TASK', 'priority'],
      ['{"type":"echo","retry":{"maxAttempts":0}}', { 'content-type': 'application/json' }, 400, 'INVALID_TASK', 'retry.maxAttempts'],
      ['type=echo', { 'content-type': 'application/x-www-form-urlencoded' }, 415, 'UNSUPPORTED_MEDIA_TYPE', undefined],
      ['{"type":"echo"}', {}, 415, 'UNSUPPORTED_MEDIA_TYPE', undefined],
    ];
    for (const [body, headers, status, code, field] of cases) {
      const reply = await http(url, 'POST', '/api/tasks', { headers, body });
      expect(reply.status, body).toBe(status);
      expect(errorOf(reply).code, body).toBe(code);
      if (field !== undefined) expect(errorOf(reply).field, body).toBe(field);
    }
    o.submit({ id: 'dup', type: 'hold', capabilities: ['hold'] });
    const duplicate = await http(url, 'POST', '/api/tasks', json({ id: 'dup', type: 'hold', capabilities: ['hold'] }));
    expect(duplicate.status).toBe(409);
    expect(errorOf(duplicate).code).toBe('DUPLICATE_TASK');
    const cancelBody = await http(url, 'POST', '/api/tasks/dup/cancel', json({ reason: 42 }));
    expect(cancelBody.status).toBe(400);
    expect(errorOf(cancelBody).field).toBe('reason');
  });

  it('refuses a body over the limit with 413, declared or chunked, and keeps serving', async () => {
    const { url } = await setup();
    const big = JSON.stringify({ type: 'echo', payload: 'x'.repeat(2 * 1024 * 1024) });
    const declared = await http(url, 'POST', '/api/tasks', { headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(big)) }, body: big });
    expect(declared.status).toBe(413);
    expect(errorOf(declared).code).toBe('PAYLOAD_TOO_LARGE');
    // No Content-Length: the limit is enforced while reading.
    const chunked = await http(url, 'POST', '/api/tasks', { headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body: big });
    expect(chunked.status).toBe(413);
    expect((await http(url, 'GET', '/healthz')).status).toBe(200);
  });

  it('takes a body just under a custom limit', async () => {
    const { url } = await setup({ bodyLimit: 200 });
    const body = JSON.stringify({ type: 'echo', capabilities: ['echo'], payload: 'y'.repeat(120) });
    expect((await http(url, 'POST', '/api/tasks', { headers: { 'content-type': 'application/json' }, body })).status).toBe(201);
    expect((await http(url, 'POST', '/api/tasks', { headers: { 'content-type': 'application/json' }, body: body + ' '.repeat(100) })).status).toBe(413);
  });

  it('survives a deeply nested payload (the task is stored, shown cut at a depth)', async () => {
    const { url, o } = await setup();
    const body = `{"type":"echo","id":"deep","capabilities":["echo"],"payload":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const done = nextEvent(o, 'task:completed', (e) => e.taskId === 'deep');
    expect((await http(url, 'POST', '/api/tasks', { headers: { 'content-type': 'application/json' }, body })).status).toBe(201);
    await done;
    const task = await http(url, 'GET', '/api/tasks/deep');
    expect(task.status).toBe(200);
    expect(task.text).toContain('[Too deep]');
  });
});

describe('hostile requests', () => {
  it('refuses HEAD on event streams (it would hold a stream open for no body)', async () => {
    const { url } = await setup();
    expect((await http(url, 'HEAD', '/api/events')).status).toBe(405);
    expect((await http(url, 'HEAD', '/api/stats')).status).toBe(200);
  });

  it('cannot pollute Object.prototype through a body', async () => {
    const { url } = await setup();
    const top = await http(url, 'POST', '/api/tasks', { headers: { 'content-type': 'application/json' }, body: '{"type":"echo","__proto__":{"polluted":true}}' });
    expect(top.status).toBe(400);
    const nested = await http(url, 'POST', '/api/tasks', {
      headers: { 'content-type': 'application/json' },
      body: '{"type":"echo","capabilities":["echo"],"metadata":{"__proto__":{"polluted":true}},"payload":{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}}',
    });
    expect(nested.status).toBe(201);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('takes task ids with reserved characters, percent-encoded', async () => {
    const { url, o } = await setup();
    const id = 'a/b?c#d %e';
    await o.submit({ id, type: 'echo', capabilities: ['echo'] }).result();
    const reply = await http(url, 'GET', `/api/tasks/${encodeURIComponent(id)}`);
    expect(reply.status).toBe(200);
    expect((reply.json as { taskId: string }).taskId).toBe(id);
    expect((await http(url, 'GET', '/api/tasks/%E0%A4%A')).status).toBe(400);
    expect((await http(url, 'GET', `/api/tasks/${'x'.repeat(300)}`)).status).toBe(400);
  });
});

describe('tokens and the address bound', () => {
  it('with a token, /api and /metrics need it (401 without, 401 wrong), /healthz and the page do not', async () => {
    const { url } = await setup({ token: 's3cret-token' });
    const missing = await http(url, 'GET', '/api/stats');
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(errorOf(missing)).toMatchObject({ code: 'UNAUTHORIZED' });
    const wrong = await http(url, 'GET', '/api/stats', { headers: { authorization: 'Bearer s3cret-tokeN' } });
    expect(wrong.status).toBe(401);
    expect(errorOf(wrong).message).toBe('the token is wrong');
    expect((await http(url, 'GET', '/api/stats', { headers: { authorization: 'Basic czNjcmV0LXRva2Vu' } })).status).toBe(401);
    expect((await http(url, 'GET', '/metrics')).status).toBe(401);
    expect((await http(url, 'GET', '/api/events')).status).toBe(401);
    expect((await http(url, 'GET', '/api/stats', { headers: { authorization: 'Bearer s3cret-token' } })).status).toBe(200);
    expect((await http(url, 'GET', '/metrics', { headers: { authorization: 'bearer s3cret-token' } })).status).toBe(200);
    expect((await http(url, 'GET', '/healthz')).status).toBe(200);
    expect((await http(url, 'GET', '/')).status).toBe(200);
  });

  it('refuses to listen on 0.0.0.0 without a token, and listens there with one', async () => {
    const o = createParallelOrchestrator();
    const bare = createServer(o);
    const refused = await bare.listen({ port: 0, host: '0.0.0.0' }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(InvalidArgumentError);
    expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'token' });
    await bare.close();
    const { url } = await setup({ token: 't0ken-for-all-interfaces' }, '0.0.0.0');
    expect(url).toMatch(/^http:\/\/0\.0\.0\.0:\d+\/$/);
    await o.shutdown();
  });

  it('without a token, answers only requests addressed to a loopback host (DNS rebinding)', async () => {
    const { url } = await setup();
    const rebound = await http(url, 'GET', '/api/stats', { headers: { host: 'evil.example:7070' } });
    expect(rebound.status).toBe(403);
    expect(errorOf(rebound).code).toBe('FORBIDDEN_HOST');
    for (const host of ['localhost:7070', '127.0.0.1', '[::1]:7070']) expect((await http(url, 'GET', '/api/stats', { headers: { host } })).status, host).toBe(200);
  });

  it('refuses state changes from a page of another origin (CORS is off)', async () => {
    const { url } = await setup();
    const reply = await http(url, 'POST', '/api/tasks', { headers: { 'content-type': 'application/json', origin: 'http://evil.example' }, body: '{"type":"echo"}' });
    expect(reply.status).toBe(403);
    expect(errorOf(reply).code).toBe('CROSS_ORIGIN');
    expect(reply.headers['access-control-allow-origin']).toBeUndefined();
    const same = await http(url, 'POST', '/api/tasks', { headers: { 'content-type': 'application/json', origin: url.replace(/\/$/, '') }, body: '{"type":"echo","capabilities":["echo"]}' });
    expect(same.status).toBe(201);
  });

  it('validates its options', () => {
    const o = createParallelOrchestrator();
    expect(() => createServer(o, { bodyLimit: -1 })).toThrow(InvalidOptionsError);
    expect(() => createServer(o, { token: '' })).toThrow(/token must not be empty/);
    expect(() => createServer(o, { tokn: 'x' } as PorchServerOptions)).toThrow(/tokn is not a known option/);
  });
});

describe('errors never leak internals', () => {
  it('answers 500 with a generic message, and reports the error to onError', async () => {
    const reported: unknown[] = [];
    const stub = {
      events: () => ({ return: async () => ({ done: true, value: undefined }) }),
      once: () => () => undefined,
      listTasks: async () => {
        throw new Error('ENOENT: /var/secret/store.db');
      },
    } as unknown as ParallelOrchestrator;
    const server = createServer(stub, { onError: (error) => reported.push(error) });
    const url = await server.listen({ port: 0 });
    try {
      const reply = await http(url, 'GET', '/api/tasks');
      expect(reply.status).toBe(500);
      expect(reply.json).toEqual({ error: { code: 'INTERNAL', message: 'internal error (see the server log)' } });
      expect(reply.text).not.toMatch(/secret|\bat\b/);
      expect(reported).toHaveLength(1);
    } finally {
      await server.close();
    }
  });
});

describe('Server-Sent Events', () => {
  it('GET /api/events: every event has an id: and its name as event:, and keep-alive comments come', async () => {
    const { url, o } = await setup({ keepAliveInterval: 20 });
    const sse = await SseClient.open(url, '/api/events');
    expect(sse.response.headers['content-type']).toMatch(/^text\/event-stream/);
    await o.submit({ id: 'streamed', type: 'echo', capabilities: ['echo'] }).result();
    const completed = await sse.next((m) => m.event === 'task:completed');
    const item = JSON.parse(completed.data) as { sequence: number; event: string; data: { taskId: string } };
    expect(item).toMatchObject({ event: 'task:completed', data: { taskId: 'streamed' } });
    expect(completed.id).toBe(String(item.sequence));
    for (const m of sse.events) expect(m.id).toMatch(/^\d+$/);
    expect(sse.events.map((m) => m.event)).toEqual(expect.arrayContaining(['task:submitted', 'task:started', 'task:progress', 'task:completed']));
    await sse.nextComment((c) => c === 'keep-alive');
    sse.close();
  });

  it('replays what a client missed from Last-Event-ID', async () => {
    const { url, o } = await setup();
    const first = await SseClient.open(url, '/api/events');
    await o.submit({ id: 'before', type: 'echo', capabilities: ['echo'] }).result();
    const seen = await first.next((m) => m.event === 'task:completed');
    first.close();
    // While nobody listens:
    await o.submit({ id: 'missed', type: 'echo', capabilities: ['echo'] }).result();
    const again = await SseClient.open(url, '/api/events', { 'last-event-id': seen.id! });
    const missed = await again.next((m) => m.event === 'task:completed');
    expect(JSON.parse(missed.data).data.taskId).toBe('missed');
    const ids = again.events.map((m) => Number(m.id));
    expect(ids[0]).toBe(Number(seen.id) + 1);
    expect(ids).toEqual(ids.map((_, i) => ids[0]! + i));
    expect(again.events[0]!.event).toBe('task:submitted');
    again.close();
    // The query form, for clients that cannot set headers.
    const byQuery = await SseClient.open(url, `/api/events?lastEventId=${seen.id}`);
    expect(JSON.parse((await byQuery.next((m) => m.event === 'task:completed')).data).data.taskId).toBe('missed');
    byQuery.close();
    expect((await http(url, 'GET', '/api/events', { headers: { 'last-event-id': 'yesterday' } })).status).toBe(400);
  });

  it('?stats=<ms> adds stats events without an id', async () => {
    const { url } = await setup();
    const sse = await SseClient.open(url, '/api/events?stats=250');
    const stats = await sse.next((m) => m.event === 'stats');
    expect(stats.id).toBeUndefined();
    expect(JSON.parse(stats.data)).toHaveProperty('taskQueue.byPriority');
    sse.close();
    expect((await http(url, 'GET', '/api/events?stats=5')).status).toBe(400);
  });

  it("GET /api/tasks/:id/events streams a task's progress with ids, ends after its terminal event, and resumes from Last-Event-ID", async () => {
    const { url, o, release } = await setup();
    const started = nextEvent(o, 'task:started', (e) => e.taskId === 'watched');
    o.submit({ id: 'watched', type: 'hold', capabilities: ['hold'] });
    await started;
    const sse = await SseClient.open(url, '/api/tasks/watched/events');
    const progress = await sse.next((m) => m.event === 'delta' || m.event === 'snapshot');
    expect(progress.id).toBe('1');
    expect(JSON.parse(progress.data).data).toEqual({ progress: 10 });
    release();
    const complete = await sse.next((m) => m.event === 'complete');
    expect(JSON.parse(complete.data)).toMatchObject({ taskId: 'watched', result: 'released' });
    await sse.closed();
    // A client that saw update 1 reconnects: nothing of the progress again, only the end.
    const resumed = await SseClient.open(url, '/api/tasks/watched/events', { 'last-event-id': '1' });
    await resumed.closed();
    expect(resumed.events.map((m) => m.event)).toEqual(['complete']);
    expect((await http(url, 'GET', '/api/tasks/nope/events')).status).toBe(404);
  });

  it('a client that disconnects mid-stream releases its stream', async () => {
    const { url, o } = await setup();
    const sse = await SseClient.open(url, '/api/events');
    o.submit({ type: 'echo', capabilities: ['echo'] });
    await sse.next();
    expect(await streamsOpen(url)).toBe(1);
    sse.close();
    await waitUntil(url, (n) => n === 0);
    // The server goes on streaming to new clients.
    const next = await SseClient.open(url, '/api/events');
    o.submit({ type: 'echo', capabilities: ['echo'] });
    await next.next((m) => m.event === 'task:completed');
    next.close();
  });

  it('disconnects a client that stops reading, and keeps serving the others', async () => {
    const { url, o } = await setup({ stallTimeout: 200 });
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write('GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
    socket.pause(); // never reads: the socket buffers fill and the server must not wait forever
    const reader = await SseClient.open(url, '/api/events');
    await waitUntil(url, (n) => n === 2);
    // Large progress states fill the stalled client's buffers.
    const big = 'z'.repeat(64 * 1024);
    o.registerAgent({
      agentId: 'firehose',
      role: AgentRole.AGGREGATOR,
      capabilities: ['firehose'],
      handler: async (_task, ctx) => {
        for (let i = 0; i < 200; i++) {
          ctx.progress({ i, big });
          await new Promise((resolve) => setImmediate(resolve));
        }
        return 'done';
      },
    });
    await o.submit({ type: 'firehose', capabilities: ['firehose'] }).result();
    // The reader kept up; the stalled one was cut off.
    await reader.next((m) => m.event === 'task:completed');
    await waitUntil(url, (n) => n === 1);
    reader.close();
    socket.destroy();
  });

  it('refuses more event streams than maxEventStreams with 503', async () => {
    const { url } = await setup({ maxEventStreams: 1 });
    const first = await SseClient.open(url, '/api/events');
    const second = await http(url, 'GET', '/api/events');
    expect(second.status).toBe(503);
    expect(errorOf(second).code).toBe('TOO_MANY_STREAMS');
    first.close();
  });

  it('close() ends the open streams', async () => {
    const { url, server } = await setup();
    const sse = await SseClient.open(url, '/api/events');
    await server.close();
    await sse.closed();
  });
});

describe('/metrics', () => {
  it('is Prometheus text: HELP and TYPE before the samples, counters, queue depth per priority, running, circuit states', async () => {
    const { url, o, failing } = await setup();
    failing.add('bad');
    await o.submit({ type: 'check', capabilities: ['flaky'], payload: 'bad' }).result().catch(() => undefined);
    o.isolateAgent('flaky');
    const reply = await http(url, 'GET', '/metrics');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const samples = parsePrometheus(reply.text);
    expect(samples.get('porch_tasks_failed_total')).toEqual([[{}, 1]]);
    expect(samples.get('porch_queue_depth')?.map(([labels]) => labels.priority)).toEqual(['CRITICAL', 'HIGH', 'NORMAL', 'LOW', 'BACKGROUND']);
    expect(samples.get('porch_tasks_running')).toEqual([[{}, 0]]);
    const circuit = samples.get('porch_agent_circuit_state')!.filter(([labels]) => labels.agent === 'flaky');
    expect(circuit).toEqual([
      [{ agent: 'flaky', role: 'α₃-validator', state: 'closed' }, 0],
      [{ agent: 'flaky', role: 'α₃-validator', state: 'open' }, 1],
      [{ agent: 'flaky', role: 'α₃-validator', state: 'half-open' }, 0],
    ]);
  });

  it('escapes label values', async () => {
    const { url, o } = await setup();
    o.registerAgent({ agentId: 'odd"agent\\with\nnewline', role: AgentRole.OBSERVER, capabilities: ['odd'], handler: async () => 1 });
    const samples = parsePrometheus((await http(url, 'GET', '/metrics')).text);
    expect(samples.get('porch_agent_active')!.map(([labels]) => labels.agent)).toContain('odd"agent\\with\nnewline');
  });
});

describe('the dashboard files', () => {
  it('serves the page with a strict CSP, and nothing outside the dashboard (path traversal)', async () => {
    const { url } = await setup();
    const page = await http(url, 'GET', '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    const script = await http(url, 'GET', '/app.js');
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect((await http(url, 'GET', '/app.js', { headers: { 'if-none-match': script.headers.etag! } })).status).toBe(304);
    for (const path of [
      '/../package.json',
      '/../../package.json',
      '/%2e%2e/%2e%2e/package.json',
      '/..%2f..%2fpackage.json',
      '/styles/../../server/server.ts',
      '/components/..%5c..%5cpackage.json',
      '/index.html%00.js',
      '//etc/passwd',
      '/dashboard/index.html',
      '/styles',
      '/styles/',
    ]) {
      const reply = await http(url, 'GET', path);
      expect(reply.status, path).toBe(404);
      expect(reply.text, path).not.toContain('"name": "parallel-orchestrator"');
    }
    expect((await http(url, 'GET', 'http://evil.example/')).status).toBe(400);
    expect((await http(url, 'POST', '/index.html')).status).toBe(405);
  });

  it('dashboard: false serves no page', async () => {
    const { url } = await setup({ dashboard: false });
    expect((await http(url, 'GET', '/')).status).toBe(404);
  });
});

/** The event streams open on the server, as /metrics reports them. */
async function streamsOpen(url: string): Promise<number> {
  const samples = parsePrometheus((await http(url, 'GET', '/metrics')).text);
  return samples.get('porch_event_streams')![0]![1];
}

/**
 * Asks /metrics until the stream count satisfies `ok`. Nothing outside the server can await a
 * stream's end, so each try is one HTTP round trip (which lets the server handle the close); bounded.
 */
async function waitUntil(url: string, ok: (streams: number) => boolean): Promise<void> {
  for (let i = 0; i < 5000; i++) {
    if (ok(await streamsOpen(url))) return;
  }
  throw new Error(`event streams never reached the expected count (now ${await streamsOpen(url)})`);
}

type Labels = Record<string, string>;

/**
 * A strict reader of the Prometheus text format 0.0.4: every line is a comment (# HELP / # TYPE,
 * before the metric's samples), or `name{labels} value`. Throws on anything else.
 */
function parsePrometheus(text: string): Map<string, [Labels, number][]> {
  expect(text.endsWith('\n')).toBe(true);
  const samples = new Map<string, [Labels, number][]>();
  const typed = new Set<string>();
  const helped = new Set<string>();
  for (const line of text.slice(0, -1).split('\n')) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    if (help !== null) {
      helped.add(help[1]!);
      continue;
    }
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type !== null) {
      expect(samples.has(type[1]!), `TYPE after samples of ${type[1]}`).toBe(false);
      typed.add(type[1]!);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    if (sample === null) throw new Error(`not a Prometheus line: ${JSON.stringify(line)}`);
    const [, name, , labelText, value] = sample;
    expect(typed.has(name!) && helped.has(name!), `${name} has HELP and TYPE`).toBe(true);
    const labels: Labels = {};
    if (labelText !== undefined && labelText !== '') {
      const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)/y;
      let match: RegExpExecArray | null;
      let at = 0;
      while (at < labelText.length && (pair.lastIndex = at, (match = pair.exec(labelText)) !== null)) {
        labels[match[1]!] = match[2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
        at = pair.lastIndex;
      }
      expect(at, `labels of ${JSON.stringify(line)}`).toBe(labelText.length);
    }
    const list = samples.get(name!) ?? [];
    list.push([labels, Number(value)]);
    samples.set(name!, list);
  }
  return samples;
}
