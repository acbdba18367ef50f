import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { AgentRole, CircuitState, InvalidOptionsError, createParallelOrchestrator, type AgentHandler, type AgentInfo, type ParallelOrchestrator } from '../src/index.js';
import { CapabilitySignature } from '../src/routing/capability-signature.js';
import { ClassEstimates, Estimate, expectedMs } from '../src/routing/estimates.js';
import { deferred, useOrchestrators } from './helpers.js';

// The adaptive strategy learns from measured run times, so these handlers really sleep; the
// speeds differ by an order of magnitude so that a loaded machine (late timers) cannot reorder
// them, and every assertion counts tasks or compares figures, never times. The strategy itself
// is deterministic (no randomness): what varies from run to run is only the timers.

const make = useOrchestrators();
const CAPS = ['work'];
/** Retries come back at once: failures should cost routing decisions here, not test time. */
const quickRetry = { maxAttempts: 20, initialDelay: 1, factor: 1, jitter: 0 };

interface Speed {
  /** Run time of each call (ms); may change while the test runs. */
  ms: number;
  /** Every second call fails (deterministically). */
  flaky?: boolean;
}

/** Registers an agent sleeping `speed.ms` per call; returns the number of calls it got so far. */
function agent(o: ParallelOrchestrator, agentId: string, speed: Speed, role: AgentRole = AgentRole.EXECUTOR, extra: { rateLimit?: { max: number; perMs: number } } = {}): () => number {
  let calls = 0;
  const handler: AgentHandler = async (_task, ctx) => {
    calls++;
    const fails = speed.flaky === true && calls % 2 === 0;
    await delay(speed.ms, undefined, { signal: ctx.signal });
    if (fails) throw new Error(`${agentId} failed`);
    return agentId;
  };
  o.registerAgent({ agentId, role, capabilities: CAPS, maxConcurrent: 1, handler, ...extra });
  return () => calls;
}

/** Runs `total` tasks keeping `inFlight` of them submitted at any time (a closed loop); returns the agent of each result. */
async function closedLoop(o: ParallelOrchestrator, total: number, inFlight: number, spec: { preferredRole?: AgentRole } = {}): Promise<string[]> {
  const agents: string[] = [];
  let submitted = 0;
  const lane = async (): Promise<void> => {
    while (submitted < total) {
      submitted++;
      const { agentId } = await o.submit({ type: 'work', capabilities: CAPS, retry: quickRetry, ...spec }).result();
      agents.push(agentId);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return agents;
}

function count(agents: readonly string[], agentId: string): number {
  return agents.filter((a) => a === agentId).length;
}

function learned(info: AgentInfo | undefined): AgentInfo['learned'][number] {
  expect(info?.learned).toHaveLength(1);
  return info!.learned[0]!;
}

describe("assignmentStrategy: 'adaptive'", () => {
  it('gives work in order of what agents deliver: fast, then one as fast that fails every other run, then slow, then slowest', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'adaptive', adaptiveHalfLife: 5 } });
    const calls = {
      fast: agent(o, 'fast', { ms: 2 }),
      flaky: agent(o, 'flaky', { ms: 2, flaky: true }),
      slow: agent(o, 'slow', { ms: 25 }),
      slowest: agent(o, 'slowest', { ms: 100 }),
    };
    // Two tasks at a time on four agents: every decision has a choice of at least two free agents.
    const results = await closedLoop(o, 300, 2);
    const delivered = { fast: count(results, 'fast'), flaky: count(results, 'flaky'), slow: count(results, 'slow'), slowest: count(results, 'slowest') };
    expect(delivered.fast + delivered.flaky + delivered.slow + delivered.slowest).toBe(300);
    expect(delivered.fast).toBeGreaterThan(150);
    expect(delivered.flaky).toBeGreaterThan(delivered.slow);
    expect(delivered.slow).toBeGreaterThan(0);
    expect(delivered.slow).toBeGreaterThanOrEqual(delivered.slowest);
    // The slowest is only tried now and then (it is new at first, and unused figures grow stale).
    expect(calls.slowest()).toBeLessThan(15);
    expect(calls.flaky()).toBeLessThan(calls.fast());

    const fast = learned(o.getAgent('fast'));
    const slow = learned(o.getAgent('slow'));
    const slowest = learned(o.getAgent('slowest'));
    const flaky = learned(o.getAgent('flaky'));
    expect(fast).toMatchObject({ capabilities: CAPS, successRate: 1, samples: calls.fast() });
    expect(fast.meanMs).toBeLessThan(slow.meanMs);
    expect(slow.meanMs).toBeLessThan(slowest.meanMs);
    expect(flaky.samples).toBe(calls.flaky());
    expect(flaky.successRate).toBeGreaterThan(0.2);
    expect(flaky.successRate).toBeLessThan(0.8);
  });

  it('finds again, within a bounded number of tasks, an agent that became fast', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'adaptive', adaptiveHalfLife: 5 } });
    agent(o, 'steady', { ms: 10 });
    const changing: Speed = { ms: 100 };
    agent(o, 'changing', changing);
    // 'changing' is tried first (new), found slow, left for 'steady', and tried again once its
    // figures have gone stale; right after that second look it turns fast.
    let warmUp = 0;
    while ((o.getAgent('changing')!.learned[0]?.samples ?? 0) < 2 && warmUp < 200) warmUp += (await closedLoop(o, 1, 1)).length;
    expect(learned(o.getAgent('changing')).samples).toBe(2);
    expect(warmUp).toBeGreaterThan(10);
    changing.ms = 1;
    const after = await closedLoop(o, 120, 1);
    // Half-life 5 outcomes per agent, 2 agents: figures halve every 10 outcomes; a 10x slower
    // agent seen twice looks as good as the best once its weight fell ~20-fold: ~45 tasks.
    const found = after.indexOf('changing');
    expect(found).toBeGreaterThan(10);
    expect(found).toBeLessThan(80);
    // Once found, it keeps most of the work.
    expect(count(after.slice(-30), 'changing')).toBeGreaterThan(20);
  });

  it('tries an agent registered while others have figures, on the next task', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'adaptive' } });
    agent(o, 'old', { ms: 1 });
    await closedLoop(o, 10, 1);
    agent(o, 'new', { ms: 30 });
    expect(o.getAgent('new')?.learned).toEqual([]);
    const [first] = await closedLoop(o, 1, 1);
    expect(first).toBe('new');
    // One run taught it is slow: the known fast agent is back.
    expect(await closedLoop(o, 5, 1)).toEqual(['old', 'old', 'old', 'old', 'old']);
  });

  it('gives one task, not a slot-full, to an agent it is still trying', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'adaptive' } });
    o.registerAgent({ agentId: 'fast', role: AgentRole.EXECUTOR, capabilities: CAPS, maxConcurrent: 8, handler: async () => 'fast' });
    agent(o, 'slow', { ms: 20 });
    await closedLoop(o, 6, 1);
    const release = deferred();
    let trying = 0;
    o.registerAgent({
      agentId: 'trying',
      role: AgentRole.EXECUTOR,
      capabilities: CAPS,
      maxConcurrent: 8,
      handler: async () => {
        trying++;
        await release.promise;
        return 'trying';
      },
    });
    let starts = 0;
    const allStarted = deferred();
    o.on('task:started', () => {
      if (++starts === 6) allStarted.resolve();
    });
    const tasks = Array.from({ length: 6 }, () => o.submit({ type: 'work', capabilities: CAPS }));
    const results = Promise.all(tasks.map((task) => task.result()));
    await allStarted.promise;
    // The new agent got the first task; the others went to the agent known to be fast.
    expect(trying).toBe(1);
    release.resolve();
    expect((await results).map((r) => r.agentId).sort()).toEqual(['fast', 'fast', 'fast', 'fast', 'fast', 'trying']);
  });

  it('still gives a task to its preferredRole when one of that role is free, however slow', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'adaptive' } });
    agent(o, 'quick', { ms: 1 }, AgentRole.EXECUTOR);
    agent(o, 'careful', { ms: 20 }, AgentRole.VALIDATOR);
    await closedLoop(o, 10, 1);
    expect(learned(o.getAgent('careful')).meanMs).toBeGreaterThan(learned(o.getAgent('quick')).meanMs);
    expect(await closedLoop(o, 5, 1, { preferredRole: AgentRole.VALIDATOR })).toEqual(['careful', 'careful', 'careful', 'careful', 'careful']);
    expect(await closedLoop(o, 3, 1)).toEqual(['quick', 'quick', 'quick']);
  });

  it('routes nothing to an agent whose circuit is open, however fast', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'adaptive' } });
    agent(o, 'fast', { ms: 1 });
    agent(o, 'slow', { ms: 15 });
    await closedLoop(o, 10, 1);
    o.isolateAgent('fast');
    expect(await closedLoop(o, 4, 1)).toEqual(['slow', 'slow', 'slow', 'slow']);
    o.resetCircuit('fast');
    expect(o.getAgent('fast')?.circuitState).toBe(CircuitState.CLOSED);
    expect(await closedLoop(o, 3, 1)).toEqual(['fast', 'fast', 'fast']);
  });

  it('routes nothing to an agent whose rate limit is spent, however fast', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'adaptive' } });
    const fastCalls = agent(o, 'fast', { ms: 1 }, AgentRole.EXECUTOR, { rateLimit: { max: 3, perMs: 60_000 } });
    agent(o, 'slow', { ms: 10 });
    const results = await closedLoop(o, 12, 1);
    expect(fastCalls()).toBe(3);
    expect(count(results, 'slow')).toBe(9);
    expect(o.getAgent('fast')?.rateLimited).toBe(true);
  });

  it('learns a timeout as a failure of its full duration, and nothing from a cancelled run', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'adaptive' } });
    const hang = deferred();
    o.registerAgent({
      agentId: 'a',
      role: AgentRole.EXECUTOR,
      capabilities: CAPS,
      handler: async (task, ctx) => {
        if (task.payload === 'hang') await new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error)));
        if (task.payload === 'wait') {
          hang.resolve();
          await new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error)));
        }
        return 'ok';
      },
    });
    await o.submit({ type: 'work', capabilities: CAPS }).result();
    const timedOut = o.submit({ type: 'work', capabilities: CAPS, payload: 'hang', timeout: 30, retry: { maxAttempts: 1 } });
    await expect(timedOut.result()).rejects.toThrow();
    const figures = learned(o.getAgent('a'));
    expect(figures.samples).toBe(2);
    expect(figures.successRate).toBeCloseTo(0.5, 1);
    expect(figures.meanMs).toBeGreaterThanOrEqual(15);
    const cancelled = o.submit({ type: 'work', capabilities: CAPS, payload: 'wait' });
    await hang.promise;
    await o.cancel(cancelled.taskId);
    await expect(cancelled.result()).rejects.toThrow();
    expect(learned(o.getAgent('a'))).toEqual(figures);
  });

  it('shows the figures in getAgent, listAgents and getStats, per task type and set of required capabilities', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'adaptive' } });
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: ['x', 'y'], handler: async () => 'ok' });
    await o.submit({ type: 't', capabilities: ['y', 'x'] }).result();
    await o.submit({ type: 't', capabilities: ['x'] }).result();
    await o.submit({ type: 't', capabilities: ['x'] }).result();
    await o.submit({ type: 'u', capabilities: ['x'] }).result();
    const info = o.getAgent('a')!;
    expect(info.learned.map(({ capabilities, type, samples, successRate }) => ({ capabilities, type, samples, successRate }))).toEqual([
      { capabilities: ['x', 'y'], type: 't', samples: 1, successRate: 1 },
      { capabilities: ['x'], type: 't', samples: 2, successRate: 1 },
      { capabilities: ['x'], type: 'u', samples: 1, successRate: 1 },
    ]);
    expect(o.listAgents()[0]!.learned).toEqual(info.learned);
    expect(o.getStats().agentRouter.agentStats[0]!.learned).toEqual(info.learned);
  });

  it('learns each task type apart: two agents, each fast at one type and slow at the other, get the types they are fast at', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'adaptive', adaptiveHalfLife: 5 } });
    const runs: string[] = [];
    for (const [agentId, fastAt] of [['a', 'parse'], ['b', 'render']] as const) {
      o.registerAgent({
        agentId,
        role: AgentRole.EXECUTOR,
        capabilities: CAPS,
        maxConcurrent: 1,
        handler: async (task) => {
          await delay(task.type === fastAt ? 2 : 40);
          runs.push(`${task.type}@${agentId}`);
          return agentId;
        },
      });
    }
    // One task of each type at a time: both agents are free at each decision after the first few.
    for (let i = 0; i < 40; i++) {
      await Promise.all([o.submit({ type: 'parse', capabilities: CAPS }).result(), o.submit({ type: 'render', capabilities: CAPS }).result()]);
    }
    const last = runs.slice(-40);
    expect(count(last, 'parse@a')).toBeGreaterThan(count(last, 'parse@b') * 3);
    expect(count(last, 'render@b')).toBeGreaterThan(count(last, 'render@a') * 3);
    expect(o.getAgent('a')!.learned.map((figures) => figures.type).sort()).toEqual(['parse', 'render']);
  });

  it('learns the task types past the first 256 of a set of capabilities together, so memory stays bounded', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'adaptive' } });
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: CAPS, handler: async () => 'ok' });
    for (let i = 0; i < 300; i++) await o.submit({ type: `type-${i}`, capabilities: CAPS }).result();
    const learnedFigures = o.getAgent('a')!.learned;
    expect(learnedFigures).toHaveLength(256);
    expect(learnedFigures.filter((figures) => figures.type === null)).toEqual([expect.objectContaining({ samples: 300 - 255 })]);
  });

  it('learns nothing with the other strategies', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'least-busy' } });
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: CAPS, handler: async () => 'ok' });
    await o.submit({ type: 'work', capabilities: CAPS }).result();
    expect(o.getAgent('a')?.learned).toEqual([]);
  });

  it('validates adaptiveHalfLife', () => {
    for (const adaptiveHalfLife of [0, 1.5, -1, '20']) {
      expect(() => createParallelOrchestrator({ workerPool: { assignmentStrategy: 'adaptive', adaptiveHalfLife: adaptiveHalfLife as number } })).toThrow(
        expect.objectContaining({ name: InvalidOptionsError.name, message: expect.stringContaining('workerPool.adaptiveHalfLife') }),
      );
    }
  });
});

describe('adaptive estimates (no timers)', () => {
  const signature = new CapabilitySignature('work', CAPS);

  it('keep exact figures across the rebasing of their clock', () => {
    // Half-life 1 outcome, one agent: the clock passes 64 half-lives every 64 outcomes.
    const classes = new ClassEstimates(1, 'work');
    const estimate = new Estimate(signature, 'work');
    classes.byAgent.push(estimate);
    for (let i = 0; i < 1000; i++) classes.learn(estimate, true, 10, 1);
    expect(classes.base).toBeGreaterThan(900);
    expect(estimate).toMatchObject({ meanMs: 10, successRate: 1, samples: 1000 });
    // Weights halve per outcome, so the weight tends to 1 + 1/2 + 1/4 + … = 2: E = 2·10 / (2 + 1).
    expect(expectedMs(estimate, classes, 0, 1)).toBeCloseTo(20 / 3, 9);
  });

  it('do not make an agent that fails at once look fastest', () => {
    const classes = new ClassEstimates(20, 'work');
    const steady = new Estimate(signature, 'work');
    const broken = new Estimate(signature, 'work');
    classes.byAgent.push(steady, broken);
    for (let i = 0; i < 20; i++) classes.learn(steady, true, 10, 2);
    classes.learn(broken, false, 0.01, 2);
    classes.learn(broken, false, 0.01, 2);
    expect(expectedMs(broken, classes, 0, 1)).toBeGreaterThan(expectedMs(steady, classes, 0, 1));
    expect(expectedMs(broken, classes, 1, 2)).toBe(Infinity);
  });

  it('score a new agent 0 while idle, and as a typical run of its class once it has a run in flight', () => {
    const classes = new ClassEstimates(20, 'work');
    const known = new Estimate(signature, 'work');
    const fresh = new Estimate(signature, 'work');
    classes.byAgent.push(known, fresh);
    for (let i = 0; i < 5; i++) classes.learn(known, true, 8, 2);
    expect(expectedMs(fresh, classes, 0, 4)).toBe(0);
    expect(expectedMs(fresh, classes, 1, 4)).toBeCloseTo(1.25 * 8, 9);
  });
});
