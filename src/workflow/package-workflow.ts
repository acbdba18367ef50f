import { randomUUID } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';
import { createParallelOrchestrator } from '../orchestrator/parallel-orchestrator.js'; // the public factory (index.ts re-exports it)
import { defineWorkflow } from './definition.js';
import { runWorkflow } from './host.js';
import { cycleError, impactGraph, type ImpactInput, type PackageManifest, type WorkflowImpact } from './impact.js';
import { ReceiptBuilder, type Receipt } from './receipt.js';
import type { StepDefinition, StepOutcome, WorkflowErrorInfo, WorkflowResult } from './types.js';
import { errorInfo, isRecord } from './util.js';

/** The stages of a package workflow, in the order they run. */
export const WORKFLOW_STAGES = Object.freeze(['dependency_analysis', 'admission', 'testing', 'building', 'validation', 'integration', 'commit'] as const);
export type StageName = (typeof WORKFLOW_STAGES)[number];

/** Stages that run once for the whole change; the others run once per affected package. */
const ONCE = new Set<StageName>(['dependency_analysis', 'integration', 'commit']);

/** What a stage executor receives. */
export interface StageContext {
  stage: StageName;
  /** The package (per-package stages), or null (dependency_analysis, integration, commit). */
  packageName: string | null;
  /** Its manifest, or null. */
  package: PackageManifest | null;
  /** The affected packages, in execution order. */
  packages: readonly string[];
  impact: WorkflowImpact;
  /** Aborted when the stage times out (`timeouts`), the workflow fails elsewhere, or it is cancelled (`signal`). */
  signal: AbortSignal;
}

/** Does a stage (for one package, or once); throw to fail it. What it returns is its `output`. */
export type StageExecutor = (ctx: StageContext) => unknown;

/** Undoes what a stage did for a package, when the workflow rolls back after it completed. */
export type StageCompensator = (ctx: StageContext & { output: unknown }) => unknown;

/** Options of `executeWorkflow`. */
export interface ExecuteWorkflowOptions {
  /**
   * Run the packages of a stage in waves, every package once its dependencies passed the stage
   * (the members of a cycle together); false: one package at a time in execution order. @default false
   */
  parallel?: boolean;
  /** Call no executor: report what would run. @default false */
  dryRun?: boolean;
  /** Stages not to run. */
  skipStages?: readonly StageName[];
  /** Longest run of a stage, per package, ms, by stage. */
  timeouts?: Partial<Record<StageName, number>>;
  /** The work of each stage: a function, or `{ execute, compensate }`. A stage without one passes (does nothing). */
  customExecutors?: Partial<Record<StageName, StageExecutor | { execute: StageExecutor; compensate?: StageCompensator }>>;
  /** Refuse a change whose affected packages have a dependency cycle: reject with DependencyCycleError. @default false */
  failOnCycle?: boolean;
  /** Cancels the workflow (completed stages are compensated; status `cancelled`). */
  signal?: AbortSignal;
}

/** What `executeWorkflow` takes. */
export interface ExecuteWorkflowInput extends ImpactInput {
  options?: ExecuteWorkflowOptions;
}

/** A package's (or a once-stage's) outcome in a stage. `dry-run`: not executed (`dryRun`). */
export type StagePackageStatus = StepOutcome | 'dry-run';

/** One stage's outcome. */
export interface StageResult {
  name: StageName;
  status: 'completed' | 'failed' | 'rolled-back' | 'not-run' | 'skipped';
  /** ms from its first start to its last end; null when it did not run. */
  duration: number | null;
  /** Per package (once-stages: one entry named after the stage). */
  packages: { name: string; status: StagePackageStatus; duration: number | null; output?: unknown; error?: WorkflowErrorInfo }[];
}

/** What `executeWorkflow` returns. */
export interface PackageWorkflowResult {
  workflowId: string;
  /** `completed`; `rolled_back` (a stage failed, every compensation succeeded); `failed` (a compensation failed too); `cancelled`. */
  status: 'completed' | 'rolled_back' | 'failed' | 'cancelled';
  decision: 'allow' | 'deny';
  changedPackages: string[];
  affectedPackages: string[];
  executionOrder: string[];
  waves: string[][];
  /** Every dependency cycle of the workspace. */
  cycles: string[][];
  stages: StageResult[];
  receipt: Receipt;
  /** Null when nothing failed. */
  rollbackResult: {
    rolledBack: boolean;
    failedStage: StageName | null;
    failedPackage: string | null;
    compensated: { stage: StageName; package: string | null }[];
    failures: { stage: StageName; package: string | null; error: WorkflowErrorInfo }[];
  } | null;
  startTime: string;
  endTime: string;
  /** ms. */
  duration: number;
}

const stepName = (stage: StageName, pkg: string | null): string => (pkg === null ? stage : `${stage}:${pkg}`);

function parseOptions(raw: unknown): Required<Omit<ExecuteWorkflowOptions, 'signal'>> & { signal: AbortSignal | undefined } {
  if (raw === undefined) raw = {};
  if (!isRecord(raw)) throw new InvalidArgumentError('options', 'must be an object');
  const o = raw as ExecuteWorkflowOptions;
  const flag = (key: 'parallel' | 'dryRun' | 'failOnCycle') => {
    const value: unknown = o[key];
    if (value !== undefined && typeof value !== 'boolean') throw new InvalidArgumentError(`options.${key}`, `must be a boolean (received ${String(value)})`);
    return value ?? false;
  };
  const skip: unknown = o.skipStages ?? [];
  if (!Array.isArray(skip) || !skip.every((s) => (WORKFLOW_STAGES as readonly unknown[]).includes(s))) {
    throw new InvalidArgumentError('options.skipStages', `must be an array of stages (${WORKFLOW_STAGES.join(', ')})`);
  }
  const timeouts: unknown = o.timeouts ?? {};
  if (!isRecord(timeouts)) throw new InvalidArgumentError('options.timeouts', 'must be an object of ms by stage');
  for (const [stage, ms] of Object.entries(timeouts)) {
    if (!(WORKFLOW_STAGES as readonly string[]).includes(stage)) throw new InvalidArgumentError(`options.timeouts.${stage}`, 'is not a stage');
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new InvalidArgumentError(`options.timeouts.${stage}`, `must be a number of ms ≥ 0 (received ${String(ms)})`);
  }
  const executors: unknown = o.customExecutors ?? {};
  if (!isRecord(executors)) throw new InvalidArgumentError('options.customExecutors', 'must be an object of executors by stage');
  for (const [stage, executor] of Object.entries(executors)) {
    if (!(WORKFLOW_STAGES as readonly string[]).includes(stage)) throw new InvalidArgumentError(`options.customExecutors.${stage}`, 'is not a stage');
    const ok = typeof executor === 'function' || (isRecord(executor) && typeof executor.execute === 'function' && (executor.compensate === undefined || typeof executor.compensate === 'function'));
    if (!ok) throw new InvalidArgumentError(`options.customExecutors.${stage}`, 'must be a function or { execute, compensate? }');
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new InvalidArgumentError('options.signal', 'must be an AbortSignal');
  return {
    parallel: flag('parallel'),
    dryRun: flag('dryRun'),
    failOnCycle: flag('failOnCycle'),
    skipStages: skip as StageName[],
    timeouts: timeouts as Partial<Record<StageName, number>>,
    customExecutors: executors as ExecuteWorkflowOptions['customExecutors'] & object,
    signal: o.signal,
  };
}

/**
 * Runs the stages of a change over the packages it affects (see `analyzeWorkflowImpact`), in
 * dependency order, as a workflow on an orchestrator of its own: dependency_analysis, then
 * admission, testing, building and validation for every affected package (each stage once every
 * package passed the one before), then integration and commit. A failure stops the workflow and
 * rolls back (the `compensate` of every completed stage executor, in reverse order). Returns the
 * outcome of every stage and package, the decision (`allow` only when everything passed) and a
 * hash-chained receipt of it all (`verifyReceipt`). Dependency cycles are run (their members
 * together) and reported, unless `failOnCycle`.
 *
 * @throws (rejects) UnknownPackageError, InvalidArgumentError naming the field, DependencyCycleError with `failOnCycle`
 */
export async function executeWorkflow(input: ExecuteWorkflowInput): Promise<PackageWorkflowResult> {
  const started = Date.now();
  if (!isRecord(input)) throw new InvalidArgumentError('input', 'must be an object with changedPackages and packages');
  const graph = impactGraph(input);
  const options = parseOptions(input.options);
  if (options.failOnCycle) {
    const error = cycleError(graph);
    if (error !== null) throw error;
  }
  const { impact } = graph;
  const workflowId = randomUUID();
  const packages = input.packages;
  const skipped = new Set(options.skipStages);
  const stages = WORKFLOW_STAGES.filter((s) => !skipped.has(s));

  const executor = (stage: StageName): { execute: StageExecutor | undefined; compensate: StageCompensator | undefined } => {
    const custom = options.customExecutors[stage];
    if (typeof custom === 'function') return { execute: custom, compensate: undefined };
    return { execute: custom?.execute, compensate: custom?.compensate };
  };
  const context = (stage: StageName, pkg: string | null, signal: AbortSignal): StageContext => ({
    stage,
    packageName: pkg,
    package: pkg === null ? null : (packages[pkg] ?? null),
    packages: impact.executionOrder,
    impact,
    signal,
  });

  // The DAG: a node per package and stage, and a node per stage that completes once all of its
  // packages did (once-stages do their work in it). Each stage starts after the previous one.
  const steps: Record<string, StepDefinition> = {};
  let gate: string | null = null;
  const order = impact.executionOrder;
  for (const stage of stages) {
    const { execute, compensate } = executor(stage);
    const work = (pkg: string | null): Pick<StepDefinition, 'run' | 'compensate' | 'timeout'> => ({
      run: (ctx) => {
        if (options.dryRun) return { dryRun: true };
        return execute === undefined ? null : execute(context(stage, pkg, ctx.signal));
      },
      ...(compensate !== undefined && !options.dryRun && { compensate: (ctx) => compensate({ ...context(stage, pkg, ctx.signal), output: ctx.result }) as void }),
      ...(options.timeouts[stage] !== undefined && { timeout: options.timeouts[stage] }),
    });
    if (ONCE.has(stage)) {
      steps[stage] = { ...(gate !== null && { dependsOn: [gate] }), ...work(null) };
    } else {
      const nodes: string[] = [];
      order.forEach((pkg, k) => {
        const dependsOn: string[] = gate === null ? [] : [gate];
        if (options.parallel) for (const dep of graph.dependencies.get(pkg) ?? []) dependsOn.push(stepName(stage, dep));
        else if (k > 0) dependsOn.push(stepName(stage, order[k - 1]!));
        steps[stepName(stage, pkg)] = { dependsOn, ...work(pkg) };
        nodes.push(stepName(stage, pkg));
      });
      steps[stage] = { dependsOn: gate === null ? nodes : [gate, ...nodes], run: () => null };
    }
    gate = stage;
  }

  const receipt = new ReceiptBuilder(workflowId);
  receipt.add('workflow', null, null, options.dryRun ? 'dry-run' : 'started', null, {
    changedPackages: impact.changedPackages,
    affectedPackages: impact.affectedPackages,
    executionOrder: impact.executionOrder,
    waves: impact.waves,
    cycles: impact.cycles,
    skipStages: options.skipStages,
    parallel: options.parallel,
  });

  const where = new Map<string, { stage: StageName; pkg: string | null; gate: boolean }>();
  for (const stage of stages) {
    where.set(stage, { stage, pkg: null, gate: !ONCE.has(stage) });
    if (!ONCE.has(stage)) for (const pkg of order) where.set(stepName(stage, pkg), { stage, pkg, gate: false });
  }
  const timing = new Map<string, { start: number; end: number | null }>();
  const outputs = new Map<string, unknown>();
  const errors = new Map<string, WorkflowErrorInfo>();

  let result: WorkflowResult;
  if (stages.length === 0) {
    // Every stage skipped: nothing to run, nothing that can fail.
    result = { runId: workflowId, workflowId: 'package-workflow', status: 'completed', results: {}, failedStep: null, error: null, rolledBack: false, compensated: [], compensationFailures: [], steps: {}, startedAt: started, finishedAt: Date.now() };
  } else {
    result = await runStages();
  }

  /** The stages as a workflow on an orchestrator of its own. */
  async function runStages(): Promise<WorkflowResult> {
    const orchestrator = createParallelOrchestrator();
    await orchestrator.start();
    let outcome: WorkflowResult;
    try {
      const run = runWorkflow(orchestrator, defineWorkflow({ id: 'package-workflow', steps, cancelGrace: 1_000 }), null, { runId: workflowId });
      run.on('step:started', (e) => timing.set(e.step, { start: performance.now(), end: null }));
      const ended = (step: string, status: string, error?: WorkflowErrorInfo) => {
        const time = timing.get(step);
        if (time !== undefined) time.end = performance.now();
        const at = where.get(step)!;
        const duration = time?.end != null ? time.end - time.start : null;
        if (at.gate) receipt.add('stage', at.stage, null, status, duration);
        else receipt.add('package', at.stage, at.pkg, status, duration, error === undefined ? null : { error });
      };
      run.on('step:completed', (e) => {
        outputs.set(e.step, e.result);
        ended(e.step, options.dryRun && !where.get(e.step)!.gate ? 'dry-run' : 'completed');
      });
      run.on('step:failed', (e) => {
        const info = errorInfo(e.error);
        errors.set(e.step, info);
        ended(e.step, 'failed', info);
      });
      run.on('step:cancelled', (e) => ended(e.step, 'cancelled'));
      run.on('compensation:completed', (e) => receipt.add('compensation', where.get(e.step)!.stage, where.get(e.step)!.pkg, 'compensated', e.duration));
      run.on('compensation:failed', (e) => receipt.add('compensation', where.get(e.step)!.stage, where.get(e.step)!.pkg, 'failed', null, { error: errorInfo(e.error) }));
      const onAbort = () => void run.cancel(`cancelled: ${String(options.signal?.reason ?? 'aborted')}`);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.signal?.aborted) onAbort();
      try {
        outcome = await run.result();
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
      }
    } finally {
      await orchestrator.shutdown();
    }
    return outcome;
  }

  // Steps that never ran are outcomes too.
  for (const [step, at] of where) {
    if (result.steps[step] === 'skipped') receipt.add(at.gate ? 'stage' : 'package', at.stage, at.pkg, 'not-run', null);
  }
  const status: PackageWorkflowResult['status'] = result.status === 'completed' ? 'completed' : result.status === 'cancelled' ? 'cancelled' : result.rolledBack ? 'rolled_back' : 'failed';
  const decision = status === 'completed' ? 'allow' : 'deny';
  receipt.add('decision', null, null, decision, Date.now() - started, { status });

  const stageResults: StageResult[] = WORKFLOW_STAGES.map((name) => {
    if (skipped.has(name)) return { name, status: 'skipped', duration: null, packages: [] };
    const members = ONCE.has(name) ? [name] : order.map((pkg) => stepName(name, pkg));
    const entries = members.map((step) => {
      const outcome = result.steps[step]!;
      const time = timing.get(step);
      const entry: StageResult['packages'][number] = {
        name: ONCE.has(name) ? name : where.get(step)!.pkg!,
        status: options.dryRun && outcome === 'completed' ? 'dry-run' : outcome,
        duration: time?.end != null ? time.end - time.start : null,
      };
      if (outputs.has(step) && outputs.get(step) !== undefined && outputs.get(step) !== null) entry.output = outputs.get(step);
      const error = errors.get(step);
      if (error !== undefined) entry.error = error;
      return entry;
    });
    const all = [...members, name];
    const times = all.map((s) => timing.get(s)).filter((t): t is { start: number; end: number } => t !== undefined && t.end !== null);
    const gateOutcome = result.steps[name]!;
    const statusOf = (): StageResult['status'] => {
      if (all.some((s) => result.steps[s] === 'failed')) return 'failed';
      if (all.some((s) => result.steps[s] === 'compensated' || result.steps[s] === 'compensation-failed')) return 'rolled-back';
      if (gateOutcome === 'completed') return 'completed';
      return 'not-run';
    };
    return {
      name,
      status: statusOf(),
      duration: times.length === 0 ? null : Math.max(...times.map((t) => t.end)) - Math.min(...times.map((t) => t.start)),
      packages: entries,
    };
  });

  const split = (step: string) => ({ stage: where.get(step)!.stage, package: where.get(step)!.pkg });
  const ended = Date.now();
  return {
    workflowId,
    status,
    decision,
    changedPackages: impact.changedPackages,
    affectedPackages: impact.affectedPackages,
    executionOrder: impact.executionOrder,
    waves: impact.waves,
    cycles: impact.cycles,
    stages: stageResults,
    receipt: receipt.build(),
    rollbackResult:
      result.status === 'completed'
        ? null
        : {
            rolledBack: result.rolledBack,
            failedStage: result.failedStep === null ? null : where.get(result.failedStep)!.stage,
            failedPackage: result.failedStep === null ? null : where.get(result.failedStep)!.pkg,
            compensated: result.compensated.map(split),
            failures: result.compensationFailures.map((f) => ({ ...split(f.step), error: f.error })),
          },
    startTime: new Date(started).toISOString(),
    endTime: new Date(ended).toISOString(),
    duration: ended - started,
  };
}
