import { DependencyCycleError, InvalidArgumentError, UnknownPackageError } from '../errors.js';
import { cycleThrough, dependentsOf, isCycle, stronglyConnectedComponents, wavesOf } from './graph.js';
import { isRecord } from './util.js';

/** A package of a workspace, as package.json describes it (dependency lists may also be arrays of names). */
export interface PackageManifest {
  name?: string;
  version?: string;
  /** Its directory, relative to the workspace root. */
  path?: string;
  dependencies?: Readonly<Record<string, string>> | readonly string[];
  devDependencies?: Readonly<Record<string, string>> | readonly string[];
  peerDependencies?: Readonly<Record<string, string>> | readonly string[];
}

/** What `analyzeWorkflowImpact` takes. */
export interface ImpactInput {
  /** Names of the packages that changed. */
  changedPackages: readonly string[];
  /** Every package of the workspace, by name. */
  packages: Readonly<Record<string, PackageManifest>>;
}

/** What `analyzeWorkflowImpact` returns. */
export interface WorkflowImpact {
  /** The changed packages, sorted. */
  changedPackages: string[];
  /** The changed packages and everything that depends on them, transitively; sorted. */
  affectedPackages: string[];
  /** The affected packages, every one after its dependencies (the waves, one after the other). */
  executionOrder: string[];
  /**
   * The affected packages in waves: the first wave depends on no other affected package, every
   * other package comes in the wave after the last of its dependencies; the members of a cycle
   * share a wave. Sorted within a wave.
   */
  waves: string[][];
  /** Every dependency cycle of the workspace (each strongly connected component), its members sorted. */
  cycles: string[][];
}

const FIELDS = ['dependencies', 'devDependencies', 'peerDependencies'] as const;
const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The analysis and the graph behind it (for executeWorkflow). */
export interface ImpactGraph {
  impact: WorkflowImpact;
  /**
   * What each affected package waits for, by name: the affected packages its cycle (or itself)
   * depends on outside the cycle.
   */
  dependencies: ReadonlyMap<string, readonly string[]>;
  /** Cycles among the affected packages, each as a path in dependency order. */
  affectedCycles: string[][];
}

function namesOf(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) {
    if (!value.every((v) => typeof v === 'string')) throw new InvalidArgumentError(where, 'must be an array of package names or an object of name → version range');
    return value as string[];
  }
  if (isRecord(value)) return Object.keys(value);
  throw new InvalidArgumentError(where, 'must be an array of package names or an object of name → version range');
}

/** @internal The impact with the graph it was computed on. */
export function impactGraph(input: ImpactInput): ImpactGraph {
  if (!isRecord(input)) throw new InvalidArgumentError('input', 'must be an object with changedPackages and packages');
  const { changedPackages, packages } = input as { changedPackages: unknown; packages: unknown };
  if (!Array.isArray(changedPackages) || !changedPackages.every((p) => typeof p === 'string')) {
    throw new InvalidArgumentError('changedPackages', 'must be an array of package names');
  }
  if (!isRecord(packages)) throw new InvalidArgumentError('packages', 'must be an object of packages by name');
  const names = Object.keys(packages).sort(byName);
  const index = new Map(names.map((name, i) => [name, i]));
  const deps = names.map((name) => {
    const manifest = packages[name];
    if (!isRecord(manifest)) throw new InvalidArgumentError(`packages.${name}`, 'must be an object (a package.json, or { dependencies, devDependencies, peerDependencies })');
    const seen = new Set<number>();
    for (const field of FIELDS) {
      // Names that are not packages of the workspace (external dependencies) are ignored.
      for (const dep of namesOf(manifest[field], `packages.${name}.${field}`)) {
        const d = index.get(dep);
        if (d !== undefined) seen.add(d);
      }
    }
    return [...seen].sort((a, b) => a - b);
  });
  const changed = [...new Set(changedPackages as string[])].sort(byName);
  for (const name of changed) if (!index.has(name)) throw new UnknownPackageError(name, names);

  // Affected: the changed packages and their dependents, transitively.
  const dependents = dependentsOf(deps);
  const affected = new Uint8Array(names.length);
  const queue = changed.map((name) => index.get(name)!);
  for (const i of queue) affected[i] = 1;
  for (let head = 0; head < queue.length; head++) {
    for (const d of dependents[queue[head]!]!) {
      if (affected[d] === 0) {
        affected[d] = 1;
        queue.push(d);
      }
    }
  }

  const components = stronglyConnectedComponents(deps);
  const cycles = components
    .filter((c) => isCycle(c, deps))
    .map((c) => c.map((i) => names[i]!).sort(byName))
    .sort((a, b) => byName(a[0]!, b[0]!));

  // Waves over the affected packages (closed under dependents, so a cycle is wholly in or out).
  const local = names.map((_, i) => i).filter((i) => affected[i] === 1);
  const localOf = new Map(local.map((i, k) => [i, k]));
  const localDeps = local.map((i) => deps[i]!.filter((d) => affected[d] === 1).map((d) => localOf.get(d)!));
  const localComponents = stronglyConnectedComponents(localDeps);
  const { wave, count } = wavesOf(localDeps, localComponents);
  const waves: string[][] = Array.from({ length: count }, () => []);
  local.forEach((i, k) => waves[wave[k]!]!.push(names[i]!));
  for (const w of waves) w.sort(byName);

  const componentOf = new Int32Array(local.length);
  localComponents.forEach((c, ci) => c.forEach((k) => (componentOf[k] = ci)));
  // A cycle's members start together: each waits for what any member depends on outside the cycle.
  const outside = localComponents.map((component, ci) => {
    const set = new Set<number>();
    for (const k of component) for (const d of localDeps[k]!) if (componentOf[d] !== ci) set.add(d);
    return [...set].sort((a, b) => a - b).map((d) => names[local[d]!]!);
  });
  const dependencies = new Map<string, string[]>();
  local.forEach((i, k) => dependencies.set(names[i]!, outside[componentOf[k]!]!));
  const affectedCycles = localComponents.filter((c) => isCycle(c, localDeps)).map((c) => cycleThrough(c, localDeps).map((k) => names[local[k]!]!));

  return {
    impact: {
      changedPackages: changed,
      affectedPackages: local.map((i) => names[i]!),
      executionOrder: waves.flat(),
      waves,
      cycles,
    },
    dependencies,
    affectedCycles,
  };
}

/**
 * The packages a change affects and the order to process them in: the changed packages plus
 * everything that depends on them, transitively, through `dependencies`, `devDependencies` or
 * `peerDependencies` (names that are not packages of the workspace are ignored); a topological
 * order in waves, where the members of a dependency cycle share a wave; and every cycle.
 *
 * @throws UnknownPackageError for a changed package the workspace does not have,
 *   InvalidArgumentError naming a malformed field
 * @example
 * analyzeWorkflowImpact({ changedPackages: ['core'], packages: { core: {}, cli: { dependencies: { core: '^1' } } } });
 * // { changedPackages: ['core'], affectedPackages: ['cli', 'core'], executionOrder: ['core', 'cli'], waves: [['core'], ['cli']], cycles: [] }
 */
export function analyzeWorkflowImpact(input: ImpactInput): WorkflowImpact {
  return impactGraph(input).impact;
}

/** The typed error for the first cycle among affected packages (executeWorkflow's `failOnCycle`). */
export function cycleError(graph: ImpactGraph): DependencyCycleError | null {
  if (graph.affectedCycles.length === 0) return null;
  const affected = new Set(graph.impact.affectedPackages);
  const cycles = graph.impact.cycles.filter((c) => affected.has(c[0]!));
  return new DependencyCycleError(graph.affectedCycles[0]!, cycles, 'the affected packages');
}
