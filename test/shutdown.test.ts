import { describe, expect, it } from 'vitest';
import { AgentRole, OrchestratorShutdownError, TaskCancelledError, TaskStatus } from '../src/index.js';
import { deferred, eventOf, nextEvent, runFixture, settle, useOrchestrators, type ChildRun } from './helpers.js';

const make = useOrchestrators();

function report(run: ChildRun): Record<string, unknown> {
  expect(run.killed, `the child did not exit on its own; stderr: ${run.stderr}`).toBe(false);
  expect(run.code, run.stderr).toBe(0);
  const lines = run.stdout.trim().split('\n');
  return JSON.parse(lines.at(-1)!) as Record<string, unknown>;
}

describe('shutdown in a child process', () => {
  it('graceful: drains queued and running tasks, and the process exits by itself', async () => {
    const out = report(await runFixture('shutdown-graceful.mjs'));
    expect(out.runningAtShutdown).toBe(2);
    expect(out.queuedAtShutdown).toBe(4);
    expect(out.finished).toEqual(Array.from({ length: 6 }, (_, i) => ({ taskId: `task-${i}`, result: i * 10 })));
    expect(out.cancelled).toEqual([]);
    expect(out.shutdown).toMatchObject({ graceful: true, cancelled: 0 });
    expect(out.afterShutdown).toBe('SHUTDOWN');
  });

  it('forced: aborts running handlers, cancels queued tasks, and the process exits by itself', async () => {
    const out = report(await runFixture('shutdown-forced.mjs'));
    expect(out.runningAtShutdown).toBe(2);
    expect(out.queuedAtShutdown).toBe(3);
    expect(out.handlersSaw).toEqual([
      { taskId: 'task-0', aborted: true, reason: 'TASK_CANCELLED' },
      { taskId: 'task-1', aborted: true, reason: 'TASK_CANCELLED' },
    ]);
    expect(out.finished).toEqual([]);
    const cancelled = out.cancelled as { taskId: string; reason: string }[];
    expect(cancelled.map((c) => c.taskId).sort()).toEqual(['task-0', 'task-1', 'task-2', 'task-3', 'task-4']);
    for (const { reason } of cancelled) expect(reason).toMatch(/shut down/);
    expect(out.shutdown).toMatchObject({ graceful: false, cancelled: 5 });
  });
});

describe('shutdown in process', () => {
  it('graceful with a timeout cancels what is still running when it expires', async () => {
    const o = await make();
    const saw = deferred<boolean>();
    o.registerAgent({
      agentId: 'stubborn',
      role: AgentRole.EXECUTOR,
      capabilities: ['w'],
      handler: (_task, ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            saw.resolve(ctx.signal.aborted);
            resolve('too late');
          });
        }),
    });
    const obs = o.submit({ type: 'forever', capabilities: ['w'] });
    await eventOf(obs, 'start');
    const shutdownEvent = nextEvent(o, 'orchestrator:shutdown');
    await o.shutdown({ graceful: true, timeout: 30 });
    expect(await saw.promise).toBe(true);
    expect(obs.state).toBe(TaskStatus.CANCELLED);
    await expect(obs.result()).rejects.toBeInstanceOf(TaskCancelledError);
    expect(await shutdownEvent).toMatchObject({ graceful: true, cancelled: 1 });
  });

  it('refuses new work afterwards and is idempotent', async () => {
    const o = await make({ taskQueue: { maxSize: 1 } });
    const gate = deferred();
    o.registerAgent({ agentId: 'a', role: AgentRole.EXECUTOR, capabilities: ['w'], handler: () => gate.promise });
    await eventOf(o.submit({ type: 'blocker', capabilities: ['w'] }), 'start');
    o.submit({ type: 'queued', capabilities: ['w'] });
    // Waiting for room when the shutdown begins: rejected rather than left hanging.
    const waiting = settle(o.submitAsync({ type: 'waiting', capabilities: ['w'] }));

    const first = o.shutdown({ graceful: false });
    const second = o.shutdown();
    await Promise.all([first, second]);
    const outcome = await waiting;
    expect(!outcome.ok && outcome.error).toBeInstanceOf(OrchestratorShutdownError);
    expect(() => o.submit({ type: 'late', capabilities: ['w'] })).toThrow(OrchestratorShutdownError);
    await expect(o.submitAsync({ type: 'late', capabilities: ['w'] })).rejects.toBeInstanceOf(OrchestratorShutdownError);
    expect(o.getStats()).toMatchObject({ totalSubmitted: 2, totalCancelled: 2 });
    gate.resolve();
  });
});
