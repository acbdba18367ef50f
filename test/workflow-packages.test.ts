import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { impactCommand } from '../src/cli/commands/impact.js';
import {
  DependencyCycleError,
  UnknownPackageError,
  WORKFLOW_STAGES,
  WorkspaceError,
  analyzeWorkflowImpact,
  executeWorkflow,
  readWorkspace,
  verifyReceipt,
  type StageContext,
} from '../src/index.js';

const MONOREPO = fileURLToPath(new URL('./fixtures/monorepo/', import.meta.url));
const PNPM = fileURLToPath(new URL('./fixtures/pnpm-workspace/', import.meta.url));
const fx = (...names: string[]) => names.map((n) => `@fx/${n}`);

// Worked out by hand from the fixture's package.json files (see test/fixtures/monorepo): what a
// change to @fx/core affects, and in which waves.
const CORE_AFFECTED = fx(
  'api', 'auth', 'bench', 'cache', 'cli', 'core', 'dashboard', 'docs', 'events', 'http', 'metrics',
  'migrations', 'plugins-a', 'plugins-b', 'plugins-c', 'query', 'sdk', 'sdk-examples', 'store', 'test-utils', 'ui-kit', 'web',
);
const CORE_WAVES = [
  fx('core'),
  fx('events', 'http', 'metrics', 'test-utils'), // events, http: dependencies; metrics: peer; test-utils: dev
  fx('plugins-a', 'plugins-b', 'plugins-c', 'store', 'ui-kit'), // the plugins cycle hangs on events
  fx('auth', 'cache', 'migrations'),
  fx('query'),
  fx('api', 'bench'),
  fx('cli', 'sdk', 'web'),
  fx('dashboard', 'docs', 'sdk-examples'),
];
const CYCLES = [fx('legacy-x', 'legacy-y'), fx('plugins-a', 'plugins-b', 'plugins-c')];

describe('workspaces and impact analysis', () => {
  it('reads the 30 packages of an npm workspace (negated globs and node_modules left out)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'monorepo-'));
    try {
      cpSync(MONOREPO, dir, { recursive: true });
      // An installed copy of a workspace package is not a workspace package.
      mkdirSync(join(dir, 'packages/core/node_modules/@fx/utils'), { recursive: true });
      writeFileSync(join(dir, 'packages/core/node_modules/@fx/utils/package.json'), JSON.stringify({ name: '@fx/utils', version: '0.0.1' }));
      const workspace = await readWorkspace(dir);
      expect(workspace.manager).toBe('npm');
      expect(workspace.patterns).toEqual(['packages/*', 'apps/*', '!packages/ignored']);
      expect(Object.keys(workspace.packages)).toHaveLength(30);
      expect(workspace.packages['@fx/cli']).toMatchObject({ name: '@fx/cli', path: 'apps/cli', version: '1.0.0', dependencies: { '@fx/api': 'workspace:*', '@fx/plugins-a': 'workspace:*' } });
      expect(workspace.packages['@fx/core']!.path).toBe('packages/core');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a change to core affects its dependents, in the hand-checked waves, with every cycle reported', async () => {
    const { packages } = await readWorkspace(MONOREPO);
    const impact = analyzeWorkflowImpact({ changedPackages: ['@fx/core'], packages });
    expect(impact.changedPackages).toEqual(['@fx/core']);
    expect(impact.affectedPackages).toEqual(CORE_AFFECTED);
    expect(impact.waves).toEqual(CORE_WAVES);
    expect(impact.executionOrder).toEqual(CORE_WAVES.flat());
    expect(impact.cycles).toEqual(CYCLES);
  });

  it('a change at a leaf affects only it; externals are ignored; two changes merge', async () => {
    const { packages } = await readWorkspace(MONOREPO);
    expect(analyzeWorkflowImpact({ changedPackages: ['@fx/standalone'], packages }).waves).toEqual([fx('standalone')]);
    const impact = analyzeWorkflowImpact({ changedPackages: ['@fx/legacy-y', '@fx/sdk'], packages });
    expect(impact.waves).toEqual([fx('legacy-x', 'legacy-y', 'sdk'), fx('migrations', 'sdk-examples')]);
  });

  it('takes the seed shape too (arrays of names), and names an unknown package', () => {
    const packages = {
      '@unrdf/core': { dependencies: [] },
      '@unrdf/utils': { dependencies: ['@unrdf/core'] },
      '@unrdf/cli': { dependencies: ['@unrdf/core', '@unrdf/utils', 'commander'] },
    };
    expect(analyzeWorkflowImpact({ changedPackages: ['@unrdf/core'], packages }).waves).toEqual([['@unrdf/core'], ['@unrdf/utils'], ['@unrdf/cli']]);
    expect(() => analyzeWorkflowImpact({ changedPackages: ['@unrdf/nope'], packages })).toThrow(UnknownPackageError);
    expect(() => analyzeWorkflowImpact({ changedPackages: ['@unrdf/core'], packages: { a: { dependencies: 'b' } } as never })).toThrow('packages.a.dependencies must be an array');
  });

  it('reads a pnpm workspace (pnpm-workspace.yaml, ** and ! globs)', async () => {
    const workspace = await readWorkspace(PNPM);
    expect(workspace.manager).toBe('pnpm');
    expect(Object.keys(workspace.packages)).toEqual(['base', 'lint-rules', 'mid', 'top']);
    expect(analyzeWorkflowImpact({ changedPackages: ['base'], packages: workspace.packages }).waves).toEqual([['base'], ['lint-rules', 'mid'], ['top']]);
  });

  it('names what is wrong with a workspace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bad-workspace-'));
    try {
      await expect(readWorkspace(join(dir, 'missing'))).rejects.toThrow(/does not exist/);
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'root' }));
      await expect(readWorkspace(dir)).rejects.toThrow(/has no "workspaces" field/);
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ workspaces: { packages: ['p/*'] } }));
      for (const name of ['a', 'b']) {
        mkdirSync(join(dir, 'p', name), { recursive: true });
        writeFileSync(join(dir, 'p', name, 'package.json'), JSON.stringify({ name: 'same' }));
      }
      await expect(readWorkspace(dir)).rejects.toThrow(WorkspaceError);
      await expect(readWorkspace(dir)).rejects.toThrow('declares package same, already declared by p/a/package.json');
      writeFileSync(join(dir, 'p', 'b', 'package.json'), '{ not json');
      await expect(readWorkspace(dir)).rejects.toThrow(/p\/b\/package\.json: is not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('executeWorkflow', () => {
  it('runs the stages in order over the affected packages in dependency order, with a verifiable receipt', async () => {
    const { packages } = await readWorkspace(MONOREPO);
    const calls: string[] = [];
    const record = (ctx: StageContext) => {
      calls.push(`${ctx.stage}${ctx.packageName === null ? '' : ` ${ctx.packageName}`}`);
      return ctx.packageName === null ? ctx.packages.length : `${ctx.stage} ok`;
    };
    const result = await executeWorkflow({
      changedPackages: ['@fx/core'],
      packages,
      options: { customExecutors: Object.fromEntries(WORKFLOW_STAGES.map((s) => [s, record])) },
    });
    expect(result).toMatchObject({ status: 'completed', decision: 'allow', rollbackResult: null, affectedPackages: CORE_AFFECTED, executionOrder: CORE_WAVES.flat(), cycles: CYCLES });
    // Not parallel (the default): one package at a time, in execution order, stage after stage.
    const perPackage = (stage: string) => CORE_WAVES.flat().map((p) => `${stage} ${p}`);
    expect(calls).toEqual(['dependency_analysis', ...perPackage('admission'), ...perPackage('testing'), ...perPackage('building'), ...perPackage('validation'), 'integration', 'commit']);
    expect(result.stages.map((s) => `${s.name} ${s.status}`)).toEqual(WORKFLOW_STAGES.map((s) => `${s} completed`));
    expect(result.stages[0]!.packages).toEqual([expect.objectContaining({ name: 'dependency_analysis', status: 'completed', output: 22 })]);
    expect(result.stages[2]!.packages[0]).toMatchObject({ name: '@fx/core', status: 'completed', output: 'testing ok' });

    const receipt = result.receipt;
    expect(receipt.entries[0]).toMatchObject({ kind: 'workflow', status: 'started', previousHash: '0'.repeat(64) });
    expect(receipt.entries.at(-1)).toMatchObject({ kind: 'decision', status: 'allow', detail: { status: 'completed' } });
    // 3 once-stages + 4 stages × 22 packages + 4 stage gates, between the first and last entries.
    expect(receipt.entries).toHaveLength(2 + 3 + 4 * 22 + 4);
    expect(verifyReceipt(receipt)).toEqual({ valid: true, entries: receipt.entries.length });
  });

  it('verifyReceipt catches a modified, removed or reordered entry', async () => {
    const { receipt } = await executeWorkflow({ changedPackages: ['@fx/sdk'], packages: (await readWorkspace(MONOREPO)).packages });
    const copy = () => structuredClone(receipt);
    const modified = copy();
    modified.entries[3]!.status = 'completed-ish';
    expect(verifyReceipt(modified)).toEqual({ valid: false, index: 3, reason: 'its content does not match its hash: the entry was modified' });
    const rehashedAlone = copy();
    rehashedAlone.entries[2]!.detail = { forged: true };
    expect(verifyReceipt(rehashedAlone)).toMatchObject({ valid: false, index: 2 });
    const removed = copy();
    removed.entries.splice(4, 1);
    expect(verifyReceipt(removed)).toMatchObject({ valid: false, index: 4 });
    const truncated = copy();
    truncated.entries.pop();
    expect(verifyReceipt(truncated)).toMatchObject({ valid: false, reason: expect.stringContaining('removed from the end') });
    const swapped = copy();
    [swapped.entries[1], swapped.entries[2]] = [swapped.entries[2]!, swapped.entries[1]!];
    expect(verifyReceipt(swapped)).toMatchObject({ valid: false, index: 1 });
    expect(verifyReceipt(copy()).valid).toBe(true);
  });

  it('parallel: a stage runs each wave at once, the cycle together', async () => {
    const { packages } = await readWorkspace(MONOREPO);
    let running = 0;
    const peaks: number[] = [];
    const seen: string[] = [];
    const gates = new Map<string, { count: number; release: () => void; promise: Promise<void> }>();
    const waveOf = new Map(CORE_WAVES.flatMap((wave, w) => wave.map((p) => [p, w] as const)));
    for (const [w, wave] of CORE_WAVES.entries()) {
      let release!: () => void;
      const promise = new Promise<void>((resolve) => (release = resolve));
      gates.set(String(w), { count: wave.length, release, promise });
    }
    const result = await executeWorkflow({
      changedPackages: ['@fx/core'],
      packages,
      options: {
        parallel: true,
        customExecutors: {
          testing: async (ctx) => {
            const gate = gates.get(String(waveOf.get(ctx.packageName!)))!;
            running++;
            seen.push(ctx.packageName!);
            if (--gate.count === 0) {
              peaks.push(running);
              gate.release();
            }
            // Held until every package of the wave runs: proves they run at once.
            await gate.promise;
            running--;
          },
        },
      },
    });
    expect(result.status).toBe('completed');
    expect(peaks).toEqual(CORE_WAVES.map((wave) => wave.length));
    // Each wave started only after the one before had ended.
    for (let k = 1; k < seen.length; k++) expect(waveOf.get(seen[k]!)!).toBeGreaterThanOrEqual(waveOf.get(seen[k - 1]!)!);
  });

  it('a failing stage rolls back what completed, denies, and reports compensation failures', async () => {
    const { packages } = await readWorkspace(MONOREPO);
    const undone: string[] = [];
    const result = await executeWorkflow({
      changedPackages: ['@fx/query'],
      packages,
      options: {
        customExecutors: {
          building: {
            execute: (ctx) => {
              if (ctx.packageName === '@fx/api') throw new Error('tsc: 3 errors');
              return `built ${ctx.packageName}`;
            },
            compensate: (ctx) => {
              undone.push(`${ctx.packageName} (${String(ctx.output)})`);
              if (ctx.packageName === '@fx/bench') throw new Error('cannot delete artifact');
            },
          },
        },
      },
    });
    // query → api → {cli, sdk, web} …: api fails in building, after query (wave 0) was built.
    expect(result.status).toBe('rolled_back');
    expect(result.decision).toBe('deny');
    // bench comes after api in the order: never built, never undone.
    expect(undone).toEqual(['@fx/query (built @fx/query)']);
    expect(result.rollbackResult).toMatchObject({ rolledBack: true, failedStage: 'building', failedPackage: '@fx/api', compensated: [{ stage: 'building', package: '@fx/query' }], failures: [] });
    expect(result.stages.find((s) => s.name === 'building')).toMatchObject({ status: 'failed' });
    expect(result.stages.find((s) => s.name === 'validation')).toMatchObject({ status: 'not-run' });
    expect(verifyReceipt(result.receipt).valid).toBe(true);
    expect(result.receipt.entries.some((e) => e.kind === 'package' && e.package === '@fx/api' && e.status === 'failed')).toBe(true);

    const failing = await executeWorkflow({
      changedPackages: ['@fx/api'],
      packages,
      options: {
        parallel: true,
        customExecutors: {
          testing: { execute: () => 'tested', compensate: (ctx) => { if (ctx.packageName === '@fx/api') throw new Error('cannot untest'); } },
          building: () => { throw new Error('disk full'); },
        },
      },
    });
    expect(failing.status).toBe('failed');
    expect(failing.rollbackResult?.rolledBack).toBe(false);
    expect(failing.stages.map((s) => s.status)).toEqual(['completed', 'completed', 'rolled-back', 'failed', 'not-run', 'not-run', 'not-run']);
    expect(failing.rollbackResult?.failures).toEqual([{ stage: 'testing', package: '@fx/api', error: { name: 'Error', message: 'cannot untest', code: 'TASK_FAILED' } }]);
  });

  it('failOnCycle refuses a change that reaches a cycle, naming its members', async () => {
    const { packages } = await readWorkspace(MONOREPO);
    const error = await executeWorkflow({ changedPackages: ['@fx/events'], packages, options: { failOnCycle: true } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DependencyCycleError);
    expect((error as DependencyCycleError).cycles).toEqual([fx('plugins-a', 'plugins-b', 'plugins-c')]);
    expect((error as DependencyCycleError).message).toBe('the affected packages has a dependency cycle: @fx/plugins-a → @fx/plugins-b → @fx/plugins-c → @fx/plugins-a');
    // A change that does not reach it runs.
    expect((await executeWorkflow({ changedPackages: ['@fx/http'], packages, options: { failOnCycle: true } })).status).toBe('completed');
  });

  it('dryRun calls no executor; skipStages skips; timeouts fail a stage', async () => {
    const { packages } = await readWorkspace(MONOREPO);
    let called = 0;
    const dry = await executeWorkflow({ changedPackages: ['@fx/sdk'], packages, options: { dryRun: true, skipStages: ['integration'], customExecutors: { testing: () => called++ } } });
    expect(called).toBe(0);
    expect(dry.decision).toBe('allow');
    expect(dry.stages.find((s) => s.name === 'integration')).toEqual({ name: 'integration', status: 'skipped', duration: null, packages: [] });
    expect(dry.stages.find((s) => s.name === 'testing')!.packages.map((p) => p.status)).toEqual(['dry-run', 'dry-run']);

    const slow = await executeWorkflow({
      changedPackages: ['@fx/sdk-examples'],
      packages,
      options: { timeouts: { testing: 20 }, customExecutors: { testing: (ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)) } },
    });
    expect(slow.status).toBe('rolled_back');
    expect(slow.stages.find((s) => s.name === 'testing')!.packages[0]).toMatchObject({ status: 'failed', error: { code: 'TASK_TIMEOUT' } });
    await expect(executeWorkflow({ changedPackages: ['@fx/sdk'], packages, options: { skipStages: ['deploying' as never] } })).rejects.toThrow('options.skipStages must be an array of stages');
  });

  it('no change, or every stage skipped, is allowed with nothing run', async () => {
    const none = await executeWorkflow({ changedPackages: [], packages: { a: {} } });
    expect(none).toMatchObject({ status: 'completed', decision: 'allow', affectedPackages: [] });
    const skipped = await executeWorkflow({ changedPackages: ['a'], packages: { a: {} }, options: { skipStages: [...WORKFLOW_STAGES] } });
    expect(skipped).toMatchObject({ status: 'completed', decision: 'allow', rollbackResult: null });
    expect(skipped.stages.every((s) => s.status === 'skipped')).toBe(true);
    expect(verifyReceipt(skipped.receipt).valid).toBe(true);
  });

  it('a signal cancels it', async () => {
    const { packages } = await readWorkspace(MONOREPO);
    const controller = new AbortController();
    const result = await executeWorkflow({
      changedPackages: ['@fx/sdk'],
      packages,
      options: {
        signal: controller.signal,
        customExecutors: {
          testing: (ctx) =>
            new Promise((_resolve, reject) => {
              ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
              controller.abort('enough');
            }),
        },
      },
    });
    expect(result).toMatchObject({ status: 'cancelled', decision: 'deny' });
  });
});

describe('porch impact', () => {
  /** Runs `porch impact ...args` through a program holding just this command. */
  async function porch(...args: string[]): Promise<{ out: string; err: string; code: number }> {
    let out = '';
    let err = '';
    const command = impactCommand().exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
    const program = new Command('porch').exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) }).addCommand(command);
    try {
      await program.parseAsync(['impact', ...args], { from: 'user' });
      return { out, err, code: 0 };
    } catch (error) {
      if (error instanceof CommanderError) return { out, err, code: error.exitCode };
      throw error;
    }
  }

  it('prints the affected packages, the waves and the cycles', async () => {
    const { out, code } = await porch(MONOREPO, '--changed', '@fx/cache', '@fx/metrics');
    expect(code).toBe(0);
    expect(out).toContain('(npm, 30 packages)');
    expect(out).toContain('changed (2): @fx/cache, @fx/metrics');
    expect(out).toContain('affected (11): @fx/api, @fx/bench, @fx/cache, @fx/cli, @fx/dashboard, @fx/docs, @fx/metrics, @fx/query, @fx/sdk, @fx/sdk-examples, @fx/web');
    expect(out).toContain('waves (5):\n  1. @fx/cache  @fx/metrics\n  2. @fx/query\n  3. @fx/api  @fx/bench\n  4. @fx/cli  @fx/sdk  @fx/web\n  5. @fx/dashboard  @fx/docs  @fx/sdk-examples\n');
    expect(out).toContain('cycles (2):\n  @fx/legacy-x ↔ @fx/legacy-y\n  @fx/plugins-a ↔ @fx/plugins-b ↔ @fx/plugins-c\n');
  });

  it('--json prints the analysis', async () => {
    const { out } = await porch(MONOREPO, '--changed', '@fx/core', '--json');
    const report = JSON.parse(out) as { affectedPackages: string[]; waves: string[][]; cycles: string[][]; manager: string };
    expect(report).toMatchObject({ manager: 'npm', affectedPackages: CORE_AFFECTED, waves: CORE_WAVES, cycles: CYCLES });
  });

  it('errors name the problem and exit with 1; a missing change is a usage error (exit 2)', async () => {
    expect(await porch(MONOREPO, '--changed', '@fx/nope')).toMatchObject({ code: 1, err: expect.stringContaining("'@fx/nope' is not a package of the workspace") });
    expect(await porch(MONOREPO)).toMatchObject({ code: 2, err: expect.stringContaining('give the changed packages') });
    expect(await porch(join(MONOREPO, 'apps'), '--changed', 'x')).toMatchObject({ code: 1, err: expect.stringContaining('not a workspace root') });
  });

  describe('--since', () => {
    let dir = '';
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'impact-git-'));
      cpSync(MONOREPO, dir, { recursive: true });
      const git = (...args: string[]) => execFileSync('git', ['-c', 'user.email=t@example.com', '-c', 'user.name=t', '-c', 'commit.gpgsign=false', ...args], { cwd: dir, stdio: 'pipe' });
      git('init', '-q');
      git('add', '.');
      git('commit', '-qm', 'fixture');
      writeFileSync(join(dir, 'packages/cache/src/index.js'), "export const name = '@fx/cache'; // changed\n");
      writeFileSync(join(dir, 'README.md'), 'root file\n');
      git('add', 'README.md');
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('takes the changed packages from git diff', async () => {
      const { out, code, err } = await porch(dir, '--since', 'HEAD', '--json');
      expect(code, err).toBe(0);
      const report = JSON.parse(out) as { changedPackages: string[]; affectedPackages: string[]; since: unknown };
      expect(report.changedPackages).toEqual(['@fx/cache']);
      expect(report.since).toEqual({ ref: 'HEAD', files: 2, unmatched: ['README.md'] });
      expect(report.affectedPackages).toEqual(fx('api', 'bench', 'cache', 'cli', 'dashboard', 'docs', 'query', 'sdk', 'sdk-examples', 'web'));
      expect(await porch(dir, '--since', 'no-such-ref')).toMatchObject({ code: 1, err: expect.stringContaining('git diff --name-only --relative no-such-ref -- failed') });
    });
  });
});
