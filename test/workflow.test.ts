import { describe, expect, it } from 'vitest';
import {
  AgentRole,
  CompensationTimeoutError,
  DependencyCycleError,
  DuplicateStepError,
  DuplicateWorkflowRunError,
  InvalidOptionsError,
  InvalidWorkflowError,
  TaskPriority,
  UnknownDependencyError,
  cancelWorkflow,
  defineWorkflow,
  getWorkflow,
  observeWorkflow,
  registerWorkflows,
  runWorkflow,
  workflowHistory,
  type ParallelOrchestrator,
  type Task,
  type TaskContext,
  type WorkflowEvent,
} from '../src/index.js';
import { deferred, useOrchestrators, type Deferred } from './helpers.js';

const create = useOrchestrators();

/** Counts how many handlers run at once; `gate` holds each until released. */
function concurrency() {
  let running = 0;
  let max = 0;
  const waiters: { count: number; done: Deferred<void> }[] = [];
  return {
    get max() {
      return max;
    },
    enter() {
      running++;
      if (running > max) max = running;
      for (const w of waiters) if (running >= w.count) w.done.resolve();
    },
    leave() {
      running--;
    },
    /** Resolves once `count` run at the same time. */
    reach(count: number): Promise<void> {
      const done = deferred();
      if (running >= count) done.resolve();
      else waiters.push({ count, done });
      return done.promise;
    },
  };
}

/** An agent whose handler records the step it runs and returns `<type>(<dependency results>)`. */
function echoAgent(o: ParallelOrchestrator, capability = 'work', maxConcurrent = 50, hold?: (task: Task) => Promise<void>) {
  const ran: string[] = [];
  o.registerAgent({
    agentId: `echo-${capability}`,
    role: AgentRole.EXECUTOR,
    capabilities: [capability],
    maxConcurrent,
    handler: async (task: Task<{ results: Record<string, unknown> }>) => {
      ran.push(task.type);
      if (hold !== undefined) await hold(task);
      const deps = Object.keys(task.payload.results).sort();
      return `${task.type}(${deps.map((d) => task.payload.results[d]).join(',')})`;
    },
  });
  return ran;
}

describe('defineWorkflow: validation before anything runs', () => {
  it('names the cycle, with the members of every cycle', async () => {
    const o = await create();
    const define = () =>
      defineWorkflow({
        id: 'loops',
        steps: {
          start: { run: () => 0 },
          a: { dependsOn: ['start', 'c'], run: () => 1 },
          b: { dependsOn: ['a'], run: () => 2 },
          c: { dependsOn: ['b'], run: () => 3 },
          x: { dependsOn: ['y'], run: () => 4 },
          y: { dependsOn: ['x'], run: () => 5 },
          end: { dependsOn: ['c'], run: () => 6 },
        },
      });
    expect(define).toThrow(DependencyCycleError);
    try {
      define();
    } catch (error) {
      const cycle = error as DependencyCycleError;
      expect(cycle.code).toBe('DEPENDENCY_CYCLE');
      // a depends on c, c on b, b on a.
      expect(cycle.cycle).toEqual(['a', 'c', 'b']);
      expect(cycle.cycles).toEqual([
        ['a', 'b', 'c'],
        ['x', 'y'],
      ]);
      expect(cycle.message).toBe('workflow loops has a dependency cycle: a → c → b → a (and 1 more cycle: [x, y])');
    }
    expect(o.getStats().totalSubmitted).toBe(0);
  });

  it('a step that depends on itself is a cycle of one', () => {
    expect(() => defineWorkflow({ id: 'self', steps: { a: { dependsOn: ['a'], run: () => 1 } } })).toThrow('workflow self has a dependency cycle: a → a');
  });

  it('unknown dependencies and duplicate names are typed errors', () => {
    expect(() => defineWorkflow({ id: 'typo', steps: { build: { run: () => 1 }, test: { dependsOn: ['buld'], run: () => 2 } } as never })).toThrow(
      expect.objectContaining({ name: 'UnknownDependencyError', step: 'test', dependency: 'buld' }),
    );
    expect(() => defineWorkflow({ id: 'typo', steps: { test: { dependsOn: ['nope'], run: () => 2 } } as never })).toThrow(UnknownDependencyError);
    expect(() =>
      defineWorkflow({
        id: 'twice',
        steps: [
          { name: 'a', run: () => 1 },
          { name: 'a', run: () => 2 },
        ],
      }),
    ).toThrow(DuplicateStepError);
  });

  it('bad step fields name the field', () => {
    const bad = (steps: unknown) => () => defineWorkflow({ id: 'bad', steps: steps as never });
    expect(bad({ a: {} })).toThrow(/steps\.a needs run \(a function step\) or capabilities/);
    expect(bad({ a: { run: () => 1, capabilities: ['x'] } })).toThrow(/has both run and capabilities/);
    expect(bad({ a: { capabilities: [] } })).toThrow(InvalidWorkflowError);
    expect(bad({ a: { capabilities: ['x'], priority: 7 } })).toThrow('steps.a.priority must be a TaskPriority, 0..4 (received 7)');
    expect(bad({ a: { run: 'nope' } })).toThrow('steps.a.run must be a function');
    expect(bad({ a: { run: () => 1, input: () => 1 } })).toThrow('steps.a.input applies to task steps only');
    expect(bad({ a: { run: () => 1, timeout: -1 } })).toThrow('steps.a.timeout must be a finite number ≥ 0');
    expect(bad({ a: { run: () => 1, dependsOn: 'b' } })).toThrow('steps.a.dependsOn must be an array of step names');
    expect(bad({})).toThrow('steps must hold at least one step');
    expect(bad(null)).toThrow(/^steps must be an object/);
    expect(() => defineWorkflow({ id: '', steps: { a: { run: () => 1 } } })).toThrow("id must be a non-empty string (received '')");
  });

  it('gives the steps in dependency order and in waves', () => {
    const workflow = defineWorkflow({
      id: 'shape',
      steps: {
        d: { dependsOn: ['b', 'c'], run: () => 0 },
        b: { dependsOn: ['a'], run: () => 0 },
        c: { dependsOn: ['a'], run: () => 0 },
        a: { run: () => 0 },
      },
    });
    expect(workflow.steps).toEqual(['a', 'b', 'c', 'd']);
    expect(workflow.waves).toEqual([['a'], ['b', 'c'], ['d']]);
    expect(workflow.dependenciesOf('d')).toEqual(['b', 'c']);
  });
});

describe('runWorkflow: parallel waves, results, rollback', () => {
  it('a diamond runs its middle steps at once, and results flow to dependents', async () => {
    const o = await create({ workerPool: { maxWorkers: 4 } });
    const live = concurrency();
    const bothRunning = live.reach(2);
    echoAgent(o, 'work', 4, async (task) => {
      live.enter();
      if (task.type === 'b' || task.type === 'c') await bothRunning;
      live.leave();
    });
    const workflow = defineWorkflow<{ seed: number }>({
      id: 'diamond',
      steps: {
        a: { capabilities: ['work'], input: (_results, input) => ({ results: { seed: input.seed } }) },
        b: { capabilities: ['work'], dependsOn: ['a'] },
        c: { capabilities: ['work'], dependsOn: ['a'] },
        d: { dependsOn: ['b', 'c'], run: (ctx) => `d(${String(ctx.results.b)},${String(ctx.results.c)})` },
      },
    });
    const result = await runWorkflow(o, workflow, { seed: 7 }).result();
    expect(live.max).toBe(2);
    expect(result.status).toBe('completed');
    expect(result.results).toEqual({ a: 'a(7)', b: 'b(a(7))', c: 'c(a(7))', d: 'd(b(a(7)),c(a(7)))' });
    expect(result.steps).toEqual({ a: 'completed', b: 'completed', c: 'completed', d: 'completed' });
  });

  it('a wide DAG runs every step of a wave at once', async () => {
    const WIDTH = 24;
    const o = await create({ workerPool: { maxWorkers: WIDTH + 1 } });
    const live = concurrency();
    const allRunning = live.reach(WIDTH);
    echoAgent(o, 'work', WIDTH, async (task) => {
      live.enter();
      if (task.type.startsWith('leaf')) await allRunning;
      live.leave();
    });
    const steps: Record<string, { capabilities?: string[]; dependsOn?: string[]; run?: () => string }> = { root: { capabilities: ['work'] } };
    const leaves = Array.from({ length: WIDTH }, (_, i) => `leaf${i}`);
    for (const leaf of leaves) steps[leaf] = { capabilities: ['work'], dependsOn: ['root'] };
    steps.sink = { dependsOn: leaves, run: () => 'sink' };
    const result = await runWorkflow(o, defineWorkflow({ id: 'wide', steps }), null).result();
    expect(live.max).toBe(WIDTH);
    expect(result.status).toBe('completed');
    expect(Object.keys(result.results)).toHaveLength(WIDTH + 2);
  });

  it('a chain runs one step at a time, each after its dependency', async () => {
    const o = await create();
    const live = concurrency();
    const ran = echoAgent(o, 'work', 10, async () => {
      live.enter();
      await Promise.resolve();
      live.leave();
    });
    const steps: Record<string, { capabilities: string[]; dependsOn?: string[] }> = {};
    for (let i = 0; i < 30; i++) steps[`s${i}`] = { capabilities: ['work'], ...(i > 0 && { dependsOn: [`s${i - 1}`] }) };
    const result = await runWorkflow(o, defineWorkflow({ id: 'chain', steps }), null).result();
    expect(ran).toEqual(Object.keys(steps));
    expect(live.max).toBe(1);
    expect(result.results.s2).toBe('s2(s1(s0()))');
  });

  it('rolls back completed steps in reverse dependency order when a step fails, reporting compensation failures', async () => {
    const o = await create({ taskQueue: { retry: { maxAttempts: 2, initialDelay: 1 } } });
    const compensated: string[] = [];
    let attempts = 0;
    o.registerAgent({
      agentId: 'flaky',
      role: AgentRole.EXECUTOR,
      capabilities: ['deploy'],
      handler: async () => {
        attempts++;
        throw new Error('deploy refused');
      },
    });
    const undo = (name: string) => () => {
      compensated.push(name);
    };
    const workflow = defineWorkflow({
      id: 'release',
      steps: {
        fetch: { run: () => 'sources', compensate: undo('fetch') },
        lint: { dependsOn: ['fetch'], run: () => 'ok', compensate: undo('lint') },
        build: { dependsOn: ['fetch'], run: () => 'artifact', compensate: undo('build') },
        package: {
          dependsOn: ['build', 'lint'],
          run: () => 'tarball',
          compensate: () => {
            compensated.push('package');
            throw new Error('registry unreachable');
          },
        },
        notes: { dependsOn: ['fetch'], run: () => 'notes' }, // nothing to undo
        deploy: { dependsOn: ['package', 'notes'], capabilities: ['deploy'] },
        announce: { dependsOn: ['deploy'], run: () => 'sent', compensate: undo('announce') },
      },
    });
    const run = runWorkflow(o, workflow, null);
    const events: string[] = [];
    run.on('step:failed', (e) => events.push(`failed ${e.step}: ${e.error.message} after ${e.attempts}`));
    run.on('compensation:failed', (e) => events.push(`compensation failed ${e.step}: ${e.error.message}`));
    run.on('rollback:started', (e) => events.push(`rollback ${e.steps.join(' ')}`));
    const result = await run.result();
    expect(attempts).toBe(2);
    expect(result.status).toBe('failed');
    expect(result.failedStep).toBe('deploy');
    expect(result.error).toEqual({ name: 'Error', message: 'deploy refused', code: 'TASK_FAILED' });
    // Every dependent is compensated before what it depends on.
    const position = (step: string) => compensated.indexOf(step);
    expect(compensated).toHaveLength(4);
    for (const [dependent, dependency] of [
      ['package', 'build'],
      ['package', 'lint'],
      ['build', 'fetch'],
      ['lint', 'fetch'],
    ]) {
      expect(position(dependent!)).toBeLessThan(position(dependency!));
    }
    expect(compensated[0]).toBe('package');
    expect(compensated.at(-1)).toBe('fetch');
    expect(compensated).not.toContain('announce');
    expect(result.compensated).toEqual(compensated.filter((s) => s !== 'package'));
    expect(result.compensationFailures).toEqual([{ step: 'package', error: { name: 'Error', message: 'registry unreachable', code: 'TASK_FAILED' } }]);
    expect(result.rolledBack).toBe(false);
    expect(result.steps).toMatchObject({ fetch: 'compensated', package: 'compensation-failed', notes: 'completed', deploy: 'failed', announce: 'skipped' });
    expect(events).toEqual([
      'failed deploy: deploy refused after 2',
      `rollback ${result.compensated.slice(0, 0).concat(['package'], result.compensated).join(' ')}`,
      'compensation failed package: registry unreachable',
    ]);
  });

  it('a failing step cancels the running ones and starts no new ones', async () => {
    const o = await create();
    const slowStarted = deferred();
    const slowAborted = deferred<unknown>();
    o.registerAgent({
      agentId: 'slow',
      role: AgentRole.EXECUTOR,
      capabilities: ['slow'],
      handler: (_task, ctx) =>
        new Promise((_resolve, reject) => {
          slowStarted.resolve();
          ctx.signal.addEventListener('abort', () => {
            slowAborted.resolve(ctx.signal.reason);
            reject(ctx.signal.reason);
          });
        }),
    });
    let afterRan = false;
    const workflow = defineWorkflow({
      id: 'fail-fast',
      steps: {
        slow: { capabilities: ['slow'] },
        doomed: {
          run: async () => {
            await slowStarted.promise;
            throw new Error('doomed');
          },
        },
        after: { dependsOn: ['doomed'], run: () => (afterRan = true) },
        afterSlow: { dependsOn: ['slow'], run: () => (afterRan = true) },
      },
    });
    const run = runWorkflow(o, workflow, null);
    const cancelled: string[] = [];
    run.on('step:cancelled', (e) => cancelled.push(`${e.step}: ${e.reason}`));
    const result = await run.result();
    expect(await slowAborted.promise).toMatchObject({ name: 'TaskCancelledError' });
    expect(afterRan).toBe(false);
    expect(result.status).toBe('failed');
    expect(result.failedStep).toBe('doomed');
    expect(result.steps).toEqual({ slow: 'cancelled', doomed: 'failed', after: 'skipped', afterSlow: 'skipped' });
    expect(cancelled).toEqual([`slow: workflow run ${run.runId} failed: step doomed failed`]);
    expect(o.getTask(`${run.runId}/slow`)?.status).toBe('cancelled');
  });

  it('cancel() stops the run and compensates what completed', async () => {
    const o = await create();
    const gate = deferred();
    const compensated: string[] = [];
    const workflow = defineWorkflow({
      id: 'cancellable',
      steps: {
        one: { run: () => 1, compensate: (ctx) => void compensated.push(`one ${ctx.reason} ${String(ctx.result)}`) },
        two: {
          dependsOn: ['one'],
          run: (ctx) =>
            new Promise((_resolve, reject) => {
              gate.resolve();
              ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
            }),
        },
        three: { dependsOn: ['two'], run: () => 3 },
      },
    });
    const run = runWorkflow(o, workflow, null);
    await gate.promise;
    expect(await run.cancel('changed my mind')).toBe(true);
    expect(await run.cancel('again')).toBe(false);
    const result = await run.result();
    expect(result).toMatchObject({ status: 'cancelled', failedStep: null, rolledBack: true, compensated: ['one'] });
    expect(result.error).toEqual({ name: 'TaskCancelledError', message: 'changed my mind', code: 'TASK_CANCELLED' });
    expect(result.steps).toEqual({ one: 'compensated', two: 'cancelled', three: 'skipped' });
    expect(compensated).toEqual(['one cancelled 1']);
    expect(run.status).toBe('cancelled');
    expect(await cancelWorkflow(o, run.runId)).toBe(false);
  });

  it('a queued run cancelled before it starts ends cancelled with nothing run', async () => {
    const o = await create({ workerPool: { maxWorkers: 2 } }, { start: false });
    let ran = false;
    const run = runWorkflow(o, defineWorkflow({ id: 'never', steps: { a: { run: () => (ran = true) } } }), null);
    expect(run.status).toBe('queued');
    expect(await cancelWorkflow(o, run.runId, 'not today')).toBe(true);
    await o.start();
    const result = await run.result();
    expect(result).toMatchObject({ status: 'cancelled', steps: {}, results: {} });
    expect(ran).toBe(false);
  });

  it('streams every step event, progress included, into the run', async () => {
    const o = await create();
    o.registerAgent({
      agentId: 'indexer',
      role: AgentRole.EXECUTOR,
      capabilities: ['index'],
      handler: async (_task, ctx: TaskContext<{ indexed: number }>) => {
        for (let indexed = 1; indexed <= 3; indexed++) ctx.progress({ indexed });
        return 'indexed';
      },
    });
    const workflow = defineWorkflow({
      id: 'streamed',
      steps: {
        index: { capabilities: ['index'] },
        report: {
          dependsOn: ['index'],
          run: (ctx) => {
            ctx.progress({ page: 1 });
            ctx.progress({ page: 2 });
            return 'report';
          },
        },
      },
    });
    const run = runWorkflow(o, workflow, null);
    const seen: string[] = [];
    for await (const event of run as AsyncIterable<WorkflowEvent>) {
      if (event.type === 'step:progress') seen.push(`${event.step} ${JSON.stringify(event.data)}${event.delta ? ' Δ' : ''}`);
      else if ('step' in event) seen.push(`${event.type} ${event.step}`);
      else seen.push(event.type);
    }
    expect(seen).toEqual([
      'workflow:started',
      'step:started index',
      'index {"indexed":1} Δ',
      'index {"indexed":2} Δ',
      'index {"indexed":3} Δ',
      'step:completed index',
      'step:started report',
      'report {"page":1}',
      'report {"page":2}',
      'step:completed report',
      'workflow:finished',
    ]);
  });

  it('retries a function step per its policy and reports the retries', async () => {
    const o = await create();
    let calls = 0;
    const run = runWorkflow(
      o,
      defineWorkflow({
        id: 'retrying',
        steps: {
          flaky: {
            retry: { maxAttempts: 3, initialDelay: 1 },
            run: (ctx) => {
              calls++;
              if (ctx.attempt < 3) throw new Error(`try ${ctx.attempt}`);
              return ctx.attempt;
            },
          },
        },
      }),
      null,
    );
    const retries: string[] = [];
    run.on('step:retry', (e) => retries.push(`${e.attempt}: ${e.error.message}`));
    expect((await run.result()).results).toEqual({ flaky: 3 });
    expect(calls).toBe(3);
    expect(retries).toEqual(['2: try 1', '3: try 2']);
  });

  it('orchestrator.runWorkflow is runWorkflow', async () => {
    const o = await create();
    const run = o.runWorkflow(defineWorkflow({ id: 'method', steps: { a: { run: (ctx) => `hello ${String(ctx.input)}` } } }), 'world', { runId: 'method-1', priority: TaskPriority.HIGH });
    expect(run.runId).toBe('method-1');
    expect((await run.result()).results).toEqual({ a: 'hello world' });
  });
});

describe('runs: ids, registration, inspection', () => {
  it('refuses a second live run with the same id', async () => {
    const o = await create();
    const gate = deferred();
    const workflow = defineWorkflow({ id: 'held', steps: { a: { run: () => gate.promise } } });
    const first = runWorkflow(o, workflow, null, { runId: 'held-1' });
    expect(() => runWorkflow(o, workflow, null, { runId: 'held-1' })).toThrow(DuplicateWorkflowRunError);
    gate.resolve();
    await first.result();
    // Finished: the id may be used again, for a new run.
    expect((await runWorkflow(o, workflow, null, { runId: 'held-1' }).result()).status).toBe('completed');
  });

  it('refuses another workflow with a registered id, and too few worker slots for task steps', async () => {
    const o = await create({ workerPool: { minWorkers: 1, maxWorkers: 1 } });
    registerWorkflows(o, [defineWorkflow({ id: 'same', steps: { a: { run: () => 1 } } })]);
    expect(() => registerWorkflows(o, [defineWorkflow({ id: 'same', steps: { b: { run: () => 1 } } })])).toThrow(InvalidWorkflowError);
    // Same shape again: fine.
    registerWorkflows(o, [defineWorkflow({ id: 'same', steps: { a: { run: () => 2 } } })]);
    expect(() => runWorkflow(o, defineWorkflow({ id: 'tasks', steps: { a: { capabilities: ['x'] } } }), null)).toThrow(InvalidOptionsError);
    expect(() => runWorkflow(o, {} as never, null)).toThrow('workflow must be a workflow made by defineWorkflow()');
  });

  it('getWorkflow and workflowHistory read a run from the audit trail', async () => {
    const o = await create();
    echoAgent(o);
    const workflow = defineWorkflow({
      id: 'inspected',
      steps: { fetch: { capabilities: ['work'] }, parse: { dependsOn: ['fetch'], run: () => 'parsed' } },
    });
    const run = runWorkflow(o, workflow, null, { runId: 'inspected-1' });
    expect((await observeWorkflow(o, 'inspected-1'))?.runId).toBe('inspected-1');
    await run.result();
    const info = await getWorkflow(o, 'inspected-1');
    expect(info).toMatchObject({
      runId: 'inspected-1',
      workflowId: 'inspected',
      status: 'completed',
      steps: { fetch: { status: 'completed', taskId: 'inspected-1/fetch', attempts: 1 }, parse: { status: 'completed', taskId: null } },
      error: null,
    });
    expect(info?.result?.results).toEqual({ fetch: 'fetch()', parse: 'parsed' });
    const history = await workflowHistory(o, 'inspected-1');
    const lines = history.map((e) => `${e.step ?? 'run'} ${e.type}`).filter((line) => line !== 'run checkpoint');
    expect(lines).toEqual(['run submitted', 'run started', 'fetch submitted', 'fetch started', 'fetch completed', 'run completed']);
    expect(history.filter((e) => e.step === 'fetch').map((e) => e.type)).toEqual(['submitted', 'started', 'completed']);
    expect(history[0]).toMatchObject({ step: null, type: 'submitted', taskId: 'inspected-1' });
    expect(history.at(-1)).toMatchObject({ step: null, type: 'completed' });
    expect(await getWorkflow(o, 'nope')).toBeUndefined();
  });

  it('compensations that hang time out and are reported', async () => {
    const o = await create();
    const result = await runWorkflow(
      o,
      defineWorkflow({
        id: 'stuck-undo',
        compensationTimeout: 20,
        steps: {
          a: { run: () => 1, compensate: (ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve())) },
          b: { run: () => 2, compensate: () => new Promise(() => {}) },
          c: { dependsOn: ['a', 'b'], run: () => Promise.reject(new Error('no')) },
        },
      }),
      null,
    ).result();
    expect(result.compensationFailures.map((f) => f.step).sort()).toEqual(['a', 'b']);
    expect(result.compensationFailures[0]!.error).toMatchObject({ name: 'CompensationTimeoutError', code: 'COMPENSATION_TIMEOUT' });
    expect(new CompensationTimeoutError('r', 'a', 20).message).toBe("the compensation of step 'a' of run r timed out after 20 ms");
  });
});
