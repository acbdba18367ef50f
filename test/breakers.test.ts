// Per-agent circuit breakers inside the orchestrator, driven by real failing handlers.
import { describe, expect, it } from 'vitest';
import {
  AgentRole,
  CircuitState,
  InvalidOptionsError,
  TaskPriority,
  type AgentHandler,
  type OrchestratorEvents,
  type ParallelOrchestrator,
} from '../src/index.js';
import { useOrchestrators } from './helpers.js';

type Transition = OrchestratorEvents['agent:circuit-state'];

const started = useOrchestrators();

/** Resolves on the next circuit change of `agentId` into `to`; subscribe before causing it. */
function circuitTo(o: ParallelOrchestrator, agentId: string, to: CircuitState): Promise<Transition> {
  return new Promise((resolve) => {
    const off = o.on('agent:circuit-state', (event) => {
      if (event.agentId !== agentId || event.to !== to) return;
      off();
      resolve(event);
    });
  });
}

/** Every circuit change, as 'agent: from→to'. */
function transitions(o: ParallelOrchestrator): string[] {
  const seen: string[] = [];
  o.on('agent:circuit-state', ({ agentId, from, to }) => seen.push(`${agentId}: ${from}→${to}`));
  return seen;
}

/** Lets pending microtasks and immediates run, so any start that could happen has happened. */
async function settle(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise(setImmediate);
}

const failing: AgentHandler = async (task) => {
  throw new Error(`down (${task.id})`);
};

/** A handler whose health the test switches. */
function switchable(): { handler: AgentHandler; healthy: boolean } {
  const state = {
    healthy: false,
    handler: (async (task) => {
      if (!state.healthy) throw new Error(`down (${task.id})`);
      return 'ok';
    }) as AgentHandler,
  };
  return state;
}

const once = { maxAttempts: 1 } as const;

describe('opening', () => {
  it('failureThreshold consecutive failures open the circuit', async () => {
    const o = await started({ circuitBreaker: { failureThreshold: 3, resetTimeout: 60_000 } });
    const seen = transitions(o);
    o.registerAgent({ agentId: 'flaky', role: AgentRole.EXECUTOR, capabilities: ['x'], handler: failing });
    const opened = circuitTo(o, 'flaky', CircuitState.OPEN);
    for (let i = 0; i < 2; i++) await expect(o.submit({ type: 'x', capabilities: ['x'], retry: once }).result()).rejects.toThrow(/down/);
    expect(o.getAgentState('flaky').circuitState).toBe(CircuitState.CLOSED);
    await expect(o.submit({ type: 'x', capabilities: ['x'], retry: once }).result()).rejects.toThrow(/down/);
    expect(await opened).toEqual({ agentId: 'flaky', from: CircuitState.CLOSED, to: CircuitState.OPEN });
    expect(seen).toEqual(['flaky: closed→open']);
    expect(o.getAgentState('flaky')).toMatchObject({ circuitState: CircuitState.OPEN, circuitTrips: 1, failed: 3, isolated: false });
  });

  it('a success between failures resets the count: only consecutive failures open it', async () => {
    const o = await started({ circuitBreaker: { failureThreshold: 2, resetTimeout: 60_000 } });
    const agent = switchable();
    o.registerAgent({ agentId: 'flaky', role: AgentRole.EXECUTOR, capabilities: ['x'], handler: agent.handler });
    const run = (healthy: boolean) => {
      agent.healthy = healthy;
      return o.submit({ type: 'x', capabilities: ['x'], retry: once }).result().catch(() => 'failed');
    };
    await run(false);
    await run(true);
    await run(false);
    expect(o.getAgentState('flaky').circuitState).toBe(CircuitState.CLOSED);
    await run(false);
    expect(o.getAgentState('flaky').circuitState).toBe(CircuitState.OPEN);
  });

  it('a timed-out attempt counts as a failure', async () => {
    const o = await started({ circuitBreaker: { failureThreshold: 1, resetTimeout: 60_000 }, workerPool: { stuckGrace: 10, healthCheckInterval: 5 } });
    o.registerAgent({ agentId: 'slow', role: AgentRole.EXECUTOR, capabilities: ['x'], handler: (_task, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)) });
    const opened = circuitTo(o, 'slow', CircuitState.OPEN);
    await expect(o.submit({ type: 'x', capabilities: ['x'], timeout: 20, retry: once }).result()).rejects.toMatchObject({ code: 'TASK_TIMEOUT' });
    await opened;
  });

  it('while one agent is open its queued tasks go to a healthy agent with the same capability and none fail', async () => {
    const o = await started({ circuitBreaker: { failureThreshold: 3, resetTimeout: 60_000 }, workerPool: { minWorkers: 2, maxWorkers: 2 } });
    const seen = transitions(o);
    // 'bad' is preferred, so tasks reach it whenever it admits work; 'good' is held busy until 'bad' opens.
    o.registerAgent({ agentId: 'bad', role: AgentRole.ANALYZER, capabilities: ['x'], handler: failing });
    let release!: () => void;
    const goodFree = new Promise<void>((resolve) => (release = resolve));
    o.registerAgent({
      agentId: 'good',
      role: AgentRole.EXECUTOR,
      capabilities: ['x'],
      handler: async (task) => {
        await goodFree;
        return task.payload;
      },
    });
    o.on('agent:circuit-state', ({ agentId, to }) => {
      if (agentId === 'bad' && to === CircuitState.OPEN) release();
    });
    const tasks = Array.from({ length: 10 }, (_, i) =>
      o.submit<number>({ type: 'x', capabilities: ['x'], payload: i, preferredRole: AgentRole.ANALYZER, retry: { maxAttempts: 4, initialDelay: 1, jitter: 0 } }),
    );
    const done = await Promise.all(tasks.map((task) => task.result()));
    expect(done.map((d) => d.result)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(done.every((d) => d.agentId === 'good')).toBe(true);
    expect(o.getAgentState('bad')).toMatchObject({ circuitState: CircuitState.OPEN, failed: 3, completed: 0 });
    expect(o.getStats().totalFailed).toBe(0);
    expect(seen).toEqual(['bad: closed→open']);
  });

  it('with no other capable agent, tasks wait for the probe instead of failing', async () => {
    const o = await started({ circuitBreaker: { failureThreshold: 1, successThreshold: 1, resetTimeout: 30 } });
    const agent = switchable();
    o.registerAgent({ agentId: 'only', role: AgentRole.EXECUTOR, capabilities: ['x'], handler: agent.handler });
    await expect(o.submit({ type: 'x', capabilities: ['x'], retry: once }).result()).rejects.toThrow(/down/);
    expect(o.getAgentState('only').circuitState).toBe(CircuitState.OPEN);
    agent.healthy = true;
    const waiting = Array.from({ length: 3 }, () => o.submit({ type: 'x', capabilities: ['x'], retry: once }));
    await settle();
    expect(waiting.map((task) => task.state)).toEqual(['queued', 'queued', 'queued']);
    const results = await Promise.all(waiting.map((task) => task.result()));
    expect(results.map((r) => r.result)).toEqual(['ok', 'ok', 'ok']);
    expect(o.getStats().totalFailed).toBe(1);
  });
});

describe('half-open', () => {
  it('after resetTimeout a probe goes through and successThreshold successes close the circuit', async () => {
    const o = await started({ circuitBreaker: { failureThreshold: 2, successThreshold: 2, resetTimeout: 30 } });
    const seen = transitions(o);
    const agent = switchable();
    const statesAtStart: string[] = [];
    o.registerAgent({
      agentId: 'svc',
      role: AgentRole.EXECUTOR,
      capabilities: ['x'],
      handler: (task, ctx) => {
        statesAtStart.push(o.getAgentState('svc').circuitState);
        return agent.handler(task, ctx);
      },
    });
    for (let i = 0; i < 2; i++) await o.submit({ type: 'x', capabilities: ['x'], retry: once }).result().catch(() => undefined);
    expect(o.getAgentState('svc').circuitState).toBe(CircuitState.OPEN);
    agent.healthy = true;
    const halfOpen = circuitTo(o, 'svc', CircuitState.HALF_OPEN);
    const closed = circuitTo(o, 'svc', CircuitState.CLOSED);
    const tasks = Array.from({ length: 3 }, () => o.submit({ type: 'x', capabilities: ['x'], retry: once }));
    await halfOpen;
    await closed;
    await Promise.all(tasks.map((task) => task.result()));
    expect(seen).toEqual(['svc: closed→open', 'svc: open→half-open', 'svc: half-open→closed']);
    // Two failures closed, two probes half-open, then the third task on a closed circuit.
    expect(statesAtStart).toEqual(['closed', 'closed', 'half-open', 'half-open', 'closed']);
    expect(o.getAgentState('svc')).toMatchObject({ circuitState: CircuitState.CLOSED, circuitTrips: 0 });
  });

  it('one failure while half-open reopens the circuit', async () => {
    const o = await started({ circuitBreaker: { failureThreshold: 2, successThreshold: 2, resetTimeout: 20 } });
    const seen = transitions(o);
    o.registerAgent({ agentId: 'svc', role: AgentRole.EXECUTOR, capabilities: ['x'], handler: failing });
    const halfOpen = circuitTo(o, 'svc', CircuitState.HALF_OPEN);
    for (let i = 0; i < 2; i++) await o.submit({ type: 'x', capabilities: ['x'], retry: once }).result().catch(() => undefined);
    await halfOpen;
    const reopened = circuitTo(o, 'svc', CircuitState.OPEN);
    await expect(o.submit({ type: 'x', capabilities: ['x'], retry: once }).result()).rejects.toThrow(/down/);
    await reopened;
    expect(seen).toEqual(['svc: closed→open', 'svc: open→half-open', 'svc: half-open→open']);
    expect(o.getAgentState('svc')).toMatchObject({ circuitState: CircuitState.OPEN, circuitTrips: 2 });
  });

  // How long each trip stays open is the breaker's own logic, tested on an injected clock in
  // standalone-breaker.test.ts; here, that the orchestrator counts trips and closing resets them.
  it('repeated trips are counted and closing resets the trips', async () => {
    const o = await started({ circuitBreaker: { failureThreshold: 1, successThreshold: 1, resetTimeout: 5, maxResetTimeout: 10_000 } });
    const seen = transitions(o);
    const agent = switchable();
    o.registerAgent({ agentId: 'svc', role: AgentRole.EXECUTOR, capabilities: ['x'], handler: agent.handler });
    const trips: number[] = [];
    for (let trip = 1; trip <= 3; trip++) {
      const halfOpen = circuitTo(o, 'svc', CircuitState.HALF_OPEN);
      await o.submit({ type: 'x', capabilities: ['x'], retry: once }).result().catch(() => undefined);
      trips.push(o.getAgentState('svc').circuitTrips);
      await halfOpen;
    }
    expect(seen).toEqual(['svc: closed→open', 'svc: open→half-open', 'svc: half-open→open', 'svc: open→half-open', 'svc: half-open→open', 'svc: open→half-open']);
    expect(trips).toEqual([1, 2, 3]);
    agent.healthy = true;
    await o.submit({ type: 'x', capabilities: ['x'], retry: once }).result();
    expect(o.getAgentState('svc')).toMatchObject({ circuitState: CircuitState.CLOSED, circuitTrips: 0 });
  });

  it('admits at most halfOpenMaxConcurrent probes at once', async () => {
    const o = await started({
      circuitBreaker: { failureThreshold: 1, successThreshold: 3, resetTimeout: 20, halfOpenMaxConcurrent: 2 },
      workerPool: { minWorkers: 1, maxWorkers: 10 },
    });
    let healthy = false;
    let running = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const probesRunning = { max: 0 };
    let twoProbes!: () => void;
    const twoProbesRunning = new Promise<void>((resolve) => (twoProbes = resolve));
    o.registerAgent({
      agentId: 'svc',
      role: AgentRole.EXECUTOR,
      capabilities: ['x'],
      maxConcurrent: 8,
      handler: async () => {
        if (!healthy) throw new Error('down');
        running++;
        if (o.getAgentState('svc').circuitState === CircuitState.HALF_OPEN) {
          probesRunning.max = Math.max(probesRunning.max, running);
          if (running === 2) twoProbes();
        }
        await gate;
        running--;
        return 'ok';
      },
    });
    const halfOpen = circuitTo(o, 'svc', CircuitState.HALF_OPEN);
    await o.submit({ type: 'x', capabilities: ['x'], retry: once }).result().catch(() => undefined);
    healthy = true;
    const tasks = Array.from({ length: 6 }, () => o.submit({ type: 'x', capabilities: ['x'], retry: once }));
    await halfOpen;
    await twoProbesRunning;
    await settle();
    expect(running).toBe(2);
    expect(tasks.filter((task) => task.state === 'queued')).toHaveLength(4);
    const closed = circuitTo(o, 'svc', CircuitState.CLOSED);
    release();
    await closed;
    await Promise.all(tasks.map((task) => task.result()));
    expect(probesRunning.max).toBe(2);
  });

  it('a cancelled probe is neither success nor failure and frees its probe place', async () => {
    const o = await started({ circuitBreaker: { failureThreshold: 1, successThreshold: 1, resetTimeout: 20, halfOpenMaxConcurrent: 1 } });
    let healthy = false;
    o.registerAgent({
      agentId: 'svc',
      role: AgentRole.EXECUTOR,
      capabilities: ['x'],
      maxConcurrent: 4,
      handler: async (task, ctx) => {
        if (!healthy) throw new Error('down');
        if (task.payload === 'hang') await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
        return 'ok';
      },
    });
    const halfOpen = circuitTo(o, 'svc', CircuitState.HALF_OPEN);
    await o.submit({ type: 'x', capabilities: ['x'], retry: once }).result().catch(() => undefined);
    healthy = true;
    const probe = o.submit({ type: 'x', capabilities: ['x'], payload: 'hang', priority: TaskPriority.HIGH, retry: once });
    const next = o.submit({ type: 'x', capabilities: ['x'], payload: 'quick', retry: once });
    const probeStarted = new Promise<void>((resolve) => probe.once('start', () => resolve()));
    await halfOpen;
    await probeStarted;
    await settle();
    expect(next.state).toBe('queued');
    o.cancel(probe.taskId);
    expect(o.getAgentState('svc').circuitState).toBe(CircuitState.HALF_OPEN);
    await expect(next.result()).resolves.toMatchObject({ result: 'ok' });
    expect(o.getAgentState('svc').circuitState).toBe(CircuitState.CLOSED);
  });
});

describe('isolateAgent and resetCircuit', () => {
  it('isolateAgent holds the circuit open so no task is routed to it; resetCircuit closes it', async () => {
    const o = await started({ circuitBreaker: { resetTimeout: 20 } });
    const seen = transitions(o);
    const ran: string[] = [];
    const handler: AgentHandler = async (_task, ctx) => {
      ran.push(ctx.agentId);
      return ctx.agentId;
    };
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: ['x'], maxConcurrent: 4, handler });
    o.registerAgent({ agentId: 'b', role: AgentRole.EXECUTOR, capabilities: ['x'], maxConcurrent: 4, handler });
    o.isolateAgent('a');
    expect(o.getAgentState('a')).toMatchObject({ circuitState: CircuitState.OPEN, isolated: true });
    await Promise.all(Array.from({ length: 8 }, () => o.submit({ type: 'x', capabilities: ['x'] }).result()));
    expect(ran.filter((agentId) => agentId === 'a')).toEqual([]);
    expect(ran).toHaveLength(8);
    o.resetCircuit('a');
    expect(o.getAgentState('a')).toMatchObject({ circuitState: CircuitState.CLOSED, isolated: false, circuitTrips: 0 });
    o.unregisterAgent('b');
    const after = await o.submit<string>({ type: 'x', capabilities: ['x'] }).result();
    expect(after.result).toBe('a');
    expect(seen).toEqual(['a: closed→open', 'a: open→closed']);
  });

  it('an isolated agent does not half-open after resetTimeout; its tasks wait until resetCircuit', async () => {
    const resetTimeout = 20;
    const o = await started({ circuitBreaker: { failureThreshold: 1, successThreshold: 1, resetTimeout } });
    const seen = transitions(o);
    let healthy = false;
    const handler: AgentHandler = async () => {
      if (!healthy) throw new Error('down');
      return 'ok';
    };
    o.registerAgent({ agentId: 'isolated', role: AgentRole.EXECUTOR, capabilities: ['x'], handler });
    // 'clock' trips after 'isolated' with the same resetTimeout: when it half-opens, the isolated one would have too.
    o.registerAgent({ agentId: 'clock', role: AgentRole.MONITOR, capabilities: ['tick'], handler });
    await o.submit({ type: 'x', capabilities: ['x'], retry: once }).result().catch(() => undefined);
    expect(o.getAgentState('isolated').circuitState).toBe(CircuitState.OPEN);
    o.isolateAgent('isolated');
    await o.submit({ type: 'tick', capabilities: ['tick'], retry: once }).result().catch(() => undefined);
    healthy = true;
    const waiting = o.submit({ type: 'x', capabilities: ['x'], retry: once });
    await circuitTo(o, 'clock', CircuitState.HALF_OPEN);
    await settle();
    expect(o.getAgentState('isolated')).toMatchObject({ circuitState: CircuitState.OPEN, isolated: true });
    expect(waiting.state).toBe('queued');
    o.resetCircuit('isolated');
    await expect(waiting.result()).resolves.toMatchObject({ result: 'ok', agentId: 'isolated' });
    expect(seen.filter((s) => s.startsWith('isolated'))).toEqual(['isolated: closed→open', 'isolated: open→closed']);
  });

  it('isolateAgent throws InvalidOptionsError when breakers are disabled; a failing agent then never opens', async () => {
    const o = await started({ circuitBreaker: { enabled: false, failureThreshold: 1 } });
    const seen = transitions(o);
    o.registerAgent({ agentId: 'svc', role: AgentRole.EXECUTOR, capabilities: ['x'], handler: failing });
    expect(() => o.isolateAgent('svc')).toThrow(InvalidOptionsError);
    expect(() => o.isolateAgent('svc')).toThrow(expect.objectContaining({ field: 'circuitBreaker.enabled' }));
    for (let i = 0; i < 3; i++) await o.submit({ type: 'x', capabilities: ['x'], retry: once }).result().catch(() => undefined);
    expect(o.getAgentState('svc')).toMatchObject({ circuitState: CircuitState.CLOSED, failed: 3 });
    expect(seen).toEqual([]);
  });

  it('isolateAgent and resetCircuit throw AgentNotFoundError for an unknown agent', async () => {
    const o = await started({});
    expect(() => o.isolateAgent('nobody')).toThrow(expect.objectContaining({ name: 'AgentNotFoundError', code: 'AGENT_NOT_FOUND' }));
    expect(() => o.resetCircuit('nobody')).toThrow(expect.objectContaining({ name: 'AgentNotFoundError' }));
  });
});
