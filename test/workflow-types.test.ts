import { describe, expectTypeOf, it } from 'vitest';
import {
  createParallelOrchestrator,
  defineWorkflow,
  registerWorkflows,
  runWorkflow,
  type StepContext,
  type Workflow,
  type WorkflowResult,
  type WorkflowRun,
} from '../src/index.js';

// Compile-time checks: `npm run typecheck` checks them; the functions are never called.
describe('workflow types', () => {
  it('type-checks', () => {
    expectTypeOf(inferred).toBeFunction();
    expectTypeOf(explicit).toBeFunction();
  });
});

function inferred(): void {
  {
    const workflow = defineWorkflow({
      id: 'typed',
      steps: {
        fetch: { run: () => ({ rows: 3 }) },
        count: { dependsOn: ['fetch'], run: () => 1 },
        // A run that takes ctx is typed in a later inference pass: its result is unknown unless the
        // workflow's type parameters are given (next test).
        later: { dependsOn: ['count'], run: (ctx) => ctx.step },
        remote: { capabilities: ['x'] },
      },
    });
    expectTypeOf(workflow).toEqualTypeOf<Workflow<unknown, { fetch: { rows: number }; count: number; remote: unknown; later: unknown }>>();
    const o = createParallelOrchestrator();
    const run = runWorkflow(o, workflow, null);
    expectTypeOf(run).toEqualTypeOf<WorkflowRun<{ fetch: { rows: number }; count: number; remote: unknown; later: unknown }>>();
    const viaMethod = o.runWorkflow(workflow, null);
    expectTypeOf(viaMethod).toEqualTypeOf(run);
    expectTypeOf<Awaited<ReturnType<typeof run.result>>['results']['fetch']>().toEqualTypeOf<{ rows: number } | undefined>();
    registerWorkflows(o, [workflow]);
  }
}

function explicit(): void {
  {
    const workflow = defineWorkflow<{ user: string }, { greet: string; shout: string }>({
      id: 'explicit',
      steps: {
        greet: { run: (ctx) => `hello ${ctx.input.user}` },
        shout: { dependsOn: ['greet'], run: (ctx: StepContext<{ user: string }, { greet: string; shout: string }>) => ctx.results.greet!.toUpperCase() },
      },
    });
    const o = createParallelOrchestrator();
    // @ts-expect-error the input must be a { user: string }
    runWorkflow(o, workflow, { name: 'x' });
    const run = runWorkflow(o, workflow, { user: 'ada' });
    expectTypeOf(run.result()).resolves.toEqualTypeOf<WorkflowResult<{ greet: string; shout: string }>>();
    registerWorkflows(o, [workflow]);
    // @ts-expect-error an unknown dependency is a type error too
    defineWorkflow<unknown, { a: number }>({ id: 'bad', steps: { a: { dependsOn: ['b'], run: () => 1 } } });
  }
}
