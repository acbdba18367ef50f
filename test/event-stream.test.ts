// orchestrator.events(): every orchestrator event with a global sequence, replay from history,
// stream:gap for what a consumer missed, and the ways an iteration ends.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { AgentRole, type OrchestratorStreamItem, type ParallelOrchestrator } from '../src/index.js';
import { useOrchestrators } from './helpers.js';

const make = useOrchestrators();

/** An agent whose tasks stream `payload` progress updates, then return. */
function streamer(o: ParallelOrchestrator): void {
  o.registerAgent({
    agentId: 'streamer',
    role: AgentRole.EXECUTOR,
    capabilities: ['s'],
    handler: async (task, ctx) => {
      for (let step = 1; step <= (task.payload as number); step++) ctx.progress({ step });
      return 'done';
    },
  });
}

async function run(o: ParallelOrchestrator, updates: number): Promise<string> {
  const obs = o.submit({ type: 'stream', capabilities: ['s'], payload: updates });
  await obs.result();
  return obs.taskId;
}

async function collect(stream: AsyncIterable<OrchestratorStreamItem>): Promise<OrchestratorStreamItem[]> {
  const items: OrchestratorStreamItem[] = [];
  for await (const item of stream) items.push(item);
  return items;
}

/** Reads until an item matches; returns it. */
async function readUntil(stream: AsyncIterator<OrchestratorStreamItem>, match: (item: OrchestratorStreamItem) => boolean): Promise<OrchestratorStreamItem> {
  for (;;) {
    const next = await stream.next();
    if (next.done) throw new Error('the stream ended first');
    if (match(next.value)) return next.value;
  }
}

/**
 * What a consumer can rely on: each item follows the one before it (sequence + 1), or is a gap
 * that covers exactly what is missing (from = the next expected sequence, sequence = to).
 * Returns the items as 'sequence event' or 'gap from-to (dropped)' for readable failures.
 */
function expectContinuous(items: OrchestratorStreamItem[], first: number): void {
  const described: string[] = [];
  const expected: string[] = [];
  let next = first;
  for (const item of items) {
    if (item.event === 'stream:gap') {
      const { from, to, dropped } = item.data;
      described.push(`gap ${from}-${to} (${dropped}) at ${item.sequence}`);
      expected.push(`gap ${next}-${to} (${to - next + 1}) at ${to}`);
      next = to + 1;
    } else {
      described.push(`${item.sequence} ${item.event}`);
      expected.push(`${next} ${item.event}`);
      next++;
    }
  }
  expect(described).toEqual(expected);
}

/** Settles with the next item, or 'pending' if it did not come within one event-loop turn. */
function nextOrPending(stream: AsyncIterator<OrchestratorStreamItem>): Promise<IteratorResult<OrchestratorStreamItem> | 'pending'> {
  return Promise.race([stream.next(), nextTurn().then(() => 'pending' as const)]);
}

describe('orchestrator.events()', () => {
  it('numbers every orchestrator event with a global sequence rising by 1, and ends after orchestrator:shutdown', async () => {
    const o = await make({}, { start: false });
    const stream = o.events();
    await o.start();
    streamer(o);
    const first = await run(o, 2);
    const second = await run(o, 1);
    await o.shutdown();
    const items = await collect(stream);

    expectContinuous(items, 1);
    expect(items[0]).toMatchObject({ sequence: 1, event: 'orchestrator:started', data: { timestamp: expect.any(Number) } });
    expect(items.at(-1)).toMatchObject({ event: 'orchestrator:shutdown', data: { graceful: true, cancelled: 0 } });
    expect(items.every((item) => typeof item.timestamp === 'number')).toBe(true);
    expect(items.find((item) => item.event === 'agent:registered')).toMatchObject({ data: { agentId: 'streamer', role: AgentRole.EXECUTOR, capabilities: ['s'] } });
    const ofTask = (taskId: string) =>
      items.filter((item) => item.event.startsWith('task:') && (item.data as { taskId: string }).taskId === taskId).map((item) => {
        if (item.event === 'task:progress') return `${item.event} ${item.data.sequence}`;
        return item.event;
      });
    expect(ofTask(first)).toEqual(['task:submitted', 'task:started', 'task:progress 1', 'task:progress 2', 'task:completed']);
    expect(ofTask(second)).toEqual(['task:submitted', 'task:started', 'task:progress 1', 'task:completed']);
    const progress = items.find((item) => item.event === 'task:progress' && item.data.taskId === first && item.data.sequence === 2);
    expect(progress).toMatchObject({ data: { agentId: 'streamer', data: { step: 2 }, delta: [{ op: 'replace', path: '/step', value: 2 }] } });
  });

  it('replays held events from fromSequence', async () => {
    const o = await make();
    const live = o.events();
    streamer(o);
    await run(o, 3);
    const replay = o.events({ fromSequence: 1 });
    const fromFourth = o.events({ fromSequence: 4 });
    await run(o, 1);
    await o.shutdown();
    const liveItems = await collect(live);

    expectContinuous(liveItems, 1);
    expect(await collect(replay)).toEqual(liveItems);
    expect(await collect(fromFourth)).toEqual(liveItems.slice(3));
  });

  it('after shutdown, fromSequence still replays what is held, then ends', async () => {
    const o = await make();
    const live = o.events();
    streamer(o);
    await run(o, 2);
    await o.shutdown();
    const liveItems = await collect(live);

    expect(liveItems.at(-1)!.event).toBe('orchestrator:shutdown');
    expect(await collect(o.events({ fromSequence: 2 }))).toEqual(liveItems.slice(1));
  });

  it('gives a stream:gap first when fromSequence is older than eventHistory holds', async () => {
    const o = await make({ streaming: { eventHistory: 5 } });
    const live = o.events();
    streamer(o);
    const taskId = await run(o, 10);
    const completed = await readUntil(live, (item) => item.event === 'task:completed' && item.data.taskId === taskId);
    const last = completed.sequence;
    const replay = o.events({ fromSequence: 1 });
    await o.shutdown();
    const items = await collect(replay);

    expect(items[0]).toMatchObject({ event: 'stream:gap', sequence: last - 5, data: { from: 1, to: last - 5, dropped: last - 5 } });
    expect(items.slice(1, 6).map((item) => item.sequence)).toEqual([last - 4, last - 3, last - 2, last - 1, last]);
    expect(items[5]).toEqual(completed);
    expectContinuous(items, 1);
    expect(items.at(-1)!.event).toBe('orchestrator:shutdown');
  });

  it('gives a consumer that falls behind its buffer a stream:gap for exactly what it missed', async () => {
    const bound = 8;
    const o = await make({ streaming: { backpressureThreshold: bound } });
    const slow = o.events();
    streamer(o);
    await run(o, 60);
    await run(o, 40);
    await o.shutdown();
    const items = await collect(slow);

    expectContinuous(items, 1);
    const gaps = items.filter((item) => item.event === 'stream:gap');
    expect(gaps.length).toBeGreaterThan(0);
    expect(items.length).toBeLessThanOrEqual(bound + 1);
    expect(items.at(-1)!.event).toBe('orchestrator:shutdown');
    const delivered = items.length - gaps.length;
    const missed = gaps.reduce((sum, gap) => sum + (gap.event === 'stream:gap' ? gap.data.dropped : 0), 0);
    expect(delivered + missed).toBe(items.at(-1)!.sequence);
  });

  it('a consumer reading as events come misses nothing', async () => {
    const o = await make({ streaming: { backpressureThreshold: 4 } });
    const reading = collect(o.events());
    o.registerAgent({
      agentId: 'paced',
      role: AgentRole.EXECUTOR,
      capabilities: ['s'],
      handler: async (_task, ctx) => {
        for (let step = 1; step <= 20; step++) {
          ctx.progress({ step });
          await nextTurn();
        }
        return 'done';
      },
    });
    await o.submit({ type: 'paced', capabilities: ['s'] }).result();
    await o.shutdown();
    const items = await reading;

    expectContinuous(items, 1);
    expect(items.some((item) => item.event === 'stream:gap')).toBe(false);
    expect(items.filter((item) => item.event === 'task:progress')).toHaveLength(20);
  });

  it('ends when its signal aborts', async () => {
    const o = await make();
    streamer(o);
    const controller = new AbortController();
    const stream = o.events({ signal: controller.signal });
    const waiting = stream.next();
    controller.abort();
    expect(await waiting).toEqual({ done: true, value: undefined });

    const loopController = new AbortController();
    const seen: string[] = [];
    const loop = (async () => {
      for await (const item of o.events({ signal: loopController.signal })) {
        seen.push(item.event);
        if (item.event === 'task:submitted') loopController.abort();
      }
    })();
    await run(o, 3);
    await loop;
    expect(seen).toEqual(['task:submitted']);

    const aborted = AbortSignal.abort();
    expect(await o.events({ signal: aborted }).next()).toEqual({ done: true, value: undefined });
  });

  it('ends at once when asked for after shutdown', async () => {
    const watched = await make();
    const before = watched.events();
    await watched.shutdown();
    expect((await collect(before)).map((item) => item.event)).toEqual(['orchestrator:shutdown']);
    expect(await nextOrPending(watched.events())).toEqual({ done: true, value: undefined });

    // Never watched before it shut down.
    const unwatched = await make();
    await unwatched.shutdown();
    expect(await nextOrPending(unwatched.events())).toEqual({ done: true, value: undefined });
  });
});
