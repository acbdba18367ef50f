// Per-agent rate limits: at most `max` starts in any `perMs` window; tasks over the rate wait.
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { AgentRole } from '../src/index.js';
import { useOrchestrators } from './helpers.js';

const started = useOrchestrators();

/** The most starts found in any window of `windowMs` beginning at a start. */
function busiestWindow(starts: readonly number[], windowMs: number): { count: number; from: number } {
  const sorted = [...starts].sort((a, b) => a - b);
  let best = { count: 0, from: 0 };
  for (let i = 0; i < sorted.length; i++) {
    let j = i;
    while (j < sorted.length && sorted[j]! - sorted[i]! < windowMs) j++;
    if (j - i > best.count) best = { count: j - i, from: sorted[i]! - sorted[0]! };
  }
  return best;
}

describe('rateLimit { max, perMs }', () => {
  // The limiter's guarantee is about the engine's start times, which the audit trail records
  // (the reading the limiter counted, in whole ms); times taken in the handler drift under load.
  it('no window of perMs holds more than max starts, and every task completes', async () => {
    const limit = { max: 3, perMs: 200 };
    const o = await started({ workerPool: { minWorkers: 1, maxWorkers: 10 } });
    o.registerAgent({
      agentId: 'api',
      role: AgentRole.OBSERVER,
      capabilities: ['search'],
      maxConcurrent: 10,
      rateLimit: limit,
      handler: async (task) => task.payload,
    });
    const tasks = Array.from({ length: 10 }, (_, i) => o.submit<number>({ type: 'search', capabilities: ['search'], payload: i, retry: { maxAttempts: 1 } }));
    const done = await Promise.all(tasks.map((task) => task.result()));
    expect(done.map((d) => d.result)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const starts = (await o.audit({ type: 'started' })).map((entry) => entry.timestamp);
    expect(starts).toHaveLength(10);
    const busiest = busiestWindow(starts, limit.perMs);
    expect(busiest.count, `${busiest.count} starts within ${limit.perMs} ms from +${busiest.from} ms; starts at ${starts.map((t) => t - starts[0]!).join(', ')}`).toBeLessThanOrEqual(limit.max);
    // The limit was reached, not merely respected by a slow run: some window is full.
    expect(busiest.count).toBe(limit.max);
    expect(o.getStats().totalFailed).toBe(0);
  });

  it('getAgentState shows rateLimited while throttled, and not once a start is due again', async () => {
    const o = await started();
    const limitedAtStart: boolean[] = [];
    o.registerAgent({
      agentId: 'api',
      role: AgentRole.OBSERVER,
      capabilities: ['search'],
      maxConcurrent: 5,
      rateLimit: { max: 2, perMs: 60 },
      handler: async () => {
        limitedAtStart.push(o.getAgentState('api').rateLimited);
        return 'ok';
      },
    });
    expect(o.getAgentState('api')).toMatchObject({ rateLimited: false, rateLimit: { max: 2, perMs: 60 } });
    const tasks = Array.from({ length: 4 }, () => o.submit({ type: 'search', capabilities: ['search'] }));
    // The first two starts fill the window; the third waits until the first is perMs old.
    await tasks[1]!.result();
    expect(o.getAgentState('api').rateLimited).toBe(true);
    expect(tasks[2]!.state).toBe('queued');
    await Promise.all(tasks.map((task) => task.result()));
    // Whether the third start sees a full window depends on how far apart the first two were.
    expect(limitedAtStart.slice(0, 2)).toEqual([false, true]);
    expect(o.getStats().totalFailed).toBe(0);
    // No event marks the window moving on: poll until the next start is due (within perMs).
    const deadline = performance.now() + 2_000;
    while (o.getAgentState('api').rateLimited && performance.now() < deadline) await delay(5);
    expect(o.getAgentState('api').rateLimited).toBe(false);
  });

  it('tasks over one agent’s rate go to another capable agent instead of waiting', async () => {
    const o = await started({ workerPool: { minWorkers: 1, maxWorkers: 10 } });
    const handler = async (_task: unknown, ctx: { agentId: string }) => ctx.agentId;
    // The limited agent is preferred, so it gets work whenever its rate allows.
    o.registerAgent({ agentId: 'limited', role: AgentRole.ANALYZER, capabilities: ['x'], maxConcurrent: 10, rateLimit: { max: 2, perMs: 60_000 }, handler });
    o.registerAgent({ agentId: 'spare', role: AgentRole.EXECUTOR, capabilities: ['x'], maxConcurrent: 10, handler });
    const done = await Promise.all(
      Array.from({ length: 6 }, () => o.submit<string>({ type: 'x', capabilities: ['x'], preferredRole: AgentRole.ANALYZER }).result()),
    );
    expect(done.map((d) => d.result)).toEqual(['limited', 'limited', 'spare', 'spare', 'spare', 'spare']);
    expect(o.getAgentState('limited')).toMatchObject({ completed: 2, rateLimited: true });
    expect(o.getAgentState('spare').completed).toBe(4);
  });

  it('a throttled agent is neither failed nor opened: its breaker stays closed', async () => {
    const o = await started({ circuitBreaker: { failureThreshold: 1 } });
    o.registerAgent({ agentId: 'api', role: AgentRole.OBSERVER, capabilities: ['x'], maxConcurrent: 4, rateLimit: { max: 1, perMs: 30 }, handler: async () => 'ok' });
    const states: string[] = [];
    o.on('agent:circuit-state', ({ to }) => states.push(to));
    await Promise.all(Array.from({ length: 4 }, () => o.submit({ type: 'x', capabilities: ['x'], retry: { maxAttempts: 1 } }).result()));
    expect(states).toEqual([]);
    expect(o.getAgentState('api')).toMatchObject({ circuitState: 'closed', failed: 0, completed: 4 });
  });

  it('rejects an invalid rateLimit with InvalidAgentError naming the field', async () => {
    const o = await started();
    expect(() =>
      o.registerAgent({ agentId: 'bad', role: AgentRole.OBSERVER, capabilities: ['x'], rateLimit: { max: 0, perMs: 100 }, handler: async () => 1 }),
    ).toThrow(expect.objectContaining({ name: 'InvalidAgentError', field: 'rateLimit.max' }));
    expect(() =>
      o.registerAgent({ agentId: 'bad', role: AgentRole.OBSERVER, capabilities: ['x'], rateLimit: { max: 1, perMs: 0 }, handler: async () => 1 }),
    ).toThrow(expect.objectContaining({ name: 'InvalidAgentError', field: 'rateLimit.perMs' }));
  });
});
