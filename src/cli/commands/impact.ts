import { Command } from 'commander';
import { isOrchestratorError } from '../../errors.js';
import { analyzeWorkflowImpact, changedPackagesSince, readWorkspace, type WorkflowImpact } from '../../index.js';

/** What `porch impact --json` prints. */
export interface ImpactReport extends WorkflowImpact {
  root: string;
  manager: 'npm' | 'pnpm';
  packageCount: number;
  /** With `--since`: the ref and the changed files outside every package. */
  since?: { ref: string; files: number; unmatched: string[] };
}

function render(report: ImpactReport): string {
  const lines = [`workspace ${report.root} (${report.manager}, ${report.packageCount} packages)`];
  if (report.since !== undefined) {
    lines.push(`changed since ${report.since.ref}: ${report.since.files} files${report.since.unmatched.length > 0 ? ` (${report.since.unmatched.length} outside every package)` : ''}`);
  }
  lines.push(`changed (${report.changedPackages.length}): ${report.changedPackages.join(', ') || '—'}`);
  lines.push(`affected (${report.affectedPackages.length}): ${report.affectedPackages.join(', ') || '—'}`);
  lines.push(`waves (${report.waves.length}):`);
  const width = String(report.waves.length).length;
  report.waves.forEach((wave, i) => lines.push(`  ${String(i + 1).padStart(width)}. ${wave.join('  ')}`));
  if (report.cycles.length === 0) {
    lines.push('cycles: none');
  } else {
    const affected = new Set(report.affectedPackages);
    lines.push(`cycles (${report.cycles.length}):`);
    for (const cycle of report.cycles) lines.push(`  ${cycle.join(' ↔ ')}${affected.has(cycle[0]!) ? ' (affected: these share a wave)' : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * `porch impact <dir> --changed <name>... [--since <git-ref>] [--json]`: reads the npm or pnpm
 * workspace under `dir` and prints the packages a change affects, the waves to process them in,
 * and the dependency cycles. `--since` adds the packages with files changed since the ref
 * (`git diff --name-only`). Errors (unknown package, not a workspace, git failing) go through
 * `command.error()` (exit code 1).
 */
export function impactCommand(): Command {
  const command = new Command('impact')
    .description('print the packages a change affects, in waves, and the dependency cycles of an npm or pnpm workspace')
    .argument('<dir>', 'the workspace root (with package.json "workspaces" or pnpm-workspace.yaml)')
    .option('--changed <names...>', 'names of the changed packages')
    .option('--since <git-ref>', 'also take as changed the packages with files changed since this git ref')
    .option('--json', 'print the analysis as JSON')
    .action(async (dir: string, options: { changed?: string[]; since?: string; json?: boolean }) => {
      try {
        if ((options.changed === undefined || options.changed.length === 0) && options.since === undefined) {
          command.error('error: give the changed packages (--changed <name>...) or a git ref (--since <git-ref>)', { exitCode: 2, code: 'porch.impact.noChanges' });
        }
        const workspace = await readWorkspace(dir);
        const changed = new Set(options.changed ?? []);
        let since: ImpactReport['since'];
        if (options.since !== undefined) {
          const diff = await changedPackagesSince(workspace, options.since);
          for (const name of diff.packages) changed.add(name);
          since = { ref: options.since, files: diff.files.length, unmatched: diff.unmatched };
        }
        const impact = analyzeWorkflowImpact({ changedPackages: [...changed], packages: workspace.packages });
        const report: ImpactReport = { root: workspace.root, manager: workspace.manager, packageCount: Object.keys(workspace.packages).length, ...impact };
        if (since !== undefined) report.since = since;
        const out = command.configureOutput().writeOut ?? ((text: string) => process.stdout.write(text));
        out(options.json === true ? `${JSON.stringify(report, null, 2)}\n` : render(report));
      } catch (error) {
        if (isOrchestratorError(error)) command.error(`error: ${error.message}`, { exitCode: 1, code: `porch.impact.${error.code}` });
        throw error;
      }
    });
  return command;
}
