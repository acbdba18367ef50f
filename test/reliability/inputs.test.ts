// Bad input corpus: every public function and every HTTP endpoint called with wrong types, missing
// fields, unknown keys, huge payloads, cyclic and very deep objects, `__proto__` / `constructor`
// keys, NaN, Infinity, negative and fractional numbers and unknown enum values. Each must give a
// typed error naming the field (an exported error class, or HTTP 4xx whose JSON body names it)
// and leave the orchestrator working: a normal task submitted afterwards completes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AgentRole,
  InvalidAgentError,
  InvalidArgumentError,
  InvalidOptionsError,
  InvalidTaskError,
  InvalidWorkflowError,
  OrchestratorError,
  StoreError,
  analyzeWorkflowImpact,
  cancelWorkflow,
  createCircuitBreaker,
  createParallelOrchestrator,
  createServer,
  defineAgent,
  defineWorkflow,
  getWorkflow,
  observeWorkflow,
  runWorkflow,
  withCircuitBreaker,
  workflowHistory,
  type ParallelOrchestrator,
  type PorchServer,
} from '../../dist/index.js';
import { DATABASE_URL, dropSchema, postgresAvailable, uniqueSchema } from '../pg-helpers.js';
import { http } from '../porch-helpers.js';

// Printed so a failing generated case can be replayed: FC_SEED=<seed> npx vitest run test/reliability/inputs.test.ts
const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);
const RUNS = 60;
console.log(`inputs.test.ts: fast-check seed ${SEED} (${RUNS} runs per property)`);

type ErrorClass = abstract new (...args: never[]) => Error;

/** The error `call` threw or rejected with; fails when it returned normally. */
async function failureOf(call: () => unknown): Promise<unknown> {
  let outcome: unknown;
  try {
    outcome = call();
  } catch (error) {
    return error;
  }
  if (outcome instanceof Promise) {
    try {
      await outcome;
    } catch (error) {
      return error;
    }
  }
  throw new Error('the call succeeded: the bad input was accepted');
}

async function expectTyped(call: () => unknown, type: ErrorClass, field: string | RegExp): Promise<void> {
  const error = await failureOf(call);
  expect(error, String(error)).toBeInstanceOf(type);
  expect(error).toBeInstanceOf(OrchestratorError);
  const named = (error as { field?: string; path?: string }).field ?? (error as { path?: string }).path;
  if (typeof field === 'string') expect(named, (error as Error).message).toBe(field);
  else expect(named, (error as Error).message).toMatch(field);
  // The message names the field too, for whoever reads only the message.
  expect((error as Error).message).toContain(named);
}

const cyclic = (): Record<string, unknown> => {
  const value: Record<string, unknown> = { a: 1 };
  value.self = value;
  return value;
};
const deep = (levels: number): Record<string, unknown> => {
  let value: Record<string, unknown> = {};
  for (let i = 0; i < levels; i++) value = { d: value };
  return value;
};
const protoKey = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ ...JSON.parse('{"__proto__": {"polluted": true}}'), ...extra }) as Record<string, unknown>;
const ECHO = { agentId: 'echo', role: AgentRole.EXECUTOR, capabilities: ['echo'], handler: async (task: { payload: unknown }) => task.payload };

/** The orchestrator still works: a normal task completes with its result. */
async function stillWorks(o: ParallelOrchestrator): Promise<void> {
  const { result } = await o.submit({ type: 'echo', capabilities: ['echo'], payload: { ok: 1 } }).result();
  expect(result).toEqual({ ok: 1 });
  expect(Object.prototype).not.toHaveProperty('polluted');
}

interface Case {
  name: string;
  call: (o: ParallelOrchestrator) => unknown;
  error: ErrorClass;
  field: string | RegExp;
}

/** Calls of a started memory orchestrator with the `echo` agent registered. */
const METHOD_CASES: Case[] = [
  // start() and shutdown() options
  { name: 'start(5)', call: (o) => o.start(5 as never), error: InvalidArgumentError, field: 'start' },
  { name: 'start(null)', call: (o) => o.start(null as never), error: InvalidArgumentError, field: 'start' },
  { name: 'start({ bogus })', call: (o) => o.start({ bogus: true } as never), error: InvalidArgumentError, field: 'start.bogus' },
  { name: "start({ recover: 'yes' })", call: (o) => o.start({ recover: 'yes' } as never), error: InvalidArgumentError, field: 'start.recover' },
  { name: 'start({ __proto__ })', call: (o) => o.start(protoKey() as never), error: InvalidArgumentError, field: 'start.__proto__' },
  { name: 'shutdown("now")', call: (o) => o.shutdown('now' as never), error: InvalidArgumentError, field: 'shutdown' },
  { name: 'shutdown({ timeout: NaN })', call: (o) => o.shutdown({ timeout: Number.NaN }), error: InvalidArgumentError, field: 'shutdown.timeout' },
  { name: 'shutdown({ timeout: -1 })', call: (o) => o.shutdown({ timeout: -1 }), error: InvalidArgumentError, field: 'shutdown.timeout' },
  { name: 'shutdown({ timeout: Infinity })', call: (o) => o.shutdown({ timeout: Infinity }), error: InvalidArgumentError, field: 'shutdown.timeout' },
  { name: 'shutdown({ graceful: 1 })', call: (o) => o.shutdown({ graceful: 1 } as never), error: InvalidArgumentError, field: 'shutdown.graceful' },
  { name: 'shutdown({ force })', call: (o) => o.shutdown({ force: true } as never), error: InvalidArgumentError, field: 'shutdown.force' },
  // agents
  { name: 'registerAgent(null)', call: (o) => o.registerAgent(null as never), error: InvalidAgentError, field: 'agent' },
  { name: 'registerAgent without agentId', call: (o) => o.registerAgent({ ...ECHO, agentId: undefined } as never), error: InvalidAgentError, field: 'agentId' },
  { name: 'registerAgent unknown role', call: (o) => o.registerAgent({ ...ECHO, agentId: 'r', role: 'king' } as never), error: InvalidAgentError, field: 'role' },
  { name: 'registerAgent maxConcurrent NaN', call: (o) => o.registerAgent({ ...ECHO, agentId: 'm', maxConcurrent: Number.NaN }), error: InvalidAgentError, field: 'maxConcurrent' },
  { name: 'registerAgent maxConcurrent 1.5', call: (o) => o.registerAgent({ ...ECHO, agentId: 'm', maxConcurrent: 1.5 }), error: InvalidAgentError, field: 'maxConcurrent' },
  { name: 'registerAgent maxConcurrent -1', call: (o) => o.registerAgent({ ...ECHO, agentId: 'm', maxConcurrent: -1 }), error: InvalidAgentError, field: 'maxConcurrent' },
  { name: 'registerAgent capabilities "x"', call: (o) => o.registerAgent({ ...ECHO, agentId: 'c', capabilities: 'x' } as never), error: InvalidAgentError, field: 'capabilities' },
  { name: 'registerAgent handler 5', call: (o) => o.registerAgent({ ...ECHO, agentId: 'h', handler: 5 } as never), error: InvalidAgentError, field: 'handler' },
  { name: 'registerAgent unknown key', call: (o) => o.registerAgent({ ...ECHO, agentId: 'u', bogus: 1 } as never), error: InvalidAgentError, field: 'bogus' },
  { name: 'registerAgent constructor key', call: (o) => o.registerAgent({ ...ECHO, agentId: 'k', constructor: 1 } as never), error: InvalidAgentError, field: 'constructor' },
  { name: 'registerAgent __proto__ key', call: (o) => o.registerAgent(protoKey({ ...ECHO, agentId: 'p' }) as never), error: InvalidAgentError, field: '__proto__' },
  { name: 'registerAgent rateLimit negative', call: (o) => o.registerAgent({ ...ECHO, agentId: 'l', rateLimit: { tokens: -1, intervalMs: 10 } } as never), error: InvalidAgentError, field: /^rateLimit/ },
  { name: 'unregisterAgent(5)', call: (o) => o.unregisterAgent(5 as never), error: InvalidArgumentError, field: 'agentId' },
  { name: 'getAgent(5)', call: (o) => o.getAgent(5 as never), error: InvalidArgumentError, field: 'agentId' },
  { name: 'getAgentState({})', call: (o) => o.getAgentState({} as never), error: InvalidArgumentError, field: 'agentId' },
  { name: 'resetCircuit(null)', call: (o) => o.resetCircuit(null as never), error: InvalidArgumentError, field: 'agentId' },
  { name: 'isolateAgent("")', call: (o) => o.isolateAgent(''), error: InvalidArgumentError, field: 'agentId' },
  // submit
  { name: 'submit(null)', call: (o) => o.submit(null as never), error: InvalidTaskError, field: 'task' },
  { name: 'submit without type', call: (o) => o.submit({ capabilities: ['echo'] } as never), error: InvalidTaskError, field: 'type' },
  { name: 'submit type 5', call: (o) => o.submit({ type: 5 } as never), error: InvalidTaskError, field: 'type' },
  { name: 'submit priority NaN', call: (o) => o.submit({ type: 't', priority: Number.NaN as never }), error: InvalidTaskError, field: 'priority' },
  { name: 'submit priority 1.5', call: (o) => o.submit({ type: 't', priority: 1.5 as never }), error: InvalidTaskError, field: 'priority' },
  { name: 'submit priority 9', call: (o) => o.submit({ type: 't', priority: 9 as never }), error: InvalidTaskError, field: 'priority' },
  { name: "submit priority 'HIGH'", call: (o) => o.submit({ type: 't', priority: 'HIGH' } as never), error: InvalidTaskError, field: 'priority' },
  { name: 'submit timeout -1', call: (o) => o.submit({ type: 't', timeout: -1 }), error: InvalidTaskError, field: 'timeout' },
  { name: 'submit timeout Infinity', call: (o) => o.submit({ type: 't', timeout: Infinity }), error: InvalidTaskError, field: 'timeout' },
  { name: 'submit retry.maxAttempts 0', call: (o) => o.submit({ type: 't', retry: { maxAttempts: 0 } }), error: InvalidTaskError, field: 'retry.maxAttempts' },
  { name: 'submit retry.jitter 2', call: (o) => o.submit({ type: 't', retry: { jitter: 2 } }), error: InvalidTaskError, field: 'retry.jitter' },
  { name: 'submit retry null', call: (o) => o.submit({ type: 't', retry: null } as never), error: InvalidTaskError, field: 'retry' },
  { name: 'submit capabilities [1]', call: (o) => o.submit({ type: 't', capabilities: [1] } as never), error: InvalidTaskError, field: /^capabilities/ },
  { name: 'submit id ""', call: (o) => o.submit({ type: 't', id: '' }), error: InvalidTaskError, field: 'id' },
  { name: 'submit unknown key', call: (o) => o.submit({ type: 't', bogus: 1 } as never), error: InvalidTaskError, field: 'bogus' },
  { name: 'submit __proto__ key', call: (o) => o.submit(protoKey({ type: 't' }) as never), error: InvalidTaskError, field: '__proto__' },
  { name: 'submit constructor key', call: (o) => o.submit({ type: 't', constructor: 'x' } as never), error: InvalidTaskError, field: 'constructor' },
  { name: 'submit preemptible "yes"', call: (o) => o.submit({ type: 't', preemptible: 'yes' } as never), error: InvalidTaskError, field: 'preemptible' },
  { name: 'submitAsync(null)', call: (o) => o.submitAsync(null as never), error: InvalidTaskError, field: 'task' },
  { name: 'submitAsync options null', call: (o) => o.submitAsync({ type: 'echo', capabilities: ['echo'] }, null as never), error: InvalidArgumentError, field: 'options' },
  { name: 'submitAsync signal 5', call: (o) => o.submitAsync({ type: 'echo', capabilities: ['echo'] }, { signal: 5 } as never), error: InvalidArgumentError, field: 'options.signal' },
  { name: 'submitAsync unknown option', call: (o) => o.submitAsync({ type: 'echo', capabilities: ['echo'] }, { timeout: 5 } as never), error: InvalidArgumentError, field: 'options.timeout' },
  // ids
  { name: 'cancel(5)', call: (o) => o.cancel(5 as never), error: InvalidArgumentError, field: 'taskId' },
  { name: 'cancel(id, 5)', call: (o) => o.cancel('x', 5 as never), error: InvalidArgumentError, field: 'reason' },
  { name: 'checkpoint(5, {})', call: (o) => o.checkpoint(5 as never, {}), error: InvalidArgumentError, field: 'taskId' },
  { name: 'getTask(5)', call: (o) => o.getTask(5 as never), error: InvalidArgumentError, field: 'taskId' },
  { name: 'getTask()', call: (o) => (o.getTask as (id?: string) => unknown)(), error: InvalidArgumentError, field: 'taskId' },
  { name: 'observe(5)', call: (o) => o.observe(5 as never), error: InvalidArgumentError, field: 'taskId' },
  { name: 'resumeFromCheckpoint({})', call: (o) => o.resumeFromCheckpoint({} as never), error: InvalidArgumentError, field: 'taskId' },
  { name: 'findTask(NaN)', call: (o) => o.findTask(Number.NaN as never), error: InvalidArgumentError, field: 'taskId' },
  { name: 'history([])', call: (o) => o.history([] as never), error: InvalidArgumentError, field: 'taskId' },
  { name: 'requeueDeadLetter(5)', call: (o) => o.requeueDeadLetter(5 as never), error: InvalidArgumentError, field: 'taskId' },
  { name: 'requeueDeadLetter unknown option', call: (o) => o.requeueDeadLetter('x', { bogus: true } as never), error: InvalidArgumentError, field: 'requeue.bogus' },
  { name: 'requeueDeadLetter options null', call: (o) => o.requeueDeadLetter('x', null as never), error: InvalidArgumentError, field: 'requeue' },
  { name: 'requeueDeadLetter waitForAgent 1', call: (o) => o.requeueDeadLetter('x', { waitForAgent: 1 } as never), error: InvalidArgumentError, field: 'requeue.waitForAgent' },
  // queries
  { name: 'listTasks(5)', call: (o) => o.listTasks(5 as never), error: InvalidArgumentError, field: 'query' },
  { name: 'listTasks unknown status', call: (o) => o.listTasks({ status: 'sleeping' } as never), error: InvalidArgumentError, field: 'query.status' },
  { name: 'listTasks limit 0', call: (o) => o.listTasks({ limit: 0 }), error: InvalidArgumentError, field: 'query.limit' },
  { name: 'listTasks limit 1.5', call: (o) => o.listTasks({ limit: 1.5 }), error: InvalidArgumentError, field: 'query.limit' },
  { name: 'listTasks unknown key', call: (o) => o.listTasks({ bogus: 1 } as never), error: InvalidArgumentError, field: 'query.bogus' },
  { name: 'audit since -1', call: (o) => o.audit({ since: -1 }), error: InvalidArgumentError, field: 'query.since' },
  { name: 'audit limit Infinity', call: (o) => o.audit({ limit: Infinity }), error: InvalidArgumentError, field: 'query.limit' },
  { name: 'audit unknown type', call: (o) => o.audit({ type: 'exploded' } as never), error: InvalidArgumentError, field: 'query.type' },
  { name: 'audit __proto__ key', call: (o) => o.audit(protoKey() as never), error: InvalidArgumentError, field: 'query.__proto__' },
  // streams and listeners
  { name: 'events(null)', call: (o) => o.events(null as never), error: InvalidArgumentError, field: 'options' },
  { name: 'events fromSequence -1', call: (o) => o.events({ fromSequence: -1 }), error: InvalidArgumentError, field: 'options.fromSequence' },
  { name: 'events fromSequence NaN', call: (o) => o.events({ fromSequence: Number.NaN }), error: InvalidArgumentError, field: 'options.fromSequence' },
  { name: 'events signal {}', call: (o) => o.events({ signal: {} } as never), error: InvalidArgumentError, field: 'options.signal' },
  { name: 'events unknown key', call: (o) => o.events({ from: 1 } as never), error: InvalidArgumentError, field: 'options.from' },
  { name: 'on(event, 5)', call: (o) => o.on('task:completed', 5 as never), error: InvalidArgumentError, field: 'listener' },
  { name: 'once(event, null)', call: (o) => o.once('task:failed', null as never), error: InvalidArgumentError, field: 'listener' },
  { name: 'on(5, listener)', call: (o) => o.on(5 as never, () => {}), error: InvalidArgumentError, field: 'event' },
  // subscribe on a task's observable
  {
    name: 'observable.subscribe fromSequence -1',
    call: (o) => o.submit({ type: 'echo', capabilities: ['echo'] }).subscribe(() => {}, { fromSequence: -1 }),
    error: InvalidArgumentError,
    field: /fromSequence/,
  },
  { name: 'observable.subscribe(5)', call: (o) => o.submit({ type: 'echo', capabilities: ['echo'] }).subscribe(5 as never), error: InvalidArgumentError, field: /listener|handler|callback/ },
  // workflows
  { name: 'runWorkflow options unknown key', call: (o) => runWorkflow(o, WORKFLOW, {}, { bogus: 1 } as never), error: InvalidArgumentError, field: 'options.bogus' },
  { name: 'runWorkflow priority 1.5', call: (o) => runWorkflow(o, WORKFLOW, {}, { priority: 1.5 } as never), error: InvalidArgumentError, field: 'priority' },
  { name: 'getWorkflow(o, 5)', call: (o) => getWorkflow(o, 5 as never), error: InvalidArgumentError, field: /^runId$/ },
  { name: 'workflowHistory(o, null)', call: (o) => workflowHistory(o, null as never), error: InvalidArgumentError, field: /^runId$/ },
  { name: 'observeWorkflow(o, {})', call: (o) => observeWorkflow(o, {} as never), error: InvalidArgumentError, field: /^runId$/ },
  { name: 'cancelWorkflow(o, 5)', call: (o) => cancelWorkflow(o, 5 as never), error: InvalidArgumentError, field: /^runId$/ },
];

const WORKFLOW = defineWorkflow({ id: 'inputs-wf', steps: { one: { capabilities: ['echo'] } } });

/** Calls needing no orchestrator: factories and helpers. */
const STANDALONE_CASES: { name: string; call: () => unknown; error: ErrorClass; field: string | RegExp }[] = [
  { name: 'createParallelOrchestrator(5)', call: () => createParallelOrchestrator(5 as never), error: InvalidOptionsError, field: 'options' },
  { name: '{ preemption: null }', call: () => createParallelOrchestrator({ preemption: null } as never), error: InvalidOptionsError, field: 'preemption' },
  { name: '{ workerPool: null }', call: () => createParallelOrchestrator({ workerPool: null } as never), error: InvalidOptionsError, field: 'workerPool' },
  { name: '{ taskQueue: { retry: null } }', call: () => createParallelOrchestrator({ taskQueue: { retry: null } } as never), error: InvalidOptionsError, field: 'taskQueue.retry' },
  { name: '{ store: { type: "redis" } }', call: () => createParallelOrchestrator({ store: { type: 'redis' } } as never), error: InvalidOptionsError, field: 'store.type' },
  { name: '{ store: sqlite without path }', call: () => createParallelOrchestrator({ store: { type: 'sqlite' } } as never), error: InvalidOptionsError, field: 'store.path' },
  { name: '{ workerPool.assignmentStrategy: "fastest" }', call: () => createParallelOrchestrator({ workerPool: { assignmentStrategy: 'fastest' } } as never), error: InvalidOptionsError, field: 'workerPool.assignmentStrategy' },
  { name: '{ __proto__ }', call: () => createParallelOrchestrator(protoKey() as never), error: InvalidOptionsError, field: '__proto__' },
  { name: '{ constructor }', call: () => createParallelOrchestrator({ constructor: 1 } as never), error: InvalidOptionsError, field: 'constructor' },
  { name: '{ logger: 5 }', call: () => createParallelOrchestrator({ logger: 5 } as never), error: InvalidOptionsError, field: 'logger' },
  { name: 'minWorkers > maxWorkers', call: () => createParallelOrchestrator({ workerPool: { minWorkers: 4, maxWorkers: 2 } }), error: InvalidOptionsError, field: 'workerPool.minWorkers' },
  { name: 'defineAgent(null)', call: () => defineAgent(null as never), error: InvalidAgentError, field: 'agent' },
  { name: 'defineAgent unknown role', call: () => defineAgent({ ...ECHO, role: 'king' } as never), error: InvalidAgentError, field: 'role' },
  { name: 'createCircuitBreaker(null)', call: () => createCircuitBreaker(null as never), error: InvalidOptionsError, field: 'circuitBreaker' },
  { name: 'createCircuitBreaker unknown key', call: () => createCircuitBreaker({ bogus: 1 } as never), error: InvalidOptionsError, field: 'circuitBreaker.bogus' },
  { name: 'createCircuitBreaker failureThreshold 0.5', call: () => createCircuitBreaker({ failureThreshold: 0.5 }), error: InvalidOptionsError, field: 'circuitBreaker.failureThreshold' },
  { name: 'withCircuitBreaker(5)', call: () => withCircuitBreaker(5 as never), error: InvalidArgumentError, field: 'fn' },
  { name: 'defineWorkflow(null)', call: () => defineWorkflow(null as never), error: InvalidWorkflowError, field: /.*/ },
  { name: 'defineWorkflow unknown step key', call: () => defineWorkflow({ id: 'w', steps: { a: { run: () => 1, bogus: 1 } } } as never), error: InvalidWorkflowError, field: /steps\.a\.bogus/ },
  { name: 'defineWorkflow __proto__ step', call: () => defineWorkflow({ id: 'w', steps: protoKey({ a: { run: () => 1 } }) } as never), error: InvalidWorkflowError, field: /__proto__/ },
  { name: 'analyzeWorkflowImpact(null)', call: () => analyzeWorkflowImpact(null as never), error: OrchestratorError, field: /.+/ },
];

describe('bad input: methods of a running orchestrator (memory store)', () => {
  let o: ParallelOrchestrator;
  beforeAll(async () => {
    o = createParallelOrchestrator({ circuitBreaker: { enabled: false } });
    await o.start();
    o.registerAgent(ECHO);
  });
  afterAll(() => o.shutdown({ graceful: false }));

  it.each(METHOD_CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await expectTyped(() => c.call(o), c.error, c.field);
    await stillWorks(o);
  });

  it('a payload or checkpoint JSON cannot carry: a cyclic or very deep checkpoint is refused naming state', async () => {
    const parked = o.submit({ type: 'parked', capabilities: ['nobody'], waitForAgent: true });
    await expectTyped(() => o.checkpoint(parked.taskId, cyclic()), InvalidArgumentError, 'state');
    await expectTyped(() => o.checkpoint(parked.taskId, deep(5_000)), InvalidArgumentError, 'state');
    // A huge but plain checkpoint is fine on the memory store, and the task is still there.
    await o.checkpoint(parked.taskId, { blob: 'x'.repeat(5_000_000) });
    expect(o.resumeFromCheckpoint<{ blob: string }>(parked.taskId)?.blob).toHaveLength(5_000_000);
    expect(await o.cancel(parked.taskId)).toBe(true);
    await stillWorks(o);
  });

  it('generated: task specs with one bad field are refused naming that field', async () => {
    const bad = fc.oneof(
      fc.constantFrom(Number.NaN, Infinity, -Infinity, -1, 0.5, -0.5, 2 ** 53, null, 'x', true, [], {}),
      fc.double({ noNaN: false }).filter((n) => !Number.isInteger(n)),
    );
    const fields: Record<string, (value: unknown) => Record<string, unknown>> = {
      priority: (v) => ({ priority: v }),
      timeout: (v) => ({ timeout: v }),
      'retry.maxAttempts': (v) => ({ retry: { maxAttempts: v } }),
      'retry.initialDelay': (v) => ({ retry: { initialDelay: v } }),
      'retry.factor': (v) => ({ retry: { factor: v } }),
    };
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...Object.keys(fields)), bad, async (field, value) => {
        // Values that are valid for this field are not bad input.
        fc.pre(!validFor(field, value));
        await expectTyped(() => o.submit({ type: 't', capabilities: ['echo'], ...fields[field]!(value) } as never), InvalidTaskError, field);
      }),
      { seed: SEED, numRuns: RUNS },
    );
    await stillWorks(o);
  });

  it('generated: unknown keys anywhere in a task spec are refused naming the key', async () => {
    const known = new Set(['id', 'type', 'priority', 'capabilities', 'payload', 'timeout', 'retry', 'metadata', 'waitForAgent', 'preemptible']);
    await fc.assert(
      fc.asyncProperty(
        fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !known.has(k)),
        async (key) => {
          const spec = { type: 't', capabilities: ['echo'] } as Record<string, unknown>;
          Object.defineProperty(spec, key, { value: 1, enumerable: true, configurable: true, writable: true });
          await expectTyped(() => o.submit(spec as never), InvalidTaskError, key);
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
    await stillWorks(o);
  });

  it('generated: option objects with one bad number are refused naming the option', async () => {
    const paths = [
      'workerPool.minWorkers',
      'workerPool.maxWorkers',
      'workerPool.healthCheckInterval',
      'taskQueue.maxSize',
      'taskQueue.defaultTimeout',
      'taskQueue.defaultPriority',
      'preemption.minGap',
      'preemption.graceMs',
      'streaming.snapshotInterval',
      'streaming.backpressureThreshold',
      'circuitBreaker.failureThreshold',
      'circuitBreaker.resetTimeout',
      'audit.maxEvents',
    ];
    await fc.assert(
      fc.property(fc.constantFrom(...paths), fc.constantFrom<unknown>(Number.NaN, -Infinity, -1, -0.5, 0.5, 1.5, '1', null, {}, []), (path, value) => {
        const [section, key] = path.split('.') as [string, string];
        // Durations may be fractional.
        fc.pre(!(MS_OPTIONS.has(path) && typeof value === 'number' && value >= 0));
        let error: unknown;
        try {
          createParallelOrchestrator({ [section]: { [key]: value } } as never);
        } catch (caught) {
          error = caught;
        }
        expect(error, `${path} = ${String(value)}`).toBeInstanceOf(InvalidOptionsError);
        expect((error as InvalidOptionsError).field).toBe(path);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

const MS_OPTIONS = new Set(['workerPool.healthCheckInterval', 'taskQueue.defaultTimeout', 'preemption.graceMs', 'circuitBreaker.resetTimeout']);

/** Whether `value` is a valid value of a generated task-spec field (then it is not a bad input). */
function validFor(field: string, value: unknown): boolean {
  if (typeof value !== 'number' || !Number.isFinite(value)) return false;
  if (field === 'priority') return Number.isInteger(value) && value >= 0 && value <= 4;
  if (field === 'retry.maxAttempts') return Number.isInteger(value) && value >= 1;
  if (field === 'retry.factor') return value >= 1;
  return value >= 0;
}

describe('bad input: factories and helpers', () => {
  it.each(STANDALONE_CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await expectTyped(c.call, c.error, c.field);
  });
});

describe('bad input: durable stores', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'inputs-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('SQLite: deadLetters(), history() and audit() before start() reject with StoreError; payloads JSON cannot carry are refused naming the field', async () => {
    const o = createParallelOrchestrator({ store: { type: 'sqlite', path: join(dir, 'inputs.db') }, circuitBreaker: { enabled: false } });
    await expectTyped(() => o.deadLetters(), StoreError, /inputs\.db/);
    await expectTyped(() => o.history('x'), StoreError, /inputs\.db/);
    await expectTyped(() => o.audit(), StoreError, /inputs\.db/);
    await o.start();
    o.registerAgent(ECHO);
    expect(await o.deadLetters()).toEqual([]);
    const park = { type: 'parked', capabilities: ['nobody'], waitForAgent: true };
    await expectTyped(() => o.submit({ ...park, payload: cyclic() }), InvalidTaskError, 'payload');
    await expectTyped(() => o.submit({ ...park, payload: deep(100_000) }), InvalidTaskError, 'payload');
    await expectTyped(() => o.submit({ ...park, payload: 10n }), InvalidTaskError, 'payload');
    await expectTyped(() => o.submit({ ...park, metadata: cyclic() }), InvalidTaskError, 'metadata');
    await expectTyped(() => o.submitAsync({ ...park, payload: cyclic() }), InvalidTaskError, 'payload');
    await stillWorks(o);
    await o.shutdown({ graceful: false });
  });

  it('PostgreSQL: deadLetters() before start() rejects with StoreError, as on SQLite', async (ctx) => {
    if (!(await postgresAvailable())) return ctx.skip();
    const schema = uniqueSchema('po_inputs');
    const o = createParallelOrchestrator({ store: { type: 'postgres', connectionString: DATABASE_URL, schema }, circuitBreaker: { enabled: false } });
    try {
      await expectTyped(() => o.deadLetters(), StoreError, new RegExp(schema));
      await expectTyped(() => o.history('x'), StoreError, new RegExp(schema));
      await o.start();
      o.registerAgent(ECHO);
      expect(await o.deadLetters()).toEqual([]);
      await expectTyped(() => o.submit({ type: 'parked', capabilities: ['nobody'], waitForAgent: true, payload: cyclic() }), InvalidTaskError, 'payload');
      await stillWorks(o);
    } finally {
      await o.shutdown({ graceful: false });
      await dropSchema(schema);
    }
  });
});

interface HttpCase {
  name: string;
  method: 'GET' | 'POST';
  path: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  status: number;
  /** The field the body's error names; undefined: none expected (a body-level error). */
  field?: string | RegExp;
  code?: string;
}

const JSON_TYPE = { 'content-type': 'application/json' };
const post = (path: string, body: unknown, extra: Partial<HttpCase> & { name: string; status: number }): HttpCase => ({
  method: 'POST',
  path,
  body: typeof body === 'string' ? body : JSON.stringify(body),
  headers: JSON_TYPE,
  ...extra,
});

const HTTP_CASES: HttpCase[] = [
  // GET /api/tasks
  { name: 'tasks: unknown status', method: 'GET', path: '/api/tasks?status=sleeping', status: 400, field: 'status' },
  { name: 'tasks: limit 0', method: 'GET', path: '/api/tasks?limit=0', status: 400, field: 'limit' },
  { name: 'tasks: limit -1', method: 'GET', path: '/api/tasks?limit=-1', status: 400, field: 'limit' },
  { name: 'tasks: limit 1.5', method: 'GET', path: '/api/tasks?limit=1.5', status: 400, field: 'limit' },
  { name: 'tasks: limit NaN', method: 'GET', path: '/api/tasks?limit=NaN', status: 400, field: 'limit' },
  { name: 'tasks: limit Infinity', method: 'GET', path: '/api/tasks?limit=Infinity', status: 400, field: 'limit' },
  { name: 'tasks: limit twice', method: 'GET', path: '/api/tasks?limit=1&limit=2', status: 400, field: 'limit' },
  { name: 'tasks: unknown parameter', method: 'GET', path: '/api/tasks?bogus=1', status: 400, field: 'bogus' },
  { name: 'tasks: __proto__ parameter', method: 'GET', path: '/api/tasks?__proto__=1', status: 400, field: '__proto__' },
  { name: 'stats: unknown parameter', method: 'GET', path: '/api/stats?x=1', status: 400, field: 'x' },
  { name: 'agents: unknown parameter', method: 'GET', path: '/api/agents?constructor=1', status: 400, field: 'constructor' },
  { name: 'dlq: unknown parameter', method: 'GET', path: '/api/dlq?x=1', status: 400, field: 'x' },
  { name: 'metrics: unknown parameter', method: 'GET', path: '/metrics?x=1', status: 400, field: 'x' },
  // POST /api/tasks
  post('/api/tasks', { capabilities: ['echo'] }, { name: 'submit: no type', status: 400, field: 'type' }),
  post('/api/tasks', { type: 5 }, { name: 'submit: type 5', status: 400, field: 'type' }),
  post('/api/tasks', { type: 't', priority: 'URGENT' }, { name: 'submit: unknown priority name', status: 400, field: 'priority' }),
  post('/api/tasks', { type: 't', priority: 1.5 }, { name: 'submit: priority 1.5', status: 400, field: 'priority' }),
  post('/api/tasks', { type: 't', priority: -1 }, { name: 'submit: priority -1', status: 400, field: 'priority' }),
  post('/api/tasks', { type: 't', timeout: -5 }, { name: 'submit: timeout -5', status: 400, field: 'timeout' }),
  post('/api/tasks', '{"type":"t","timeout":1e400}', { name: 'submit: timeout 1e400 (Infinity)', status: 400, field: 'timeout' }),
  post('/api/tasks', { type: 't', retry: { maxAttempts: 0.5 } }, { name: 'submit: retry.maxAttempts 0.5', status: 400, field: 'retry.maxAttempts' }),
  post('/api/tasks', { type: 't', bogus: 1 }, { name: 'submit: unknown key', status: 400, field: 'bogus' }),
  post('/api/tasks', '{"type":"t","__proto__":{"polluted":true}}', { name: 'submit: __proto__ key', status: 400, field: '__proto__' }),
  post('/api/tasks', { type: 't', constructor: { prototype: 1 } }, { name: 'submit: constructor key', status: 400, field: 'constructor' }),
  post('/api/tasks', [{ type: 't' }], { name: 'submit: an array', status: 400, field: /^(task|body)$/ }),
  post('/api/tasks', 'null', { name: 'submit: null', status: 400, field: /^(task|body)$/ }),
  post('/api/tasks', '"t"', { name: 'submit: a string', status: 400, field: /^(task|body)$/ }),
  post('/api/tasks', '{"type":', { name: 'submit: broken JSON', status: 400, code: 'INVALID_JSON' }),
  { name: 'submit: huge body', method: 'POST', path: '/api/tasks', body: JSON.stringify({ type: 't', payload: 'x'.repeat(2_000_000) }), headers: JSON_TYPE, status: 413, code: 'PAYLOAD_TOO_LARGE' },
  { name: 'submit: not JSON', method: 'POST', path: '/api/tasks', body: 'type=t', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415 },
  post('/api/tasks?type=t', { type: 't' }, { name: 'submit: query parameter', status: 400, field: 'type' }),
  // cancel, requeue
  post('/api/tasks/x/cancel', { reason: 5 }, { name: 'cancel: reason 5', status: 400, field: 'reason' }),
  post('/api/tasks/x/cancel', { why: 'x' }, { name: 'cancel: unknown key', status: 400, field: 'why' }),
  post('/api/tasks/x/cancel', [], { name: 'cancel: an array', status: 400 }),
  post('/api/dlq/x/requeue', { bogus: 1 }, { name: 'requeue: unknown key', status: 400, field: 'requeue.bogus' }),
  post('/api/dlq/x/requeue', { waitForAgent: 'yes' }, { name: 'requeue: waitForAgent "yes"', status: 400, field: 'requeue.waitForAgent' }),
  post('/api/dlq/x/requeue', [], { name: 'requeue: an array', status: 400, field: 'requeue' }),
  post('/api/dlq/x/requeue', {}, { name: 'requeue: not a dead letter', status: 404 }),
  // ids in paths
  { name: 'task: id of 300 characters', method: 'GET', path: `/api/tasks/${'a'.repeat(300)}`, status: 400 },
  { name: 'task: bad percent-encoding', method: 'GET', path: '/api/tasks/%E0%A4%A', status: 400 },
  { name: 'task: unknown id', method: 'GET', path: '/api/tasks/none', status: 404 },
  // audit
  { name: 'audit: since -1', method: 'GET', path: '/api/audit?since=-1', status: 400, field: 'since' },
  { name: 'audit: since 1e3', method: 'GET', path: '/api/audit?since=1e3', status: 400, field: 'since' },
  { name: 'audit: limit 10001', method: 'GET', path: '/api/audit?limit=10001', status: 400, field: 'limit' },
  { name: 'audit: unknown type', method: 'GET', path: '/api/audit?type=exploded', status: 400, field: 'type' },
  // event streams
  { name: 'events: lastEventId -1', method: 'GET', path: '/api/events?lastEventId=-1', status: 400, field: 'lastEventId' },
  { name: 'events: stats 1', method: 'GET', path: '/api/events?stats=1', status: 400, field: 'stats' },
  { name: 'task events: lastEventId x', method: 'GET', path: '/api/tasks/x/events?lastEventId=x', status: 400, field: 'lastEventId' },
  // methods and paths
  { name: 'unknown path', method: 'GET', path: '/api/nothing', status: 404 },
  { name: 'wrong method', method: 'POST', path: '/api/stats', body: '{}', headers: JSON_TYPE, status: 405 },
];

describe('bad input: HTTP endpoints', () => {
  let o: ParallelOrchestrator;
  let server: PorchServer;
  let url = '';
  beforeAll(async () => {
    o = createParallelOrchestrator({ circuitBreaker: { enabled: false } });
    await o.start();
    o.registerAgent(ECHO);
    server = createServer(o, { bodyLimit: 1_000_000 });
    url = await server.listen({ port: 0 });
  });
  afterAll(async () => {
    await server.close();
    await o.shutdown({ graceful: false });
  });

  /** A normal task submitted over HTTP completes. */
  async function httpStillWorks(): Promise<void> {
    const reply = await http(url, 'POST', '/api/tasks', { headers: JSON_TYPE, body: JSON.stringify({ type: 'echo', capabilities: ['echo'], payload: 'ok' }) });
    expect(reply.status, reply.text).toBe(201);
    const { taskId } = JSON.parse(reply.text) as { taskId: string };
    const observable = o.observe(taskId);
    if (observable !== undefined) await observable.result();
    const details = JSON.parse((await http(url, 'GET', `/api/tasks/${taskId}`)).text) as { status: string; result: unknown };
    expect(details).toMatchObject({ status: 'completed', result: 'ok' });
  }

  it.each(HTTP_CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const reply = await http(url, c.method, c.path, { headers: c.headers, body: c.body });
    expect(reply.status, reply.text).toBe(c.status);
    expect(reply.headers['content-type']).toMatch(/^application\/json/);
    const body = JSON.parse(reply.text) as { error: { code: string; message: string; field?: string } };
    expect(Object.keys(body.error).sort()).toEqual(body.error.field === undefined ? ['code', 'message'] : ['code', 'field', 'message']);
    if (c.code !== undefined) expect(body.error.code).toBe(c.code);
    if (c.field !== undefined) {
      if (typeof c.field === 'string') expect(body.error.field, reply.text).toBe(c.field);
      else expect(body.error.field, reply.text).toMatch(c.field);
    }
    await httpStillWorks();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('a 100,000-deep payload (memory store: kept as it is) runs, and is served back cut short instead of a 500', async () => {
    const body = `{"type":"echo","capabilities":["echo"],"payload":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const reply = await http(url, 'POST', '/api/tasks', { headers: JSON_TYPE, body });
    expect(reply.status, reply.text).toBe(201);
    const { taskId } = JSON.parse(reply.text) as { taskId: string };
    await o.observe(taskId)?.result();
    const details = await http(url, 'GET', `/api/tasks/${taskId}`);
    expect(details.status).toBe(200);
    expect(JSON.parse(details.text)).toMatchObject({ status: 'completed' });
    await httpStillWorks();
  });

  it('GET /api/audit?type=preempted is a known type (the server had its own list without it)', async () => {
    const reply = await http(url, 'GET', '/api/audit?type=preempted');
    expect(reply.status, reply.text).toBe(200);
    expect(JSON.parse(reply.text)).toEqual([]);
  });

  it('generated: bodies of POST /api/tasks with one bad field get 400 naming it', async () => {
    const bad = fc.constantFrom<unknown>(-1, 0.5, 1e300, 'x', true, null, [], {});
    const fields = ['priority', 'timeout', 'retry.maxAttempts', 'retry.jitter', 'waitForAgent', 'capabilities', 'id'];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...fields), bad, async (field, value) => {
        const spec: Record<string, unknown> = { type: 't', capabilities: ['echo'] };
        const [top, inner] = field.split('.') as [string, string | undefined];
        spec[top] = inner === undefined ? value : { [inner]: value };
        fc.pre(!(field === 'priority' && value === 'x') && !validForHttp(field, value));
        const reply = await http(url, 'POST', '/api/tasks', { headers: JSON_TYPE, body: JSON.stringify(spec) });
        expect(reply.status, `${field}=${JSON.stringify(value)}: ${reply.text}`).toBe(400);
        expect((JSON.parse(reply.text) as { error: { field: string } }).error.field).toMatch(new RegExp(`^${field.replace('.', '\\.')}`));
      }),
      { seed: SEED, numRuns: RUNS },
    );
    await httpStillWorks();
  });
});

function validForHttp(field: string, value: unknown): boolean {
  if (field === 'timeout' || field === 'retry.jitter') return typeof value === 'number' && value >= 0 && (field === 'timeout' || value <= 1) && Number.isFinite(value);
  if (field === 'waitForAgent') return typeof value === 'boolean';
  if (field === 'capabilities') return Array.isArray(value);
  if (field === 'id') return typeof value === 'string';
  return false;
}
