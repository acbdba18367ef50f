import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Packs the built package as npm would publish it, installs the tarball into a fresh project and
// uses it from there: catches a wrong `files`, `exports` or `types`, and a thread entry that only
// resolves inside the repo.
const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const SLOW = 120_000;

let dir = '';
let app = '';
let tarball = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parallel-orchestrator-pack-'));
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root });
  const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
  tarball = join(dir, filename);

  app = join(dir, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  const install = ['install', tarball, '--no-audit', '--no-fund'];
  try {
    await run('npm', [...install, '--offline'], { cwd: app, timeout: SLOW / 2 });
  } catch {
    // The dependencies are not in the npm cache: let npm fetch what is missing.
    await run('npm', [...install, '--prefer-offline'], { cwd: app, timeout: SLOW / 2 });
  }
}, SLOW);

afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('holds only package.json, README.md, LICENSE, dist/ and docs/', async () => {
    const { stdout } = await run('tar', ['-tzf', tarball]);
    const files = stdout.trim().split('\n').map((entry) => entry.replace(/^package\//, ''));
    expect(files.filter((file) => !/^(package\.json|README\.md|LICENSE|dist\/.+|docs\/.+)$/.test(file))).toEqual([]);
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts', 'dist/workers/thread-main.js']));
    expect(files.some((file) => /^docs\/.+\.md$/.test(file))).toBe(true);
  });

  it('runs an in-process and a worker-thread task when installed in another project', async () => {
    await writeFile(join(app, 'double.mjs'), 'export default (task) => task.payload * 2;\n');
    await writeFile(
      join(app, 'index.mjs'),
      `import { createParallelOrchestrator, AgentRole, TaskPriority } from 'parallel-orchestrator';
const o = createParallelOrchestrator({ workerPool: { minWorkers: 1, maxWorkers: 2 } });
await o.start();
o.registerAgent({ agentId: 'upper', role: AgentRole.EXECUTOR, capabilities: ['upper'], handler: async (task) => task.payload.toUpperCase() });
o.registerAgent({ agentId: 'double', role: AgentRole.EXECUTOR, capabilities: ['double'], module: new URL('./double.mjs', import.meta.url) });
const inline = await o.submit({ type: 'upper', priority: TaskPriority.HIGH, capabilities: ['upper'], payload: 'packed' }).result();
const thread = await o.submit({ type: 'double', capabilities: ['double'], payload: 21 }).result();
console.log('inline: ' + inline.result);
console.log('thread: ' + thread.result + ' on ' + thread.workerId);
await o.shutdown();
`,
    );
    const { stdout, stderr } = await run(process.execPath, ['index.mjs'], { cwd: app, timeout: 30_000, killSignal: 'SIGKILL' });
    expect(stderr).toBe('');
    expect(stdout).toMatch(/^inline: PACKED\nthread: 42 on thread-\d+\n$/);
  });

  it(
    'typechecks a strict TypeScript consumer that has no @types/node, with types that flow from a typed agent',
    async () => {
      await writeFile(
        join(app, 'index.ts'),
        `import {
  createParallelOrchestrator,
  defineAgent,
  AgentRole,
  TaskPriority,
  type CompleteEvent,
  type ParallelOrchestrator,
  type Task,
  type TaskContext,
  type TaskObservable,
  type TaskSpec,
} from 'parallel-orchestrator';

const o: ParallelOrchestrator = createParallelOrchestrator({ workerPool: { maxWorkers: 2 }, taskQueue: { defaultPriority: TaskPriority.LOW } });
o.registerAgent({ agentId: 'upper', role: AgentRole.EXECUTOR, capabilities: ['upper'], handler: async (task) => String(task.payload).toUpperCase() });
const spec: TaskSpec<string> = { type: 'upper', priority: TaskPriority.HIGH, capabilities: ['upper'], payload: 'typed' };
const observable: TaskObservable<string> = o.submit<string>(spec);
export const done: Promise<CompleteEvent<string>> = observable.result();
// The types are real, not any: a priority outside 0..4 is rejected.
// @ts-expect-error
export const bad: TaskSpec = { type: 'x', priority: 7 };

// A handler typed once: registerAgent takes it without a cast, and its types reach submit().
const summarizer = defineAgent({
  agentId: 'summarizer',
  role: AgentRole.ANALYZER,
  capabilities: ['summarize'],
  handler: async (task: Task<{ text: string }>, ctx: TaskContext<{ done: number }>) => {
    ctx.progress({ done: 1 });
    return { summary: task.payload.text.slice(0, 5) };
  },
});
o.registerAgent(summarizer);
const typed = o.submit(summarizer.task({ type: 'summarize', payload: { text: 'hello world' } }));
typed.on('delta', (event) => {
  const done: number = event.data.done;
  return done;
});
export const summary: Promise<string> = typed.result().then((event) => event.result.summary);
// @ts-expect-error the payload must be a { text: string }
summarizer.task({ type: 'summarize', payload: { words: 3 } });
// @ts-expect-error a progress state of another shape is refused in the handler's context
defineAgent({ agentId: 'x', role: AgentRole.ANALYZER, capabilities: [], handler: async (_task: Task<number>, ctx: TaskContext<{ done: number }>) => ctx.progress({ percent: 1 }) });
`,
      );
      // No @types/node: the published declarations must not need it.
      await writeFile(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', types: [], target: 'esnext' }, files: ['index.ts'] }));
      const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, timeout: SLOW / 2 }).catch((error: { stdout?: string }) => error);
      expect(result.stdout).toBe('');
    },
    SLOW,
  );
});
