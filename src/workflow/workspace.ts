import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { glob } from 'tinyglobby';
import { parse as parseYaml } from 'yaml';
import { WorkspaceError } from '../errors.js';
import type { PackageManifest } from './impact.js';
import { isRecord } from './util.js';

/** A package of a workspace as `readWorkspace` found it. */
export interface WorkspacePackage extends PackageManifest {
  name: string;
  /** Its directory relative to the workspace root, with `/` separators (`''` for the root package). */
  path: string;
}

/** What `readWorkspace` returns. `packages` is in the shape `analyzeWorkflowImpact` takes. */
export interface Workspace {
  /** The workspace root, absolute. */
  root: string;
  /** Where the package globs came from: `pnpm-workspace.yaml` (pnpm) or package.json `workspaces` (npm, yarn). */
  manager: 'npm' | 'pnpm';
  /** The globs. */
  patterns: string[];
  /** The packages by name, sorted by name. */
  packages: Record<string, WorkspacePackage>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new WorkspaceError(path, `cannot be read (${(error as Error).message})`, { cause: error });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new WorkspaceError(path, `is not valid JSON (${(error as Error).message})`, { cause: error });
  }
}

function patternsOf(value: unknown, path: string, field: string): string[] {
  if (!Array.isArray(value) || !value.every((p) => typeof p === 'string')) throw new WorkspaceError(path, `${field} must be a list of globs`);
  return value as string[];
}

const toPosix = (path: string): string => path.split(sep).join('/');

/**
 * Reads a workspace: the globs of `pnpm-workspace.yaml` (`packages:`), or else of the root
 * package.json's `workspaces` (an array, or `{ packages: [...] }`), then every package.json they
 * match (outside node_modules; `!` globs exclude). Packages without a name are skipped.
 *
 * @throws (rejects) WorkspaceError naming the file: no workspace configuration, unreadable or
 *   invalid JSON/YAML, a malformed field, two packages with one name
 */
export async function readWorkspace(dir: string): Promise<Workspace> {
  const root = resolve(dir);
  if (!(await exists(root))) throw new WorkspaceError(root, 'does not exist');
  const pnpmFile = join(root, 'pnpm-workspace.yaml');
  const packageFile = join(root, 'package.json');
  let manager: Workspace['manager'];
  let patterns: string[];
  if (await exists(pnpmFile)) {
    let parsed: unknown;
    try {
      parsed = parseYaml(await readFile(pnpmFile, 'utf8'));
    } catch (error) {
      throw new WorkspaceError(pnpmFile, `is not valid YAML (${(error as Error).message})`, { cause: error });
    }
    if (!isRecord(parsed) || parsed.packages === undefined) throw new WorkspaceError(pnpmFile, 'has no packages: list of globs');
    manager = 'pnpm';
    patterns = patternsOf(parsed.packages, pnpmFile, 'packages');
  } else if (await exists(packageFile)) {
    const manifest = await readJson(packageFile);
    const workspaces = isRecord(manifest) ? manifest.workspaces : undefined;
    if (workspaces === undefined) throw new WorkspaceError(packageFile, 'has no "workspaces" field (and there is no pnpm-workspace.yaml): not a workspace root');
    manager = 'npm';
    patterns = patternsOf(isRecord(workspaces) ? workspaces.packages : workspaces, packageFile, 'workspaces');
  } else {
    throw new WorkspaceError(root, 'has neither pnpm-workspace.yaml nor package.json: not a workspace root');
  }

  const globs = patterns.map((pattern) => {
    const negated = pattern.startsWith('!');
    const body = (negated ? pattern.slice(1) : pattern).replace(/\/+$/, '').replace(/^\.\/?/, '');
    const file = body === '' ? 'package.json' : `${body}/package.json`;
    return negated ? `!${file}` : file;
  });
  const files = (await glob(globs, { cwd: root, ignore: ['**/node_modules/**'], expandDirectories: false, onlyFiles: true })).sort();

  const found = new Map<string, WorkspacePackage>();
  for (const file of files) {
    const path = join(root, file);
    const manifest = await readJson(path);
    if (!isRecord(manifest)) throw new WorkspaceError(path, 'is not a JSON object');
    if (manifest.name === undefined) continue;
    if (typeof manifest.name !== 'string' || manifest.name.length === 0) throw new WorkspaceError(path, 'has a name that is not a non-empty string');
    const directory = toPosix(relative(root, dirname(path)));
    const previous = found.get(manifest.name);
    if (previous !== undefined) throw new WorkspaceError(path, `declares package ${manifest.name}, already declared by ${previous.path === '' ? '.' : previous.path}/package.json`);
    const pkg: WorkspacePackage = { name: manifest.name, path: directory };
    if (typeof manifest.version === 'string') pkg.version = manifest.version;
    for (const field of ['dependencies', 'devDependencies', 'peerDependencies'] as const) {
      const value = manifest[field];
      if (value === undefined) continue;
      if (!isRecord(value)) throw new WorkspaceError(path, `${field} must be an object of name → version range`);
      pkg[field] = value as Record<string, string>;
    }
    found.set(manifest.name, pkg);
  }
  const packages: Record<string, WorkspacePackage> = {};
  for (const name of [...found.keys()].sort()) Object.defineProperty(packages, name, { value: found.get(name), enumerable: true, writable: true, configurable: true });
  return { root, manager, patterns, packages };
}

/** Runs git in `cwd`; resolves with its stdout. */
function git(args: readonly string[], cwd: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile('git', [...args], { cwd, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error !== null) reject(new WorkspaceError(cwd, `git ${args.join(' ')} failed: ${stderr.trim() || error.message}`, { cause: error }));
      else resolvePromise(stdout);
    });
  });
}

/**
 * The packages of `workspace` with files changed since `ref` (`git diff --name-only <ref>`: the
 * working tree against that commit), each file counted for the package whose directory holds it
 * most closely. Files outside every package are returned apart.
 *
 * @throws (rejects) WorkspaceError when git fails (not a repository, unknown ref)
 */
export async function changedPackagesSince(workspace: Workspace, ref: string): Promise<{ packages: string[]; files: string[]; unmatched: string[] }> {
  if (typeof ref !== 'string' || ref.length === 0 || ref.startsWith('-')) throw new WorkspaceError(workspace.root, `'${String(ref)}' is not a git ref`);
  // --relative: paths relative to the root, and only files under it.
  const out = await git(['diff', '--name-only', '--relative', ref, '--'], workspace.root);
  const files = out.split('\n').filter((line) => line.length > 0);
  const dirs = Object.values(workspace.packages)
    .filter((p) => p.path !== '')
    .sort((a, b) => b.path.length - a.path.length);
  const root = Object.values(workspace.packages).find((p) => p.path === '');
  const changed = new Set<string>();
  const unmatched: string[] = [];
  for (const file of files) {
    const owner = dirs.find((p) => file === p.path || file.startsWith(`${p.path}/`)) ?? root;
    if (owner === undefined) unmatched.push(file);
    else changed.add(owner.name);
  }
  return { packages: [...changed].sort(), files, unmatched };
}
