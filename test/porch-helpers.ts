import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const PORCH = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('./fixtures/porch/', import.meta.url));

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: unknown;
}

/**
 * One HTTP request with node:http (not fetch), so a test controls every header (Host, Origin)
 * and the exact path sent (no `..` normalisation).
 */
export function http(base: string, method: string, path: string, options: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Reply> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/**
 * A Server-Sent Events client that keeps every line: `next()` resolves with the next event,
 * `nextComment()` with the next comment line, both as they arrive (no polling).
 */
export class SseClient {
  readonly events: SseMessage[] = [];
  readonly comments: string[] = [];
  response!: IncomingMessage;
  ended = false;
  #buffer = '';
  #message: { id?: string; event?: string; data?: string[] } = {};
  #waiters: (() => void)[] = [];
  #req!: ReturnType<typeof httpRequest>;

  static open(base: string, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const client = new SseClient();
    const url = new URL(base);
    return new Promise((resolve, reject) => {
      client.#req = httpRequest({ host: url.hostname, port: url.port, path, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
        client.response = res;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => client.#feed(chunk));
        res.on('end', () => client.#end());
        res.on('close', () => client.#end());
        resolve(client);
      });
      client.#req.on('error', reject);
      client.#req.end();
    });
  }

  /** The next event not yet taken (events are kept in `events`; this counts them). */
  async next(matches: (m: SseMessage) => boolean = () => true, from = 0): Promise<SseMessage> {
    for (;;) {
      const found = this.events.slice(from).find(matches);
      if (found !== undefined) return found;
      if (this.ended) throw new Error(`the stream ended without a matching event (got ${this.events.map((e) => e.event).join(', ')})`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  async nextComment(matches: (c: string) => boolean): Promise<string> {
    for (;;) {
      const found = this.comments.find(matches);
      if (found !== undefined) return found;
      if (this.ended) throw new Error('the stream ended without a matching comment');
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** Resolves once the server ended the stream. */
  async closed(): Promise<void> {
    while (!this.ended) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  close(): void {
    this.#req.destroy();
  }

  #feed(chunk: string): void {
    this.#buffer += chunk;
    const lines = this.#buffer.split('\n');
    this.#buffer = lines.pop()!;
    for (const line of lines) {
      if (line === '') {
        if (this.#message.data !== undefined) {
          this.events.push({ ...(this.#message.id !== undefined && { id: this.#message.id }), event: this.#message.event ?? 'message', data: this.#message.data.join('\n') });
        }
        this.#message = {};
      } else if (line.startsWith(':')) {
        this.comments.push(line.slice(1).trim());
      } else {
        const colon = line.indexOf(':');
        const field = line.slice(0, colon);
        const value = line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') (this.#message.data ??= []).push(value);
        else if (field === 'id') this.#message.id = value;
        else if (field === 'event') this.#message.event = value;
      }
    }
    this.#wake();
  }

  #end(): void {
    this.ended = true;
    this.#wake();
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A porch child process, with its output as it comes. */
export class Porch {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly done: Promise<Run>;
  #waiters: (() => void)[] = [];

  constructor(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number } = {}) {
    this.child = spawn(process.execPath, [PORCH, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      this.#wake();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.#wake();
    });
    // A hung child is killed, and shows up in the result as `signal`.
    const killer = setTimeout(() => this.child.kill('SIGKILL'), options.timeout ?? 45_000);
    this.done = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        clearTimeout(killer);
        this.#wake();
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
  }

  /** Resolves once stdout (or stderr) matches. */
  async waitFor(pattern: RegExp, stream: 'stdout' | 'stderr' = 'stdout'): Promise<RegExpMatchArray> {
    for (;;) {
      const match = this[stream].match(pattern);
      if (match !== null) return match;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`porch exited before ${pattern} appeared:\n${this.stdout}\n${this.stderr}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }
}

/** Runs porch to its end. */
export function porch(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number } = {}): Promise<Run> {
  return new Porch(args, options).done;
}
