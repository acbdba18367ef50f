// Progress streaming of one task: deltas, snapshots, replay for late subscribers, ordering,
// backpressure and retention. Thread-agent tests use the built package (threads load dist).
import { setImmediate as nextTurn } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import jsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import {
  AgentRole,
  TaskStatus,
  type AgentHandler,
  type ParallelOrchestrator,
  type ProgressEvent,
  type TaskContext,
  type TaskEvent,
  type TaskEvents,
  type TaskObservable,
} from '../src/index.js';
import { createParallelOrchestrator as createBuiltOrchestrator } from '../dist/index.js';
import { deferred, useOrchestrators } from './helpers.js';

const { applyPatch } = jsonPatch;
const make = useOrchestrators();

/** The value as JSON carries it: what every subscriber must be able to rebuild. */
const json = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

function agent(o: ParallelOrchestrator, handler: AgentHandler, agentId = 'streamer'): void {
  o.registerAgent({ agentId, role: AgentRole.EXECUTOR, capabilities: ['s'], handler });
}

function submit<S = unknown>(o: ParallelOrchestrator, payload?: unknown): TaskObservable<unknown, S> {
  return o.submit<unknown, S>({ type: 'stream', capabilities: ['s'], payload });
}

const isProgress = (event: TaskEvent): event is ProgressEvent => event.type === 'delta' || event.type === 'update' || event.type === 'snapshot';

/**
 * Rebuilds a task's state from its progress events the way a client does (fast-json-patch,
 * snapshots replace the document) and records the state it holds at each sequence. Deltas must
 * follow each other without a gap. It runs inside listeners, where a throw would be reported as
 * a listener error rather than fail the test, so the first failure is kept and thrown on read.
 */
class Rebuilder {
  #doc: unknown = undefined;
  #sequence = 0;
  #error: unknown = null;
  readonly #states = new Map<number, unknown>();

  apply(event: ProgressEvent): void {
    if (this.#error !== null) return;
    const sequence = event.metadata.sequence;
    try {
      if (event.type === 'snapshot') {
        if (sequence < this.#sequence) throw new Error(`snapshot ${sequence} after ${this.#sequence}`);
        this.#doc = event.data;
      } else {
        if (sequence !== this.#sequence + 1) throw new Error(`${event.type} ${sequence} after ${this.#sequence}`);
        this.#doc = event.type === 'delta' ? applyPatch(this.#doc, event.delta, false, false).newDocument : json(event.data);
      }
    } catch (error) {
      this.#error = error;
      return;
    }
    this.#sequence = sequence;
    this.#states.set(sequence, json(this.#doc));
  }

  get doc(): unknown {
    this.#check();
    return this.#doc;
  }

  get sequence(): number {
    this.#check();
    return this.#sequence;
  }

  get states(): Map<number, unknown> {
    this.#check();
    return this.#states;
  }

  #check(): void {
    if (this.#error !== null) throw this.#error;
  }
}

/** A compact trace of task events: 'start:1', 'delta:3', 'snapshot:4', 'retry:2', 'complete'. */
function trace(event: TaskEvent): string {
  switch (event.type) {
    case 'start':
    case 'retry':
      return `${event.type}:${event.attempt}`;
    case 'delta':
    case 'update':
    case 'snapshot':
      return `${event.type}:${event.metadata.sequence}`;
    default:
      return event.type;
  }
}

/** Collects everything `subscribe` delivers; `done` resolves after the final event. */
function collect(obs: TaskObservable, options: Parameters<TaskObservable['subscribe']>[1] = {}): { events: TaskEvent[]; done: Promise<void> } {
  const events: TaskEvent[] = [];
  const done = deferred();
  obs.subscribe((event) => {
    events.push(event);
    if (event.type === 'complete' || event.type === 'error' || event.type === 'cancelled') done.resolve();
  }, options);
  return { events, done: done.promise };
}

async function drain(iterable: AsyncIterable<TaskEvent>): Promise<TaskEvent[]> {
  const events: TaskEvent[] = [];
  for await (const event of iterable) events.push(event);
  return events;
}

describe('progress events', () => {
  it('sequences run gap-free from 1 and a snapshot with the same sequence follows every snapshotInterval-th delta', async () => {
    const o = await make({ streaming: { snapshotInterval: 4 } });
    agent(o, async (_task, ctx) => {
      for (let step = 1; step <= 10; step++) ctx.progress({ step });
      return 'done';
    });
    const obs = submit<{ step: number }>(o);
    const log: string[] = [];
    const deltas: ProgressEvent[] = [];
    const snapshots: ProgressEvent[] = [];
    obs.on('delta', (event) => {
      log.push(trace(event));
      deltas.push(event);
    });
    obs.on('snapshot', (event) => {
      log.push(trace(event));
      snapshots.push(event);
    });
    const done = await obs.result();

    expect(log).toEqual(['delta:1', 'delta:2', 'delta:3', 'delta:4', 'snapshot:4', 'delta:5', 'delta:6', 'delta:7', 'delta:8', 'snapshot:8', 'delta:9', 'delta:10']);
    expect(done.updateCount).toBe(10);
    expect(deltas[0]).toMatchObject({ type: 'delta', data: { step: 1 }, delta: [{ op: 'replace', path: '', value: { step: 1 } }], metadata: { sequence: 1, agentId: 'streamer' } });
    expect(deltas[1]).toMatchObject({ delta: [{ op: 'replace', path: '/step', value: 2 }], metadata: { sequence: 2 } });
    expect(snapshots.map((event) => event.data)).toEqual([{ step: 4 }, { step: 8 }]);
  });

  it('a snapshot holds a copy of the state at its update; the delta carries the state object itself', async () => {
    const o = await make({ streaming: { snapshotInterval: 2 } });
    const state = { list: [1], nested: { label: 'a' } };
    const mutated = deferred();
    const release = deferred();
    agent(o, async (_task, ctx) => {
      ctx.progress(state);
      state.list.push(2);
      ctx.progress(state);
      // Changed after its last update: no snapshot may show this.
      state.list.push(3);
      state.nested.label = 'changed';
      mutated.resolve();
      await release.promise;
      return 'done';
    });
    const obs = submit<typeof state>(o);
    const snapshots: unknown[] = [];
    const deltaData: unknown[] = [];
    obs.on('snapshot', (event) => snapshots.push(event.data));
    obs.on('delta', (event) => deltaData.push(event.data));
    await mutated.promise;

    expect(snapshots).toEqual([{ list: [1, 2], nested: { label: 'a' } }]);
    expect(snapshots[0]).not.toBe(state);
    expect(deltaData[0]).toBe(state);
    const late: ProgressEvent[] = [];
    obs.on('delta', (event) => late.push(event));
    await Promise.resolve();
    expect(late).toHaveLength(1);
    expect(late[0]).toMatchObject({ type: 'snapshot', metadata: { sequence: 2 }, data: { list: [1, 2], nested: { label: 'a' } } });
    release.resolve();
    await obs.result();
  });

  it('a handler that mutates one object in place and passes it again gets correct deltas', async () => {
    const o = await make({ streaming: { snapshotInterval: 1000 } });
    const truth: unknown[] = [];
    agent(o, async (_task, ctx) => {
      const state: { count: number; items: { id: number; tags: string[] }[]; meta: Record<string, unknown> } = { count: 0, items: [], meta: {} };
      const update = () => {
        ctx.progress(state);
        truth.push(json(state));
      };
      update();
      for (let i = 1; i <= 12; i++) {
        state.count = i;
        state.items.push({ id: i, tags: [] });
        if (i % 2 === 0) state.items[0]!.tags.push(`t${i}`);
        if (i % 3 === 0) state.items.splice(1, 1);
        if (i % 4 === 0) delete state.meta.last;
        else state.meta.last = { i, even: i % 2 === 0 };
        if (i === 7) state.meta['a/b~c'] = [i];
        update();
      }
      return 'done';
    });
    const obs = submit(o);
    const rebuilt = new Rebuilder();
    const received: { event: ProgressEvent; asSent: string }[] = [];
    obs.on('delta', (event) => {
      rebuilt.apply(event);
      received.push({ event, asSent: JSON.stringify(event) });
    });
    await obs.result();

    expect(rebuilt.states.size).toBe(13);
    for (const [sequence, state] of rebuilt.states) expect(state, `state ${sequence}`).toEqual(truth[sequence - 1]);
    // Later in-place changes of the state must not reach a delta already sent.
    for (const { event, asSent } of received) expect(JSON.stringify({ ...event, data: undefined })).toBe(JSON.stringify({ ...JSON.parse(asSent), data: undefined }));
  });

  it('the first update and every change of root type replace the whole document', async () => {
    const o = await make();
    const states: unknown[] = [{ a: 1 }, [1, { b: 2 }], [1, { b: 3 }], 'text', 7, null, { b: { c: [] } }, { b: [] }, []];
    agent(o, async (_task, ctx) => {
      for (const state of states) ctx.progress(state);
      return 'done';
    });
    const obs = submit(o);
    const deltas: ProgressEvent[] = [];
    const rebuilt = new Rebuilder();
    obs.on('delta', (event) => {
      deltas.push(event);
      rebuilt.apply(event);
    });
    await obs.result();

    const wholeReplacements = deltas.flatMap((event, i) => (event.type === 'delta' && event.delta.length === 1 && event.delta[0]!.path === '' ? [i] : []));
    expect(wholeReplacements).toEqual([0, 1, 3, 4, 5, 6, 8]);
    for (const i of wholeReplacements) expect(deltas[i]).toMatchObject({ delta: [{ op: 'replace', path: '', value: states[i] }] });
    expect([...rebuilt.states.values()]).toEqual(states);
  });

  it('a state with an own "__proto__" or "constructor" key (as JSON.parse builds from untrusted text) streams as data', async () => {
    const o = await make({ streaming: { snapshotInterval: 1 } });
    const states = [
      JSON.parse('{"__proto__":{"polluted":true},"a":1}'),
      { a: 1 },
      JSON.parse('{"a":1,"__proto__":{"polluted":false}}'),
      { a: 2, constructor: { prototype: { x: 1 } } },
      { a: 2, constructor: { prototype: { x: 2 } } },
    ];
    const thrown: string[] = [];
    agent(o, async (_task, ctx) => {
      for (const state of states) {
        try {
          ctx.progress(state);
        } catch (error) {
          thrown.push((error as Error).message);
        }
      }
      return 'done';
    });
    const obs = submit(o);
    const snapshots: ProgressEvent[] = [];
    const rebuilt = new Rebuilder();
    obs.on('snapshot', (event) => snapshots.push(event));
    obs.on('delta', (event) => rebuilt.apply(event));
    await obs.result();

    expect(thrown, 'ctx.progress must not throw for a JSON state').toEqual([]);
    expect(snapshots.map((event) => [event.metadata.sequence, JSON.stringify(event.data)])).toEqual(states.map((state, i) => [i + 1, JSON.stringify(state)]));
    for (const event of snapshots) expect(Object.getPrototypeOf(event.data)).toBe(Object.prototype);
    expect([...rebuilt.states.values()].map((state) => JSON.stringify(state))).toEqual(states.map((state) => JSON.stringify(state)));
  });
});

describe('late progress listeners', () => {
  it('on("delta") added mid-stream gets the latest snapshot and the deltas after it on a microtask, then live deltas', async () => {
    const o = await make({ streaming: { snapshotInterval: 3 } });
    const paused = deferred();
    const resume = deferred();
    agent(o, async (_task, ctx) => {
      for (let step = 1; step <= 5; step++) ctx.progress({ step, half: step > 2 });
      paused.resolve();
      await resume.promise;
      for (let step = 6; step <= 7; step++) ctx.progress({ step, half: true });
      return 'done';
    });
    const obs = submit(o);
    await paused.promise;

    const log: string[] = [];
    const rebuilt = new Rebuilder();
    obs.on('delta', (event) => {
      log.push(trace(event));
      rebuilt.apply(event);
    });
    expect(log, 'the replay is delivered on a microtask').toEqual([]);
    await Promise.resolve();
    expect(log).toEqual(['snapshot:3', 'delta:4', 'delta:5']);
    resume.resolve();
    await obs.result();

    expect(log).toEqual(['snapshot:3', 'delta:4', 'delta:5', 'delta:6', 'delta:7']);
    expect([...rebuilt.states.entries()]).toEqual([3, 4, 5, 6, 7].map((step) => [step, { step, half: step > 2 }]));
  });

  it('on("delta") added between two synchronous updates gets its replay before the live delta', async () => {
    const o = await make();
    const log: string[] = [];
    const rebuilt = new Rebuilder();
    agent(o, async (task, ctx) => {
      for (let step = 1; step <= 3; step++) ctx.progress({ step });
      o.observe(task.id)!.on('delta', (event) => {
        log.push(trace(event));
        rebuilt.apply(event);
      });
      ctx.progress({ step: 4 });
      return 'done';
    });
    await submit(o).result();

    expect(log).toEqual(['delta:1', 'delta:2', 'delta:3', 'delta:4']);
    expect(rebuilt.doc).toEqual({ step: 4 });
  });

  it('off() removes a late listener: it gets its replay but no live delta after', async () => {
    const o = await make();
    const gate = deferred();
    const replayed = deferred();
    agent(o, async (_task, ctx) => {
      ctx.progress({ step: 1 });
      await gate.promise;
      ctx.progress({ step: 2 });
      return 'done';
    });
    const task = submit(o);
    await new Promise((resolve) => task.once('start', resolve));
    await nextTurn();
    const seen: string[] = [];
    const listener = (event: TaskEvents['delta']) => {
      seen.push(trace(event));
      replayed.resolve();
    };
    task.on('delta', listener);
    await replayed.promise;
    task.off('delta', listener);
    gate.resolve();
    await task.result();
    expect(seen).toEqual(['delta:1']);
  });

  it('subscribe() replays the running attempt\'s start and the latest snapshot with the deltas after it; fromSequence past the end replays none', async () => {
    const o = await make({ streaming: { snapshotInterval: 2 } });
    const paused = deferred();
    const resume = deferred();
    agent(o, async (_task, ctx) => {
      for (let step = 1; step <= 5; step++) ctx.progress({ step });
      paused.resolve();
      await resume.promise;
      ctx.progress({ step: 6 });
      return 'done';
    });
    const obs = submit(o);
    await paused.promise;

    const current = collect(obs);
    const fromOldest = collect(obs, { fromSequence: 1 });
    const fromNext = collect(obs, { fromSequence: 6 });
    expect(current.events, 'delivery starts on a microtask').toEqual([]);
    resume.resolve();
    await Promise.all([current.done, fromOldest.done, fromNext.done]);

    const expected = ['start:1', 'snapshot:4', 'delta:5', 'delta:6', 'snapshot:6', 'complete'];
    expect(current.events.map(trace)).toEqual(expected);
    expect(fromOldest.events.map(trace), 'the oldest state held is the latest snapshot').toEqual(expected);
    expect(fromNext.events.map(trace)).toEqual(['start:1', 'delta:6', 'snapshot:6', 'complete']);
    const rebuilt = new Rebuilder();
    for (const event of current.events) if (isProgress(event)) rebuilt.apply(event);
    expect(rebuilt.doc).toEqual({ step: 6 });
  });
});

describe('event order', () => {
  it('every kind of subscriber sees start, then the progress in sequence, then complete', async () => {
    const o = await make({ streaming: { snapshotInterval: 4 } });
    agent(o, async (_task, ctx) => {
      for (let step = 1; step <= 6; step++) {
        ctx.progress({ step, items: Array.from({ length: step }, (_, i) => i) });
        await nextTurn();
      }
      return 'done';
    });
    const obs = submit(o);
    const onLog: string[] = [];
    obs.on('start', (event) => onLog.push(trace(event)));
    obs.on('delta', (event) => onLog.push(trace(event)));
    obs.on('complete', (event) => onLog.push(trace(event)));
    const subscribed = collect(obs);
    const iterated = drain(obs);
    const done = await obs.result();
    await subscribed.done;

    expect(onLog).toEqual(['start:1', 'delta:1', 'delta:2', 'delta:3', 'delta:4', 'delta:5', 'delta:6', 'complete']);
    const full = ['start:1', 'delta:1', 'delta:2', 'delta:3', 'delta:4', 'snapshot:4', 'delta:5', 'delta:6', 'complete'];
    expect(subscribed.events.map(trace)).toEqual(full);
    expect((await iterated).map(trace)).toEqual(full);
    expect(done.updateCount).toBe(6);

    // Late, through the orchestrator: the final snapshot, the deltas after it, then the result.
    const late = o.observe(obs.taskId)!;
    expect(late).toBeDefined();
    const lateSubscribed = collect(late);
    const lateDeltas: string[] = [];
    late.on('delta', (event) => lateDeltas.push(trace(event)));
    const lateComplete = deferred<string>();
    late.on('complete', (event) => lateComplete.resolve(trace(event)));
    const lateIterated = await drain(late);
    await lateSubscribed.done;
    const afterEnd = ['snapshot:4', 'delta:5', 'delta:6', 'complete'];
    expect(lateSubscribed.events.map(trace)).toEqual(afterEnd);
    expect(lateIterated.map(trace)).toEqual(afterEnd);
    expect(lateDeltas).toEqual(['snapshot:4', 'delta:5', 'delta:6']);
    expect(await lateComplete.promise).toBe('complete');
    for (const events of [subscribed.events, lateSubscribed.events, lateIterated]) {
      const rebuilt = new Rebuilder();
      for (const event of events) if (isProgress(event)) rebuilt.apply(event);
      expect(rebuilt.doc).toEqual({ step: 6, items: [0, 1, 2, 3, 4, 5] });
    }
  });

  it('a retried task streams attempt 2 after the retry event, continuing the same sequence', async () => {
    const o = await make({ taskQueue: { retry: { maxAttempts: 2, initialDelay: 0, jitter: 0 } } });
    agent(o, async (task, ctx: TaskContext) => {
      ctx.progress({ attempt: task.attempt, step: 1 });
      await nextTurn();
      ctx.progress({ attempt: task.attempt, step: 2 });
      if (task.attempt === 1) throw new Error('first attempt fails');
      return 'done';
    });
    const obs = submit(o);
    const onLog: string[] = [];
    for (const name of ['start', 'delta', 'retry', 'complete'] as const) obs.on(name, (event: TaskEvent) => onLog.push(trace(event)));
    const subscribed = collect(obs);
    const iterated = drain(obs);
    const done = await obs.result();
    await subscribed.done;

    const expected = ['start:1', 'delta:1', 'delta:2', 'retry:2', 'start:2', 'delta:3', 'delta:4', 'complete'];
    expect(onLog).toEqual(expected);
    expect(subscribed.events.map(trace)).toEqual(expected);
    expect((await iterated).map(trace)).toEqual(expected);
    expect(done).toMatchObject({ attempts: 2, updateCount: 4 });
    const rebuilt = new Rebuilder();
    for (const event of subscribed.events) if (isProgress(event)) rebuilt.apply(event);
    expect([...rebuilt.states.values()]).toEqual([
      { attempt: 1, step: 1 },
      { attempt: 1, step: 2 },
      { attempt: 2, step: 1 },
      { attempt: 2, step: 2 },
    ]);
  });
});

describe('backpressure', () => {
  it('an async listener is awaited before the next event', async () => {
    const o = await make();
    agent(o, async (_task, ctx) => {
      for (let step = 1; step <= 20; step++) ctx.progress({ step });
      return 'done';
    });
    const obs = submit(o);
    let busy = false;
    let overlapped = false;
    const log: string[] = [];
    const done = deferred();
    obs.subscribe(async (event) => {
      if (busy) overlapped = true;
      busy = true;
      log.push(trace(event));
      await nextTurn();
      busy = false;
      if (event.type === 'complete') done.resolve();
    });
    await done.promise;

    expect(overlapped).toBe(false);
    const progress = Array.from({ length: 20 }, (_, i) => (i + 1) % 10 === 0 ? [`delta:${i + 1}`, `snapshot:${i + 1}`] : [`delta:${i + 1}`]).flat();
    expect(log).toEqual(['start:1', ...progress, 'complete']);
  });

  it('a slow subscriber past bufferSize gets one fresh snapshot in place of its waiting updates', async () => {
    const o = await make({ streaming: { snapshotInterval: 1000 } });
    const truth = new Map<number, unknown>();
    agent(o, async (_task, ctx) => {
      for (let step = 1; step <= 50; step++) {
        const state = { step, squares: Array.from({ length: step % 7 }, (_, i) => i * i) };
        ctx.progress(state);
        truth.set(step, json(state));
      }
      return 'done';
    });
    const conflated: { taskId: string; dropped: number }[] = [];
    o.on('backpressure:conflated', (event) => conflated.push(event));
    const obs = submit(o);
    const events: TaskEvent[] = [];
    const done = deferred();
    obs.subscribe(
      async (event) => {
        events.push(event);
        await nextTurn();
        if (event.type === 'complete') done.resolve();
      },
      { bufferSize: 4 },
    );
    await done.promise;

    expect(conflated.length).toBeGreaterThan(0);
    for (const event of conflated) expect(event).toEqual({ taskId: obs.taskId, dropped: expect.any(Number) });
    expect(conflated.every((event) => event.dropped >= 1 && event.dropped <= 5)).toBe(true);
    expect(events.length).toBeLessThan(50);
    expect(events.at(-1)!.type).toBe('complete');
    const rebuilt = new Rebuilder();
    for (const event of events) {
      if (!isProgress(event)) continue;
      rebuilt.apply(event);
      if (event.type === 'snapshot') expect(event.data, `snapshot ${event.metadata.sequence}`).toEqual(truth.get(event.metadata.sequence));
    }
    expect(rebuilt.sequence).toBe(50);
    expect(rebuilt.doc).toEqual(truth.get(50));
  });

  describe('a subscriber that never reads holds at most its bound', () => {
    const updates = 200_000;
    const bound = 64;
    const snapshotInterval = 1000;
    // Progress events pushed to a subscriber: every delta plus every interval snapshot.
    const pushed = updates + updates / snapshotInterval;

    /** Streams `updates` states; records the heap (after a full GC) with every event still buffered. */
    function streamer(o: ParallelOrchestrator): { heapAfter: () => number } {
      let heapAfter = 0;
      agent(o, async (_task, ctx) => {
        await nextTurn();
        for (let step = 0; step < updates; step++) ctx.progress({ step, label: `step ${step}` });
        heapAfter = heapAfterGc();
        return 'done';
      });
      return { heapAfter: () => heapAfter };
    }

    it('an async iterator that is never pulled', async () => {
      const o = await make({ streaming: { backpressureThreshold: bound, snapshotInterval } });
      const { heapAfter } = streamer(o);
      const dropped: number[] = [];
      o.on('backpressure:conflated', (event) => dropped.push(event.dropped));
      const heapBefore = heapAfterGc();
      const obs = submit(o);
      const iterator = obs[Symbol.asyncIterator]();
      await obs.result();

      expect(heapAfter() - heapBefore, 'heap growth while streaming').toBeLessThan(16 * 1024 * 1024);
      const events = await drain({ [Symbol.asyncIterator]: () => iterator });
      const progress = events.filter(isProgress);
      expect(progress.length).toBeLessThanOrEqual(bound);
      expect(events[0]!.type).toBe('start');
      expect(events.at(-1)!.type).toBe('complete');
      expect(dropped.every((count) => count <= bound + 1)).toBe(true);
      expect(dropped.reduce((sum, count) => sum + count, 0), 'every update not delivered was reported dropped').toBeGreaterThanOrEqual(pushed - progress.length);
      const rebuilt = new Rebuilder();
      for (const event of progress) rebuilt.apply(event);
      expect(rebuilt.doc).toEqual({ step: updates - 1, label: `step ${updates - 1}` });
    });

    it('a subscribe() listener whose promise never resolves', async () => {
      const o = await make({ streaming: { snapshotInterval } });
      const { heapAfter } = streamer(o);
      const dropped: number[] = [];
      o.on('backpressure:conflated', (event) => dropped.push(event.dropped));
      const heapBefore = heapAfterGc();
      const obs = submit(o);
      const delivered: TaskEvent[] = [];
      const never = new Promise<void>(() => {});
      obs.subscribe(
        (event) => {
          delivered.push(event);
          return never;
        },
        { bufferSize: bound },
      );
      await obs.result();

      expect(heapAfter() - heapBefore, 'heap growth while streaming').toBeLessThan(16 * 1024 * 1024);
      expect(delivered.map(trace)).toEqual(['start:1']);
      expect(dropped.length).toBeGreaterThan(0);
      expect(dropped.every((count) => count <= bound + 1)).toBe(true);
      expect(dropped.reduce((sum, count) => sum + count, 0)).toBeGreaterThanOrEqual(pushed - bound);
    });
  });
});

describe('enableDeltaCompression: false', () => {
  it('streams update events carrying the state, with no delta events and no delta in task:progress', async () => {
    const o = await make({ streaming: { enableDeltaCompression: false, snapshotInterval: 2 } });
    const paused = deferred();
    const resume = deferred();
    agent(o, async (_task, ctx) => {
      for (let step = 1; step <= 3; step++) ctx.progress({ step });
      paused.resolve();
      await resume.promise;
      ctx.progress({ step: 4 });
      return 'done';
    });
    const obs = submit(o);
    const updates: ProgressEvent[] = [];
    const deltas: ProgressEvent[] = [];
    const progress: unknown[] = [];
    obs.on('update', (event) => updates.push(event));
    obs.on('delta', (event) => deltas.push(event));
    o.on('task:progress', (event) => progress.push(event));
    const subscribed = collect(obs);
    await paused.promise;
    const late: string[] = [];
    obs.on('update', (event) => late.push(trace(event)));
    resume.resolve();
    await obs.result();
    await subscribed.done;

    expect(deltas).toEqual([]);
    expect(updates.map((event) => [event.type, event.metadata.sequence, event.data])).toEqual([1, 2, 3, 4].map((step) => ['update', step, { step }]));
    for (const event of updates) expect(event).not.toHaveProperty('delta');
    expect(progress).toHaveLength(4);
    for (const event of progress) expect(event).not.toHaveProperty('delta');
    expect(subscribed.events.map(trace)).toEqual(['start:1', 'update:1', 'update:2', 'snapshot:2', 'update:3', 'update:4', 'snapshot:4', 'complete']);
    expect(late).toEqual(['snapshot:2', 'update:3', 'update:4']);
  });
});

describe('retention of finished tasks', () => {
  it('observe() finds a finished task: late delta listeners get its final snapshot and the deltas after it, result() resolves', async () => {
    const o = await make({ streaming: { snapshotInterval: 3 } });
    agent(o, async (task, ctx) => {
      if (task.payload === 'fail') throw new Error('refused');
      for (let step = 1; step <= 4; step++) ctx.progress({ step });
      return 'done';
    });
    const obs = o.submit({ type: 'stream', capabilities: ['s'], retry: { maxAttempts: 1 } });
    await obs.result();
    const failing = o.submit({ type: 'stream', capabilities: ['s'], payload: 'fail', retry: { maxAttempts: 1 } });
    await expect(failing.result()).rejects.toThrow('refused');

    const late = o.observe<string, { step: number }>(obs.taskId)!;
    expect(late).toBe(obs);
    expect(late.state).toBe(TaskStatus.COMPLETED);
    expect(await late.result()).toMatchObject({ result: 'done', updateCount: 4 });
    const replay: ProgressEvent[] = [];
    late.on('delta', (event) => replay.push(event));
    await Promise.resolve();
    expect(replay.map(trace)).toEqual(['snapshot:3', 'delta:4']);
    expect(replay[0]!.data).toEqual({ step: 3 });
    expect(o.getTask(obs.taskId)).toMatchObject({ taskId: obs.taskId, status: TaskStatus.COMPLETED, attempt: 1 });

    expect(o.observe(failing.taskId)).toBe(failing);
    expect(o.getTask(failing.taskId)).toMatchObject({ status: TaskStatus.FAILED });
    await expect(o.observe(failing.taskId)!.result()).rejects.toThrow('refused');
    expect(o.observe('no-such-task')).toBeUndefined();
  });

  it('past retainCompletedMax the oldest finished task is no longer found', async () => {
    const o = await make({ streaming: { retainCompletedMax: 2 } });
    agent(o, async (task, ctx) => {
      ctx.progress({ n: task.payload });
      return task.payload;
    });
    const tasks: TaskObservable[] = [];
    for (const n of [1, 2, 3]) {
      const obs = submit(o, n);
      tasks.push(obs);
      await obs.result();
    }
    const [first, second, third] = tasks as [TaskObservable, TaskObservable, TaskObservable];

    expect(o.observe(first.taskId)).toBeUndefined();
    expect(o.getTask(first.taskId)).toBeUndefined();
    expect(o.observe(second.taskId)).toBe(second);
    expect(o.observe(third.taskId)).toBe(third);
    expect(o.getTask(third.taskId)).toMatchObject({ status: TaskStatus.COMPLETED });
    // A reference held by the caller still gives the result; only the progress replay is gone.
    expect((await first.result()).result).toBe(1);
  });

  it('retainCompletedMs: 0 keeps no finished task findable', async () => {
    const o = await make({ streaming: { retainCompletedMs: 0 } });
    agent(o, async () => 'done');
    const obs = submit(o);
    expect(o.observe(obs.taskId)).toBe(obs);
    await obs.result();
    expect(o.observe(obs.taskId)).toBeUndefined();
    expect(o.getTask(obs.taskId)).toBeUndefined();
  });
});

describe('thread agents', () => {
  const moduleUrl = new URL('./fixtures/modules/progress-module.mjs', import.meta.url);

  async function threaded(run: (o: ReturnType<typeof createBuiltOrchestrator>) => Promise<void>): Promise<void> {
    const o = createBuiltOrchestrator({ workerPool: { minWorkers: 1, maxWorkers: 1 }, streaming: { snapshotInterval: 3 } });
    try {
      await o.start();
      o.registerAgent({ agentId: 'thread-streamer', role: AgentRole.EXECUTOR, capabilities: ['s'], module: moduleUrl });
      await run(o);
    } finally {
      await o.shutdown({ graceful: false });
    }
  }

  it('stream progress as deltas that a main-thread subscriber rebuilds the states from', async () => {
    const states = [{ a: 1 }, { a: 1, b: [1, 2] }, { a: 2, b: [2] }, ['root', 'array'], { c: { d: null } }, { c: { d: 'x' }, e: true }];
    await threaded(async (o) => {
      const obs = o.submit({ type: 'stream', capabilities: ['s'], payload: { mode: 'states', states, pauseAfter: [1, 3] } });
      const subscribed = collect(obs as unknown as TaskObservable);
      const onDelta = new Rebuilder();
      obs.on('delta', (event) => onDelta.apply(event as ProgressEvent));
      const done = await obs.result();
      await subscribed.done;

      expect(done).toMatchObject({ result: states.length, updateCount: states.length });
      expect([...onDelta.states.values()]).toEqual(states);
      expect(subscribed.events.map(trace)).toEqual(['start:1', 'delta:1', 'delta:2', 'delta:3', 'snapshot:3', 'delta:4', 'delta:5', 'delta:6', 'snapshot:6', 'complete']);
      const rebuilt = new Rebuilder();
      for (const event of subscribed.events) if (isProgress(event)) rebuilt.apply(event);
      expect(rebuilt.states).toEqual(new Map(states.map((state, i) => [i + 1, state])));
      const deltas = subscribed.events.filter((event) => event.type === 'delta');
      expect(deltas.every((event) => event.metadata.agentId === 'thread-streamer')).toBe(true);
    });
  });

  it('stream each state of one object mutated in place between ctx.progress calls', async () => {
    await threaded(async (o) => {
      const obs = o.submit({ type: 'stream', capabilities: ['s'], payload: { mode: 'in-place', steps: 8 } });
      const rebuilt = new Rebuilder();
      obs.on('delta', (event) => rebuilt.apply(event as ProgressEvent));
      await obs.result();

      // The same sequence of states, built in this thread.
      const state = { done: 0, items: [] as { i: number; square: number }[] };
      const expected: unknown[] = [];
      for (let i = 1; i <= 8; i++) {
        state.done = i;
        state.items.push({ i, square: i * i });
        if (i % 3 === 0) state.items.shift();
        expected.push(json(state));
      }
      expect([...rebuilt.states.values()]).toEqual(expected);
    });
  });
});

/** The heap in use after a full collection. */
function heapAfterGc(): number {
  gc ??= exposedGc();
  gc();
  return process.memoryUsage().heapUsed;
}

let gc: (() => void) | undefined;

/** vitest workers start without --expose-gc; the flag can still be set at run time and gc fetched from a fresh context. */
function exposedGc(): () => void {
  const global = globalThis as { gc?: () => void };
  if (typeof global.gc === 'function') return global.gc;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
