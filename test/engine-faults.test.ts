import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  AgentRole,
  InvalidArgumentError,
  NoCapableAgentError,
  TaskPriority,
  TaskStatus,
  createParallelOrchestrator,
  type ParallelOrchestrator,
} from '../src/index.js';
import { deferred, nextEvent, settle, useOrchestrators } from './helpers.js';

// Regression tests for faults a robustness review and a new-user trial found in the engine.
const make = useOrchestrators();
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

describe('taskQueue.maxSize', () => {
  it('takes Infinity, its documented default', async () => {
    const o = await make({ taskQueue: { maxSize: Infinity } });
    expect(o.getStats().taskQueue.maxSize).toBe(Infinity);
  });
});

describe('shutdown() of a handler that never settles', () => {
  it('leaves running and workerPool.busy at zero', async () => {
    const o = await make();
    const started = deferred();
    o.registerAgent({
      agentId: 'stubborn',
      role: AgentRole.EXECUTOR,
      capabilities: ['x'],
      // Ignores its signal and never returns.
      handler: () => {
        started.resolve();
        return new Promise(() => {});
      },
    });
    o.submit({ type: 'x', capabilities: ['x'] });
    await started.promise;
    expect(o.getStats().running).toBe(1);
    await o.shutdown({ graceful: false });
    const stats = o.getStats();
    expect({ running: stats.running, busy: stats.workerPool.busy, active: stats.agentRouter.agentStats[0]!.active }).toEqual({ running: 0, busy: 0, active: 0 });
  });
});

describe('a listener that returns a rejecting promise', () => {
  it('is reported as listener:error, not left as an unhandled rejection', async () => {
    const o = await make();
    const reported = nextEvent(o, 'listener:error');
    o.on('task:submitted', async () => {
      throw new Error('async listener failed');
    });
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: [], handler: async () => 1 });
    o.submit({ type: 't' });
    const { event, error } = await reported;
    expect(event).toBe('task:submitted');
    expect((error as Error).message).toBe('async listener failed');
  });

  it('is reported as listener:error when added with once(), on the orchestrator and on a task, and when added after the task ended', async () => {
    const o = await make();
    const reports: string[] = [];
    const allReported = new Promise<void>((resolve) =>
      o.on('listener:error', ({ event, error }) => {
        reports.push(`${String(event)}: ${(error as Error).message}`);
        if (reports.length === 3) resolve();
      }),
    );
    o.once('task:completed', async () => {
      throw new Error('once on the orchestrator');
    });
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: [], handler: async () => 1 });
    const task = o.submit({ type: 't' });
    task.once('complete', async () => {
      throw new Error('once on the task');
    });
    await task.result();
    task.on('complete', async () => {
      throw new Error('after the end');
    });
    await allReported;
    expect(reports.sort()).toEqual(['complete: after the end', 'complete: once on the task', 'task:completed: once on the orchestrator']);
  });
});

describe('method arguments', () => {
  it('shutdown() options are validated, naming the option', async () => {
    const o = await make();
    await expect(o.shutdown({ gracefull: false } as never)).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'shutdown.gracefull' });
    await expect(o.shutdown({ timeout: '1s' } as never)).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'shutdown.timeout' });
    // The orchestrator still works after refusing them.
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: [], handler: async () => 'ok' });
    expect((await o.submit({ type: 't' }).result()).result).toBe('ok');
  });

  it('cancel() refuses an id that is not a string with InvalidArgumentError', async () => {
    const o = await make();
    await expect(o.cancel(123 as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(o.cancel(123 as never)).rejects.toMatchObject({ field: 'taskId' });
  });

  it('audit() refuses unknown keys and wrong types, naming the field', async () => {
    const o = await make();
    await expect(o.audit({ limt: 5 } as never)).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'query.limt' });
    await expect(o.audit({ limit: '5' } as never)).rejects.toMatchObject({ field: 'query.limit' });
    await expect(o.audit({ type: 'finished' } as never)).rejects.toMatchObject({ field: 'query.type' });
    await expect(o.audit({ since: -1 })).rejects.toMatchObject({ field: 'query.since' });
    await expect(o.listTasks({ status: 'done' } as never)).rejects.toMatchObject({ field: 'query.status' });
  });

  it('option errors use our wording, never the validator’s', () => {
    const bad = [
      { taskQueue: { retry: { factor: Number.NaN } } },
      { taskQueue: { retry: { jitter: Number.NaN } } },
      { taskQueue: { maxSize: Number.NaN } },
      { workerPool: { stuckGrace: Number.NaN } },
      { streaming: { snapshotInterval: 1.5 } },
    ];
    for (const options of bad) {
      let message = '';
      try {
        createParallelOrchestrator(options as never);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/ must be /);
      expect(message).not.toMatch(/Invalid input/);
    }
  });
});

describe('a task submitted before start()', () => {
  it('waits for an agent registered after start(), as documented', async () => {
    const o = await make({}, { start: false });
    const task = o.submit({ type: 'early', capabilities: ['late'] });
    await o.start();
    // A turn of the event loop: the servability check of a running orchestrator would have failed it by now.
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(task.state).toBe(TaskStatus.QUEUED);
    o.registerAgent({ agentId: 'late', role: AgentRole.EXECUTOR, capabilities: ['late'], handler: async () => 'served' });
    expect((await task.result()).result).toBe('served');
  });

  it('once running, a task no agent could serve still fails fast', async () => {
    const o = await make();
    const outcome = await settle(o.submit({ type: 'lonely', capabilities: ['nobody'] }).result());
    expect(outcome.ok ? null : outcome.error).toBeInstanceOf(NoCapableAgentError);
  });
});

describe('the submitter’s async context', () => {
  it('is the context of the handler, even when another task’s completion dispatches it', async () => {
    const o = await make({ workerPool: { minWorkers: 1, maxWorkers: 1 } });
    const requests = new AsyncLocalStorage<string>();
    o.registerAgent({ agentId: 'ctx', role: AgentRole.EXECUTOR, capabilities: ['c'], handler: async () => requests.getStore() });
    // One worker: the second task starts from the first one's completion, in no context of its own.
    const first = requests.run('request-1', () => o.submit({ type: 'c', capabilities: ['c'] }));
    const second = requests.run('request-2', () => o.submit({ type: 'c', capabilities: ['c'] }));
    const outside = o.submit({ type: 'c', capabilities: ['c'] });
    expect([(await first.result()).result, (await second.result()).result, (await outside.result()).result]).toEqual(['request-1', 'request-2', undefined]);
  });

  it('runs a task submitted in no context in an empty one, also after a handler there called enterWith()', async () => {
    const o = await make();
    const requests = new AsyncLocalStorage<string>();
    o.registerAgent({
      agentId: 'ctx',
      role: AgentRole.EXECUTOR,
      capabilities: ['c'],
      handler: async (task) => {
        const seen = requests.getStore();
        if (task.payload === 'enter') requests.enterWith('entered');
        return seen;
      },
    });
    const batch = async (request: string, payload: string) => {
      // The dispatch pass runs in the context of the first submit of its tick: here a request's.
      const tasks = [requests.run(request, () => o.submit({ type: 'c', capabilities: ['c'] })), o.submit({ type: 'c', capabilities: ['c'], payload })];
      return Promise.all(tasks.map(async (task) => (await task.result()).result));
    };
    expect(await batch('request-1', 'enter')).toEqual(['request-1', undefined]);
    expect(await batch('request-2', 'enter')).toEqual(['request-2', undefined]);
    expect(await batch('request-3', 'look')).toEqual(['request-3', undefined]);
    expect(requests.getStore()).toBeUndefined();
  });
});

describe('routing', () => {
  it('has no side effects on a lane head it passes over: its round-robin cursor stays, one decision per task started', async () => {
    const o = await make({ workerPool: { assignmentStrategy: 'round-robin' } }, { start: false });
    for (const agentId of ['first', 'second']) {
      o.registerAgent({ agentId, role: AgentRole.EXECUTOR, capabilities: ['r', 's'], maxConcurrent: 5, handler: async (_task, ctx) => ctx.agentId });
    }
    // Two lanes: the NORMAL ['r'] head is looked at first, then passed over for the HIGH ['s'] one.
    const normal = o.submit({ type: 'r', capabilities: ['r'], priority: TaskPriority.NORMAL });
    const high = o.submit({ type: 's', capabilities: ['s'], priority: TaskPriority.HIGH });
    await o.start();
    // Each signature's first task goes to the first agent of its round.
    expect([(await high.result()).agentId, (await normal.result()).agentId]).toEqual(['first', 'first']);
    expect(o.getStats().agentRouter.routingDecisions).toBe(2);
  });
});

describe('what an observable exposes', () => {
  it('reaches no engine: no property leads to an object that can unregister agents', async () => {
    const o = await make();
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: [], handler: async () => 1 });
    const task = o.submit({ type: 't' });
    await task.result();
    expect('host' in task).toBe(false);
    const seen = new Set<unknown>();
    const reachesEngine = (value: unknown, depth: number): boolean => {
      if (typeof value !== 'object' || value === null || seen.has(value) || depth > 4) return false;
      seen.add(value);
      if (typeof (value as { unregisterAgent?: unknown }).unregisterAgent === 'function') return true;
      return Object.values(value).some((child) => reachesEngine(child, depth + 1));
    };
    expect(reachesEngine(task, 0)).toBe(false);
  });
});

describe('generated task ids', () => {
  it('differ between orchestrators by a prefix of at least 64 random bits', async () => {
    const ids = [];
    for (let i = 0; i < 2; i++) {
      const o = await make();
      ids.push(o.submit({ type: 't', waitForAgent: true }).taskId);
    }
    const prefixes = ids.map((id) => id.slice(0, id.lastIndexOf('-')));
    expect(prefixes[0]).not.toBe(prefixes[1]);
    for (const prefix of prefixes) expect(prefix).toMatch(/^[\w-]{12,}$/);
  });
});

describe('automatic checkpointing of a state JSON cannot carry', () => {
  it('fails the handler’s progress call, with or without delta compression; the process lives', async () => {
    for (const enableDeltaCompression of [true, false]) {
      const o: ParallelOrchestrator = await make({ streaming: { enableDeltaCompression }, checkpointing: { enabled: true, interval: 1 } });
      o.registerAgent({
        agentId: 'cyclic',
        role: AgentRole.EXECUTOR,
        capabilities: [],
        handler: async (_task, ctx) => {
          const state: Record<string, unknown> = { step: 1 };
          state.self = state;
          try {
            ctx.progress(state);
            return 'accepted';
          } catch (error) {
            return (error as Error).name;
          }
        },
      });
      expect((await o.submit({ type: 'c' }).result()).result).toBe('TypeError');
    }
  });
});

describe('an idle orchestrator', () => {
  it('does not keep the process alive: open circuits, idle workers and the event stream hold nothing', async () => {
    const child = spawn(process.execPath, [fixture('idle-exit.mjs')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    // A watchdog far shorter than any timer the fixture arms (10 minutes): exiting before it means nothing held the process.
    const watchdog = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    clearTimeout(watchdog);
    expect({ code, signal, output }).toEqual({ code: 0, signal: null, output: 'circuit open; idle\n' });
  });
});
