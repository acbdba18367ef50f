// The workflow layer attacked: huge and cyclic DAGs, long chains, throwing and hanging code,
// cancels at awkward moments, reused ids, changed definitions, too few worker slots.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AgentRole,
  DependencyCycleError,
  InvalidArgumentError,
  InvalidTaskError,
  MisroutedTaskError,
  TaskCancelledError,
  TaskPriority,
  WorkflowDefinitionChangedError,
  cancelWorkflow,
  defineWorkflow,
  getWorkflow,
  observeWorkflow,
  registerWorkflows,
  runWorkflow,
  type StepContext,
  type StepDefinition,
} from '../src/index.js';
import { deferred, nextEvent, settle, useOrchestrators } from './helpers.js';
import { DATABASE_URL, dropSchema, postgresAvailable, sql, uniqueSchema } from './pg-helpers.js';

const create = useOrchestrators();

function chain(n: number, step: (i: number) => StepDefinition): Record<string, StepDefinition> {
  const steps: Record<string, StepDefinition> = {};
  for (let i = 0; i < n; i++) steps[`s${i}`] = { ...step(i), ...(i > 0 && { dependsOn: [`s${i - 1}`] }) };
  return steps;
}

describe('huge and cyclic DAGs', () => {
  it('names a cycle through 100,000 steps without deep recursion', () => {
    const steps = chain(100_000, () => ({ run: () => 0 }));
    steps.s0 = { run: () => 0, dependsOn: ['s99999'] };
    let error: unknown;
    try {
      defineWorkflow({ id: 'ring', steps });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DependencyCycleError);
    const cycle = (error as DependencyCycleError).cycle;
    expect(cycle).toHaveLength(100_000);
    expect(cycle.slice(0, 3)).toEqual(['s0', 's99999', 's99998']);
    expect((error as DependencyCycleError).cycles).toHaveLength(1);
  });

  it('runs a 10,000-step chain of function steps, and of task steps, and rolls a 10,000-step chain back', async () => {
    const o = await create();
    o.registerAgent({ agentId: 'inc', role: AgentRole.EXECUTOR, capabilities: ['inc'], maxConcurrent: 4, handler: (task) => (task.payload as { results: Record<string, number> }).results[Object.keys((task.payload as { results: object }).results)[0]!] ?? 0 });
    const sync = await runWorkflow(o, defineWorkflow({ id: 'long-fn', steps: chain(10_000, (i) => ({ run: (ctx) => (i === 0 ? 0 : (ctx.results[`s${i - 1}`] as number) + 1) })) }), null).result();
    expect(sync.results.s9999).toBe(9999);
    const tasks = await runWorkflow(o, defineWorkflow({ id: 'long-task', steps: chain(10_000, () => ({ capabilities: ['inc'] })) }), null).result();
    expect(tasks.status).toBe('completed');
    expect(Object.keys(tasks.results)).toHaveLength(10_000);

    const undone: number[] = [];
    const steps = chain(10_000, (i) => ({ run: () => i, compensate: () => void undone.push(i) }));
    steps.s9999 = { dependsOn: ['s9998'], run: () => Promise.reject(new Error('last one fails')) };
    const rolled = await runWorkflow(o, defineWorkflow({ id: 'long-undo', steps }), null).result();
    expect(rolled).toMatchObject({ status: 'failed', failedStep: 's9999', rolledBack: true });
    expect(undone).toHaveLength(9999);
    expect(undone[0]).toBe(9998);
    expect(undone.at(-1)).toBe(0);
  });

  it('a wide DAG on a small bounded queue waits for room instead of failing', async () => {
    const o = await create({ taskQueue: { maxSize: 5 }, workerPool: { maxWorkers: 3 } });
    o.registerAgent({ agentId: 'w', role: AgentRole.EXECUTOR, capabilities: ['w'], maxConcurrent: 2, handler: async (task) => task.type });
    const steps: Record<string, StepDefinition> = {};
    for (let i = 0; i < 60; i++) steps[`leaf${i}`] = { capabilities: ['w'] };
    const result = await runWorkflow(o, defineWorkflow({ id: 'wide-bounded', steps }), null).result();
    expect(result.status).toBe('completed');
    expect(result.results.leaf59).toBe('leaf59');
  });
});

describe('stopping while steps wait for queue room', () => {
  it('a failure stops the steps still waiting for room: none of them runs', async () => {
    const o = await create({ taskQueue: { maxSize: 1 }, workerPool: { maxWorkers: 2 } });
    const release = deferred();
    const ran: string[] = [];
    o.registerAgent({
      agentId: 'one',
      role: AgentRole.EXECUTOR,
      capabilities: ['w'],
      handler: async (task, ctx) => {
        ran.push(task.type);
        if (task.type === 'blocker') await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
        return task.type;
      },
    });
    const steps: Record<string, StepDefinition> = { blocker: { capabilities: ['w'] } };
    for (let i = 0; i < 6; i++) steps[`w${i}`] = { capabilities: ['w'] };
    steps.boom = {
      run: async () => {
        await release.promise;
        throw new Error('boom');
      },
    };
    const run = runWorkflow(o, defineWorkflow({ id: 'crowded', steps }), null);
    run.on('step:started', (e) => e.step === 'blocker' && release.resolve());
    const result = await run.result();
    await o.onIdle();
    expect(result.status).toBe('failed');
    expect(ran).toEqual(['blocker']);
    expect(Object.entries(result.steps).filter(([, outcome]) => outcome === 'completed')).toEqual([]);
    expect(result.steps.blocker).toBe('cancelled');
  });
});

describe('throwing, hanging and odd steps', () => {
  it('an input() that throws fails its step; a compensation that throws synchronously is reported', async () => {
    const o = await create();
    o.registerAgent({ agentId: 'x', role: AgentRole.EXECUTOR, capabilities: ['x'], handler: () => 'x' });
    const result = await runWorkflow(
      o,
      defineWorkflow({
        id: 'throws',
        steps: {
          a: {
            run: () => 1,
            compensate: () => {
              throw new TypeError('sync throw in compensate');
            },
          },
          b: {
            dependsOn: ['a'],
            capabilities: ['x'],
            input: () => {
              throw new RangeError('bad input');
            },
          },
        },
      }),
      null,
    ).result();
    expect(result).toMatchObject({ status: 'failed', failedStep: 'b', error: { name: 'RangeError', message: 'bad input' }, rolledBack: false });
    expect(result.compensationFailures).toEqual([{ step: 'a', error: { name: 'TypeError', message: 'sync throw in compensate', code: 'TASK_FAILED' } }]);
    expect(o.getStats().totalSubmitted).toBe(1); // the coordinator only: b never became a task
  });

  it('a task step, a function step and a compensation that throw values that cannot be read fail or are reported; nothing hangs', async () => {
    // None has a string form or a readable message: an object without prototype, a Proxy whose
    // prototype cannot be read, an object whose message getter throws.
    const unreadable = [
      () => Object.create(null) as unknown,
      () => new Proxy({}, { getPrototypeOf: () => { throw new Error('no prototype'); } }),
      () => Object.defineProperty({}, 'message', { get: () => { throw new Error('no message'); } }),
    ];
    const o = await create({ taskQueue: { retry: { maxAttempts: 1 } } });
    o.registerAgent({ agentId: 'x', role: AgentRole.EXECUTOR, capabilities: ['x'], handler: (task) => { throw unreadable[task.payload as number]!(); } });
    for (let i = 0; i < unreadable.length; i++) {
      for (const kind of ['task', 'function']) {
        const failing: StepDefinition = kind === 'task' ? { dependsOn: ['a'], capabilities: ['x'], input: () => i } : { dependsOn: ['a'], run: () => { throw unreadable[i]!(); } };
        const steps = { a: { run: () => 1, compensate: () => { throw unreadable[i]!(); } }, b: failing };
        const result = await runWorkflow(o, defineWorkflow({ id: `unreadable-${kind}-${i}`, steps }), null).result();
        expect(result).toMatchObject({ status: 'failed', failedStep: 'b', error: { name: 'Error', message: expect.stringMatching(/^non-error thrown: /) } });
        expect(result.compensationFailures).toEqual([{ step: 'a', error: { name: 'Error', message: expect.stringMatching(/^non-error thrown: /), code: 'TASK_FAILED' } }]);
      }
    }
  });

  it('a function step that ignores its signal is abandoned after cancelGrace', async () => {
    const o = await create();
    const hung = deferred();
    const result = await runWorkflow(
      o,
      defineWorkflow({
        id: 'deaf',
        cancelGrace: 20,
        steps: {
          deaf: { run: () => (hung.resolve(), new Promise(() => {})), compensate: () => void 0 },
          fails: { run: async () => {
            await hung.promise;
            throw new Error('boom');
          } },
        },
      }),
      null,
    ).result();
    expect(result).toMatchObject({ status: 'failed', failedStep: 'fails', steps: { deaf: 'cancelled', fails: 'failed' }, compensated: [] });
  });

  it('steps named __proto__ and constructor are plain keys', async () => {
    const o = await create();
    const result = await runWorkflow(
      o,
      defineWorkflow({
        id: 'odd-names',
        // A computed key: an own property named __proto__ (a literal `__proto__:` would set the prototype).
        steps: { ['__proto__']: { run: () => 'p' }, constructor: { dependsOn: ['__proto__'], run: (ctx: StepContext) => `c after ${String(ctx.results['__proto__' as never])}` } } as never,
      }),
      null,
    ).result();
    expect(Object.keys(result.results)).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(result.results)).toBe(Object.prototype);
    expect((result.results as Record<string, unknown>).constructor).toBe('c after p');
  });

  it('a step task cancelled by someone else fails the run', async () => {
    const o = await create();
    const started = deferred();
    o.registerAgent({
      agentId: 'slow',
      role: AgentRole.EXECUTOR,
      capabilities: ['slow'],
      handler: (_task, ctx) =>
        new Promise((_resolve, reject) => {
          started.resolve();
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
        }),
    });
    const run = runWorkflow(o, defineWorkflow({ id: 'poked', steps: { a: { capabilities: ['slow'] } } }), null);
    await started.promise;
    await o.cancel(`${run.runId}/a`, 'operator said no');
    const result = await run.result();
    expect(result).toMatchObject({ status: 'failed', failedStep: 'a', error: { name: 'TaskCancelledError', code: 'TASK_CANCELLED' } });
    expect(result.error?.message).toContain('operator said no');
  });

  it('a throwing listener does not break the run', async () => {
    const o = await create();
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on('warning', onWarning);
    try {
      const run = runWorkflow(o, defineWorkflow({ id: 'loud', steps: { a: { run: () => 1 } } }), null);
      run.on('step:completed', () => {
        throw new Error('listener bug');
      });
      expect((await run.result()).status).toBe('completed');
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.some((w) => w.includes('listener bug'))).toBe(true);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('cancels at awkward moments', () => {
  it('cancel during a rollback is refused and the rollback finishes', async () => {
    const o = await create();
    const inCompensation = deferred();
    const release = deferred();
    const run = runWorkflow(
      o,
      defineWorkflow({
        id: 'undo-slowly',
        steps: {
          a: { run: () => 1, compensate: () => void 0 },
          b: {
            dependsOn: ['a'],
            run: () => 2,
            compensate: async () => {
              inCompensation.resolve();
              await release.promise;
            },
          },
          c: { dependsOn: ['b'], run: () => Promise.reject(new Error('c failed')) },
        },
      }),
      null,
    );
    await inCompensation.promise;
    expect(run.status).toBe('rolling-back');
    expect(await run.cancel('too late')).toBe(false);
    expect((await getWorkflow(o, run.runId))?.status).toBe('rolling-back');
    release.resolve();
    expect(await run.result()).toMatchObject({ status: 'failed', compensated: ['b', 'a'], rolledBack: true });
  });

  it("cancelling the coordinator task itself stops the run at once (no rollback); its steps are cancelled", async () => {
    const o = await create();
    const stepAborted = deferred<unknown>();
    const started = deferred();
    o.registerAgent({
      agentId: 'slow',
      role: AgentRole.EXECUTOR,
      capabilities: ['slow'],
      handler: (_task, ctx) =>
        new Promise((_resolve, reject) => {
          started.resolve();
          ctx.signal.addEventListener('abort', () => {
            stepAborted.resolve(ctx.signal.reason);
            reject(ctx.signal.reason);
          });
        }),
    });
    let compensated = false;
    const run = runWorkflow(o, defineWorkflow({ id: 'hard-stop', steps: { a: { run: () => 1, compensate: () => void (compensated = true) }, b: { dependsOn: ['a'], capabilities: ['slow'] } } }), null);
    await started.promise;
    expect(await o.cancel(run.runId, 'pull the plug')).toBe(true);
    const outcome = await settle(run.result());
    expect(outcome.ok).toBe(false);
    expect((outcome as { error: unknown }).error).toBeInstanceOf(TaskCancelledError);
    expect(await stepAborted.promise).toBeInstanceOf(TaskCancelledError);
    expect(compensated).toBe(false);
    expect(run.status).toBe('error');
  });

  it('cancelling the coordinator mid-rollback aborts the compensation running', async () => {
    const o = await create();
    const inCompensation = deferred();
    const compensationAborted = deferred<unknown>();
    let aCompensated = false;
    const run = runWorkflow(
      o,
      defineWorkflow({
        id: 'plug-in-rollback',
        steps: {
          a: { run: () => 1, compensate: () => void (aCompensated = true) },
          b: {
            dependsOn: ['a'],
            run: () => 2,
            compensate: (ctx) =>
              new Promise<void>((resolve) => {
                inCompensation.resolve();
                ctx.signal.addEventListener('abort', () => {
                  compensationAborted.resolve(ctx.signal.reason);
                  resolve();
                });
              }),
          },
          c: { dependsOn: ['b'], run: () => Promise.reject(new Error('no')) },
        },
      }),
      null,
    );
    await inCompensation.promise;
    await o.cancel(run.runId, 'stop everything');
    expect(await compensationAborted.promise).toBeInstanceOf(TaskCancelledError);
    expect((await settle(run.result())).ok).toBe(false);
    expect(aCompensated).toBe(false);
  });

  it('a graceful shutdown mid-run stops the run without hanging; a forced one too', async () => {
    for (const graceful of [true, false]) {
      const o = await create({ workerPool: { maxWorkers: 3 } });
      const second = deferred();
      const run = runWorkflow(
        o,
        defineWorkflow({ id: `stopped-${graceful}`, steps: { a: { run: () => 1 }, b: { dependsOn: ['a'], run: () => second.promise } } }),
        null,
      );
      await new Promise<void>((resolve) => run.on('step:started', (e) => e.step === 'b' && resolve()));
      const stopping = o.shutdown({ graceful, timeout: 50 });
      const outcome = await settle(run.result());
      await stopping;
      expect(outcome.ok).toBe(false);
      expect((outcome as { error: TaskCancelledError }).error.reason).toMatch(/^the orchestrator shut down/);
    }
  });

  it('cancel arguments are checked; unknown runs are not found', async () => {
    const o = await create();
    await expect(cancelWorkflow(o, 'nope')).resolves.toBe(false);
    await expect(cancelWorkflow(o, 'nope', 42 as never)).rejects.toThrow(InvalidArgumentError);
    await expect(observeWorkflow(o, 'nope')).resolves.toBeUndefined();
    expect(() => runWorkflow(o, defineWorkflow({ id: 'opts', steps: { a: { run: () => 1 } } }), null, { runId: '' })).toThrow(InvalidArgumentError);
    expect(() => runWorkflow(o, defineWorkflow({ id: 'opts', steps: { a: { run: () => 1 } } }), null, { priority: 9 as never })).toThrow('priority must be a TaskPriority');
  });
});

describe('worker slots and the coordinator agent', () => {
  it('a run whose coordinator is preempted by a more urgent run leaves its task steps running and takes their results when it resumes', async () => {
    const o = await create({ workerPool: { maxWorkers: 4 }, taskQueue: { preemptibleFrom: TaskPriority.LOW } });
    const release = deferred();
    const starts = new Map<string, number>();
    const cancelled: string[] = [];
    o.on('task:started', (e) => starts.set(e.taskId, (starts.get(e.taskId) ?? 0) + 1));
    o.on('task:cancelled', (e) => cancelled.push(e.taskId));
    const lowStepDone = nextEvent(o, 'task:completed', (e) => e.taskId === 'low/a');
    o.registerAgent({
      agentId: 'w',
      role: AgentRole.EXECUTOR,
      capabilities: ['w'],
      maxConcurrent: 2,
      handler: async (task) => {
        if (task.id === 'low/a') await release.promise;
        // The low run's step ends while the high run holds the only coordinator slot.
        if (task.id === 'high/a') {
          release.resolve();
          await lowStepDone;
        }
        return task.id;
      },
    });
    const workflow = defineWorkflow({ id: 'two', steps: { a: { capabilities: ['w'] }, b: { dependsOn: ['a'], capabilities: ['w'] } } });
    // One run coordinated at a time: the CRITICAL run can only start in the BACKGROUND run's place.
    registerWorkflows(o, [workflow], { maxConcurrentRuns: 1 });
    const low = runWorkflow(o, workflow, null, { runId: 'low', priority: TaskPriority.BACKGROUND });
    await nextEvent(o, 'task:started', (e) => e.taskId === 'low/a');
    const preempted = nextEvent(o, 'task:preempted', (e) => e.taskId === 'low');
    const high = runWorkflow(o, workflow, null, { runId: 'high', priority: TaskPriority.CRITICAL });
    expect(await preempted).toMatchObject({ by: 'high' });
    expect(await high.result()).toMatchObject({ status: 'completed', results: { a: 'high/a', b: 'high/b' } });
    expect(await low.result()).toMatchObject({ status: 'completed', results: { a: 'low/a', b: 'low/b' } });
    // The step that ran (and ended) while its coordinator gave way was neither cancelled nor run again.
    expect(cancelled).toEqual([]);
    expect(starts.get('low/a')).toBe(1);
  });

  it('cancelWorkflow on a run whose coordinator gave way to a more urgent run rolls it back when it resumes', async () => {
    const o = await create({ workerPool: { maxWorkers: 4 }, taskQueue: { preemptibleFrom: TaskPriority.LOW } });
    const release = deferred();
    const compensated: string[] = [];
    const lowStepDone = nextEvent(o, 'task:completed', (e) => e.taskId === 'low/a');
    let cancelled: boolean | undefined;
    o.registerAgent({
      agentId: 'w',
      role: AgentRole.EXECUTOR,
      capabilities: ['w'],
      maxConcurrent: 2,
      handler: async (task) => {
        if (task.id === 'low/a') await release.promise;
        // While the high run holds the only coordinator slot, the low run's step ends and the low run is cancelled.
        if (task.id === 'high/a') {
          release.resolve();
          await lowStepDone;
          cancelled = await cancelWorkflow(o, 'low', 'no longer wanted');
        }
        return task.id;
      },
    });
    const workflow = defineWorkflow({
      id: 'undoable',
      steps: { a: { capabilities: ['w'], compensate: (ctx) => void compensated.push(ctx.step) }, b: { dependsOn: ['a'], capabilities: ['w'] } },
    });
    registerWorkflows(o, [workflow], { maxConcurrentRuns: 1 });
    const low = runWorkflow(o, workflow, null, { runId: 'low', priority: TaskPriority.BACKGROUND });
    await nextEvent(o, 'task:started', (e) => e.taskId === 'low/a');
    const high = runWorkflow(o, workflow, null, { runId: 'high', priority: TaskPriority.CRITICAL });
    expect(await high.result()).toMatchObject({ status: 'completed' });
    expect(cancelled).toBe(true);
    // Not ended as if it had never started: its completed step is undone.
    expect(await low.result()).toMatchObject({ status: 'cancelled', rolledBack: true, compensated: ['a'] });
    expect(compensated).toEqual(['a']);
  });

  it('many runs of several workflows on few worker slots all finish (no deadlock)', async () => {
    const o = await create({ workerPool: { maxWorkers: 3 } });
    o.registerAgent({ agentId: 'w', role: AgentRole.EXECUTOR, capabilities: ['w'], maxConcurrent: 3, handler: async (task) => task.type });
    const workflows = ['one', 'two', 'three'].map((id) =>
      defineWorkflow({ id, steps: { a: { capabilities: ['w'] }, b: { dependsOn: ['a'], capabilities: ['w'] } } }),
    );
    const runs = Array.from({ length: 24 }, (_, i) => runWorkflow(o, workflows[i % 3]!, null));
    const results = await Promise.all(runs.map((run) => run.result()));
    expect(results.every((r) => r.status === 'completed')).toBe(true);
    // One coordinator agent for all workflows, bounded to leave a slot for steps.
    const coordinators = o.listAgents().filter((a) => a.role === AgentRole.COORDINATOR);
    expect(coordinators).toHaveLength(1);
    expect(coordinators[0]!.maxConcurrent).toBe(2);
  });

  it('registering another workflow while a run is running does not disturb it', async () => {
    const o = await create();
    const gate = deferred();
    const first = runWorkflow(o, defineWorkflow({ id: 'first', steps: { a: { run: () => gate.promise.then(() => 'a') } } }), null);
    await new Promise<void>((resolve) => first.on('step:started', () => resolve()));
    registerWorkflows(o, [defineWorkflow({ id: 'second', steps: { b: { run: () => 'b' } } })]);
    const second = runWorkflow(o, defineWorkflow({ id: 'second', steps: { b: { run: () => 'b' } } }), null);
    expect((await second.result()).results).toEqual({ b: 'b' });
    gate.resolve();
    expect((await first.result()).results).toEqual({ a: 'a' });
  });

  it('a task with no capabilities that reaches the coordinator agent fails with MisroutedTaskError', async () => {
    const o = await create();
    registerWorkflows(o, [defineWorkflow({ id: 'lonely', steps: { a: { run: () => 1 } } })]);
    const outcome = await settle(o.submit({ type: 'anything', retry: { maxAttempts: 3 } }).result());
    expect(outcome.ok).toBe(false);
    expect((outcome as { error: unknown }).error).toBeInstanceOf(MisroutedTaskError);
    // Enough of them would open an agent's circuit: the coordinator's is closed again at once.
    for (let i = 0; i < 8; i++) await settle(o.submit({ type: 'anything', retry: { maxAttempts: 1 } }).result());
    expect((await runWorkflow(o, defineWorkflow({ id: 'lonely', steps: { a: { run: () => 1 } } }), null).result()).status).toBe('completed');
    expect(o.listAgents().find((a) => a.role === AgentRole.COORDINATOR)?.circuitState).toBe('closed');
  }, 10_000);
});

describe('durable stores (SQLite, in one process)', () => {
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'workflow-hostile-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const sqlite = () => ({ store: { type: 'sqlite' as const, path: join(dir, 'db.sqlite') } });

  it('a reused run id starts afresh: a resumed run never takes an earlier run’s step results', async () => {
    const first = await create(sqlite());
    first.registerAgent({ agentId: 'calc', role: AgentRole.EXECUTOR, capabilities: ['calc'], handler: (task) => `computed from ${JSON.stringify((task.payload as { input: unknown }).input)}` });
    const hold = deferred();
    const holding = deferred();
    const workflow = (gate: () => Promise<unknown>) =>
      defineWorkflow({ id: 'reused', steps: { gate: { run: gate }, calc: { dependsOn: ['gate'], capabilities: ['calc'] } } });
    const once = await runWorkflow(first, workflow(async () => 'open'), { n: 1 }, { runId: 'reused-1' }).result();
    expect(once.results.calc).toBe('computed from {"n":1}');
    // The same id again; it stops (like a crash) before calc starts.
    runWorkflow(first, workflow(() => (holding.resolve(), hold.promise)), { n: 2 }, { runId: 'reused-1' });
    await holding.promise;
    await first.flush();
    await first.shutdown({ graceful: false });

    const second = await create(sqlite());
    second.registerAgent({ agentId: 'calc', role: AgentRole.EXECUTOR, capabilities: ['calc'], handler: (task) => `computed from ${JSON.stringify((task.payload as { input: unknown }).input)}` });
    registerWorkflows(second, [workflow(async () => 'open')]);
    const run = await observeWorkflow(second, 'reused-1');
    const result = await run!.result();
    expect(result.results.calc).toBe('computed from {"n":2}');
  });

  it('a recovered run cancelled before its coordinator starts again rolls back when it does', async () => {
    const agent = (o: Awaited<ReturnType<typeof create>>, hold: boolean) =>
      o.registerAgent({
        agentId: 'slow',
        role: AgentRole.EXECUTOR,
        capabilities: ['slow'],
        handler: (_task, ctx) => (hold ? new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))) : 'done'),
      });
    const undone: string[] = [];
    const workflow = defineWorkflow({
      id: 'recovered-cancel',
      checkpointInterval: 0,
      steps: { a: { run: () => 'a', compensate: () => void undone.push('a') }, b: { dependsOn: ['a'], capabilities: ['slow'] } },
    });
    const first = await create(sqlite());
    agent(first, true);
    const run = runWorkflow(first, workflow, null, { runId: 'rc-1' });
    await new Promise<void>((resolve) => run.on('step:started', (e) => e.step === 'b' && resolve()));
    await first.flush();
    await first.shutdown({ graceful: false });

    const second = await create(sqlite());
    const recovered = await observeWorkflow(second, 'rc-1');
    expect(recovered?.status).toBe('queued');
    expect(await cancelWorkflow(second, 'rc-1', 'not any more')).toBe(true);
    expect(await cancelWorkflow(second, 'rc-1', 'twice')).toBe(false);
    agent(second, true);
    registerWorkflows(second, [workflow]);
    const result = await recovered!.result();
    expect(result).toMatchObject({ status: 'cancelled', compensated: ['a'], steps: { a: 'compensated', b: 'cancelled' } });
    expect(undone).toEqual(['a']);
    expect(second.getTask('rc-1/b')?.status).toBe('cancelled');
  });

  it('a resumed run whose definition changed fails with WorkflowDefinitionChangedError (a dead letter)', async () => {
    const first = await create(sqlite());
    const holding = deferred();
    runWorkflow(first, defineWorkflow({ id: 'evolving', steps: { a: { run: () => (holding.resolve(), new Promise(() => {})) } } }), null, { runId: 'evolving-1' });
    await holding.promise;
    await first.flush();
    await first.shutdown({ graceful: false });

    const second = await create(sqlite());
    registerWorkflows(second, [defineWorkflow({ id: 'evolving', steps: { a: { run: () => 1 }, b: { run: () => 2 } } })]);
    const run = await observeWorkflow(second, 'evolving-1');
    const outcome = await settle(run!.result());
    expect((outcome as { error: unknown }).error).toBeInstanceOf(WorkflowDefinitionChangedError);
    expect((await second.deadLetters()).map((d) => d.taskId)).toEqual(['evolving-1']);
  });

  it('input JSON cannot store is refused at once; a result it cannot store is kept as a note', async () => {
    const o = await create(sqlite());
    const workflow = defineWorkflow({ id: 'bigint', steps: { a: { run: () => 10n }, b: { dependsOn: ['a'], run: (ctx) => typeof ctx.results.a } } });
    expect(() => runWorkflow(o, workflow, { n: 1n })).toThrow(InvalidTaskError);
    const result = await runWorkflow(o, workflow, null, { runId: 'bigint-1' }).result();
    // The step itself saw the real value; the result (stored as the coordinator's) holds a note.
    expect(result.results.b).toBe('bigint');
    expect(result.results.a).toEqual({ unserializableResult: expect.stringContaining('BigInt') });
    await o.flush();
    expect((await getWorkflow(o, 'bigint-1'))?.status).toBe('completed');
  });
});

const pgAvailable = await postgresAvailable();

describe.skipIf(!pgAvailable)('PostgreSQL: a coordinator that lost its claim', () => {
  it('a node frozen past its lease does not cancel the steps of the run another node took over', { timeout: 30_000 }, async () => {
    const schema = uniqueSchema('po_wf_claim');
    const store = { type: 'postgres' as const, connectionString: DATABASE_URL, schema, leaseMs: 600, pollIntervalMs: 100 };
    const o = await create({ workerPool: { minWorkers: 1, maxWorkers: 4 }, store });
    const child = spawn(process.execPath, [new URL('./fixtures/workflow-claim-node.mjs', import.meta.url).pathname], {
      env: { ...process.env, DATABASE_URL, SCHEMA: schema },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      // The frozen node, woken, finds it lost the run, and whatever it does about that is done.
      const settled = new Promise<void>((resolve) => child.stdout.on('data', (chunk: Buffer) => String(chunk).includes('"settled"') && resolve()));
      const release = deferred();
      const starts: string[] = [];
      o.on('task:started', (e) => starts.push(e.taskId));
      // This node has the only agent for the steps: step a runs here until the old node knows it lost the run.
      o.registerAgent({
        agentId: 'w',
        role: AgentRole.EXECUTOR,
        capabilities: ['w'],
        maxConcurrent: 2,
        handler: async (task) => {
          if (task.id === 'claimed-run/a') await release.promise;
          return task.id;
        },
      });
      await nextEvent(o, 'task:started', (e) => e.taskId === 'claimed-run/a');
      child.kill('SIGSTOP');
      // This node takes the run over once the frozen node's lease ran out.
      const workflow = defineWorkflow({ id: 'claimed', steps: { a: { capabilities: ['w'] }, b: { dependsOn: ['a'], capabilities: ['w'] } } });
      registerWorkflows(o, [workflow]);
      await nextEvent(o, 'task:started', (e) => e.taskId === 'claimed-run');
      const run = (await observeWorkflow(o, 'claimed-run'))!;
      child.kill('SIGCONT');
      await settled;
      // It asked for no cancel of the step this node's coordinator follows now.
      expect(await sql(`select cancel_requested from ${schema}.tasks where id = 'claimed-run/a'`)).toEqual([{ cancel_requested: null }]);
      release.resolve();
      expect(await run.result()).toMatchObject({ status: 'completed', results: { a: 'claimed-run/a', b: 'claimed-run/b' } });
      expect(starts.filter((id) => id === 'claimed-run/a')).toHaveLength(1);
    } finally {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      await o.shutdown({ graceful: false });
      await dropSchema(schema);
    }
  });
});
