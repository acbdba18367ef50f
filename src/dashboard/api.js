// The one client of the porch HTTP API: JSON requests and the Server-Sent Events stream, both
// carrying the token (kept in sessionStorage: this tab only) when the server wants one.
// The stream is read with fetch() rather than EventSource, because EventSource cannot send an
// Authorization header; reconnecting sends Last-Event-ID, so the server replays what was missed.

const TOKEN_KEY = 'porch.token';

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code ?? 'HTTP_ERROR';
  }
}

export function createClient({ onUnauthorized }) {
  let token = sessionStorage.getItem(TOKEN_KEY) ?? '';

  const headers = (extra = {}) => (token === '' ? extra : { ...extra, authorization: `Bearer ${token}` });

  async function request(method, path, body) {
    const init = { method, headers: headers({ accept: 'application/json' }) };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => null);
    if (response.status === 401) onUnauthorized(data?.error?.message);
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  /**
   * Follows an event stream until close(): `onOpen()` once connected (again after each
   * reconnection), `onEvent({ id, event, data })` per event. Reconnects with a growing delay.
   */
  function stream(path, { onOpen, onEvent, onState }) {
    let lastEventId;
    let controller;
    let closed = false;
    let running = false;
    let delay = 500;

    const connect = async () => {
      running = true;
      controller = new AbortController();
      onState('connecting');
      try {
        const extra = { accept: 'text/event-stream' };
        if (lastEventId !== undefined) extra['last-event-id'] = lastEventId;
        const response = await fetch(path, { headers: headers(extra), signal: controller.signal, cache: 'no-store' });
        if (response.status === 401) {
          // Wait for a token: restart() connects again.
          running = false;
          onState('unauthorized');
          onUnauthorized((await response.json().catch(() => null))?.error?.message);
          return;
        }
        if (!response.ok || response.body === null) throw new ApiError(response.status, await response.json().catch(() => null));
        delay = 500;
        onState('live');
        await onOpen(lastEventId !== undefined);
        await readEvents(response.body, (message) => {
          if (message.id !== undefined) lastEventId = message.id;
          onEvent(message);
        });
      } catch (error) {
        if (!closed && error?.name !== 'AbortError') console.warn('porch: event stream', error);
      }
      if (closed) {
        running = false;
        return;
      }
      onState('reconnecting');
      setTimeout(connect, delay);
      delay = Math.min(Math.max(delay * 2, 500), 10_000);
    };
    void connect();
    return {
      close() {
        closed = true;
        controller?.abort();
      },
      /** Reconnect now (after a new token), keeping Last-Event-ID. */
      restart() {
        delay = 0;
        if (running) controller?.abort();
        else void connect();
      },
    };
  }

  return {
    get token() {
      return token;
    },
    setToken(value) {
      token = value;
      if (value === '') sessionStorage.removeItem(TOKEN_KEY);
      else sessionStorage.setItem(TOKEN_KEY, value);
    },
    get: (path) => request('GET', path),
    post: (path, body) => request('POST', path, body),
    stream,
  };
}

/** Parses the text/event-stream format (https://html.spec.whatwg.org/multipage/server-sent-events.html). */
async function readEvents(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let message = { data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === '') {
        if (message.data.length > 0) dispatch({ id: message.id, event: message.event ?? 'message', data: message.data.join('\n') });
        message = { data: [] };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') message.data.push(text);
      else if (field === 'event') message.event = text;
      else if (field === 'id') message.id = text;
    }
  }
}
