import { describe, expect, it } from 'vitest';
import {
  AgentNotFoundError,
  AgentRole,
  DuplicateAgentError,
  DuplicateTaskError,
  InvalidAgentError,
  InvalidOptionsError,
  InvalidTaskError,
  OrchestratorError,
  createParallelOrchestrator,
  isOrchestratorError,
  type AgentSpec,
  type OrchestratorOptions,
  type TaskSpec,
} from '../src/index.js';
import { deferred, eventOf, useOrchestrators } from './helpers.js';

const make = useOrchestrators();

/** Runs `fn`, which must throw; returns what it threw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw, got none');
}

/** Bad input from untyped callers (plain JavaScript, JSON): the casts are the point. */
const options = (value: unknown) => value as OrchestratorOptions;
const task = (value: unknown) => value as TaskSpec;
const agent = (value: unknown) => value as AgentSpec;

const handler = async () => 'ok';

describe('invalid options', () => {
  it.each([
    ['workerPool.minWorkers', { workerPool: { minWorkers: 0 } }, /≥ 1/],
    ['workerPool.maxWorker', { workerPool: { maxWorker: 3 } }, /not a known option/],
    ['unknownTopLevel', { unknownTopLevel: true }, /not a known option/],
    ['taskQueue.defaultPriority', { taskQueue: { defaultPriority: 7 } }, /0\.\.4/],
    ['workerPool.assignmentStrategy', { workerPool: { assignmentStrategy: 'fastest' } }, /least-busy/],
    ['workerPool.minWorkers', { workerPool: { minWorkers: 5, maxWorkers: 2 } }, /maxWorkers/],
    ['taskQueue.maxSize', { taskQueue: { maxSize: 0 } }, /≥ 1/],
    ['taskQueue.retry.jitter', { taskQueue: { retry: { jitter: 2 } } }, /0\.\.1/],
    ['taskQueue.agingMs', { taskQueue: { agingMs: -1 } }, /≥ 0/],
  ])('%s → InvalidOptionsError naming the field', (field, input, detail) => {
    const error = thrown(() => createParallelOrchestrator(options(input)));
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error).toBeInstanceOf(OrchestratorError);
    expect(error).toMatchObject({ code: 'INVALID_OPTIONS', field });
    expect((error as Error).message).toContain(field);
    expect((error as Error).message).toMatch(detail);
  });

  it('workerPool.maxWorkers alone below the default minWorkers lowers minWorkers with it (as minWorkers alone raises maxWorkers)', async () => {
    const o = await make({ workerPool: { maxWorkers: 1 } });
    expect(o.getStats().workerPool).toMatchObject({ minWorkers: 1, maxWorkers: 1 });
  });

  it('accepts no options and the seed example options', () => {
    expect(() => createParallelOrchestrator()).not.toThrow();
    expect(() =>
      createParallelOrchestrator({
        workerPool: { minWorkers: 2, maxWorkers: 10, assignmentStrategy: 'least-busy' },
        taskQueue: { maxSize: 1000, defaultPriority: 2 },
        streaming: { enableDeltaCompression: true, snapshotInterval: 10 },
      }),
    ).not.toThrow();
  });
});

describe('invalid tasks', () => {
  it('priority 9 → InvalidTaskError naming priority and its range 0..4', async () => {
    const o = await make();
    const error = thrown(() => o.submit(task({ type: 't', priority: 9 })));
    expect(error).toBeInstanceOf(InvalidTaskError);
    expect(error).toMatchObject({ code: 'INVALID_TASK', field: 'priority' });
    expect((error as Error).message).toMatch(/priority/);
    expect((error as Error).message).toMatch(/0\.\.4/);
  });

  it.each([
    ['type', {}],
    ['type', { type: '' }],
    ['type', { type: 42 }],
    ['priority', { type: 't', priority: 1.5 }],
    ['priority', { type: 't', priority: 'HIGH' }],
    ['capabilities', { type: 't', capabilities: 'x' }],
    ['capabilities.1', { type: 't', capabilities: ['x', 3] }],
    ['timeout', { type: 't', timeout: -1 }],
    ['retry.maxAttempts', { type: 't', retry: { maxAttempts: 0 } }],
    ['preferredRole', { type: 't', preferredRole: 'boss' }],
    ['waitForAgent', { type: 't', waitForAgent: 'yes' }],
    ['id', { type: 't', id: '' }],
    ['colour', { type: 't', colour: 'red' }],
  ])('%s → InvalidTaskError naming the field', async (field, spec) => {
    const o = await make();
    const error = thrown(() => o.submit(task(spec)));
    expect(error).toBeInstanceOf(InvalidTaskError);
    expect(error).toMatchObject({ code: 'INVALID_TASK', field });
    expect((error as Error).message.startsWith(field)).toBe(true);
    // Nothing was queued or counted.
    expect(o.getStats()).toMatchObject({ totalSubmitted: 0, taskQueue: { size: 0 } });
  });

  it('rejects a non-object task', async () => {
    const o = await make();
    expect(thrown(() => o.submit(task(null)))).toBeInstanceOf(InvalidTaskError);
    expect(thrown(() => o.submit(task('run')))).toBeInstanceOf(InvalidTaskError);
  });

  it('submitAsync rejects invalid tasks the same way', async () => {
    const o = await make();
    await expect(o.submitAsync(task({ type: 't', priority: 9 }))).rejects.toMatchObject({ name: 'InvalidTaskError', field: 'priority' });
  });

  it('a duplicate id of a live task → DuplicateTaskError; the id is free again once the task ended', async () => {
    const o = await make();
    const gate = deferred();
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: [], handler: () => gate.promise });
    const first = o.submit({ id: 'same', type: 't' });
    const error = thrown(() => o.submit({ id: 'same', type: 't' }));
    expect(error).toBeInstanceOf(DuplicateTaskError);
    expect(error).toMatchObject({ code: 'DUPLICATE_TASK', taskId: 'same' });
    await eventOf(first, 'start');
    expect(thrown(() => o.submit({ id: 'same', type: 't' }))).toBeInstanceOf(DuplicateTaskError);
    gate.resolve();
    await first.result();
    expect((await o.submit({ id: 'same', type: 't' }).result()).taskId).toBe('same');
  });
});

describe('invalid agents', () => {
  const valid = { agentId: 'a', role: AgentRole.EXECUTOR, capabilities: ['x'], handler };

  it.each([
    ['role', { ...valid, role: 'boss' }, /AgentRole/],
    ['handler', { agentId: 'a', role: AgentRole.EXECUTOR, capabilities: ['x'] }, /handler|module/],
    ['handler', { ...valid, module: new URL('file:///nowhere.mjs') }, /exactly one/],
    ['handler', { ...valid, handler: 'not a function' }, /function/],
    ['maxConcurrent', { ...valid, maxConcurrent: 0 }, /≥ 1/],
    ['maxConcurrent', { ...valid, maxConcurrent: 1.5 }, /integer/],
    ['capabilities', { ...valid, capabilities: 'x' }, /array/],
    ['agentId', { ...valid, agentId: '' }, /non-empty/],
    ['rateLimit.perMs', { ...valid, rateLimit: { max: 1, perMs: 0 } }, /> 0/],
    ['priority', { ...valid, priority: 1 }, /not a known option/],
  ])('%s → InvalidAgentError naming the field', async (field, spec, detail) => {
    const o = await make();
    const error = thrown(() => o.registerAgent(agent(spec)));
    expect(error).toBeInstanceOf(InvalidAgentError);
    expect(error).toMatchObject({ code: 'INVALID_AGENT', field });
    expect((error as Error).message).toContain(field);
    expect((error as Error).message).toMatch(detail);
    expect(o.listAgents()).toEqual([]);
  });

  it('a module that does not exist → InvalidAgentError naming module', async () => {
    const o = await make();
    const error = thrown(() => o.registerAgent({ agentId: 'm', role: AgentRole.EXECUTOR, capabilities: [], module: '/no/such/agent-module.mjs' }));
    expect(error).toMatchObject({ name: 'InvalidAgentError', field: 'module' });
  });

  it('a duplicate agent id → DuplicateAgentError, and the first agent stays', async () => {
    const o = await make();
    o.registerAgent(valid);
    const error = thrown(() => o.registerAgent({ ...valid, role: AgentRole.OBSERVER }));
    expect(error).toBeInstanceOf(DuplicateAgentError);
    expect(error).toMatchObject({ code: 'DUPLICATE_AGENT', agentId: 'a' });
    expect(o.getAgentState('a').role).toBe(AgentRole.EXECUTOR);
  });

  it('unknown agent ids → AgentNotFoundError from unregisterAgent and getAgentState', async () => {
    const o = await make();
    for (const call of [() => o.unregisterAgent('ghost'), () => o.getAgentState('ghost')]) {
      const error = thrown(call);
      expect(error).toBeInstanceOf(AgentNotFoundError);
      expect(error).toMatchObject({ code: 'AGENT_NOT_FOUND', agentId: 'ghost' });
      expect(isOrchestratorError(error)).toBe(true);
    }
    expect(o.getAgent('ghost')).toBeUndefined();
    o.registerAgent(valid);
    o.unregisterAgent('a');
    expect(thrown(() => o.unregisterAgent('a'))).toBeInstanceOf(AgentNotFoundError);
  });
});
