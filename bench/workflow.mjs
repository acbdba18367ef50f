// Workflows: a random DAG of 10,000 no-op steps (each depends on 0–3 earlier steps, drawn from a
// fixed seed: bounded fan-in) run by runWorkflow, against the same number of bare no-op tasks
// submitted at once to the same orchestrator setup. The difference, per step, is what the
// workflow layer costs: a coordinator task, a task per step submitted when its dependencies are
// done, their results passed on, events routed back, throttled checkpoints. Also: the same DAG
// of function steps (run inside the coordinator, no task each), and the time defineWorkflow takes
// to validate the DAG. A hand-written DAG loop over submit() shows what any DAG layer on the
// public API pays (tasks released a few at a time rather than all at once).
//
//   node --expose-gc bench/workflow.mjs     prints the results as JSON (bench/run.mjs runs it so)
//   BENCH_WORKFLOW_STEPS=2000 BENCH_WORKFLOW_RUNS=3 node bench/workflow.mjs
import { AgentRole, createParallelOrchestrator, defineWorkflow, runWorkflow } from 'parallel-orchestrator';
import os from 'node:os';
import { envInt, isMain, median, rng, rotate, tick } from './common.mjs';

export const CONCURRENCY = 10;
export const AGENTS = 10;
export const MAX_FAN_IN = 3;
const CAPABILITIES = Object.freeze(['noop']);
const noop = async () => 1;
const noopStep = () => 1;
/** CPU time of this process so far, ms: on a shared machine it varies far less than wall time. */
const cpuMs = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

/** Step i depends on 0..MAX_FAN_IN distinct steps among the 1000 before it (a fixed seed). */
export function randomDag(n, kind, seed = 7) {
  const next = rng(seed);
  const steps = {};
  let edges = 0;
  for (let i = 0; i < n; i++) {
    const deps = new Set();
    const fanIn = i === 0 ? 0 : Math.floor(next() * (MAX_FAN_IN + 1));
    for (let k = 0; k < fanIn; k++) deps.add(`s${Math.max(0, i - 1 - Math.floor(next() * Math.min(i, 1000)))}`);
    edges += deps.size;
    steps[`s${i}`] = kind === 'task' ? { capabilities: CAPABILITIES, dependsOn: [...deps] } : { run: noopStep, dependsOn: [...deps] };
  }
  return { steps, edges };
}

/** An orchestrator as benchmark 1 sets it up, plus the worker slot a running workflow's coordinator holds. */
async function orchestratorWithAgents() {
  const orchestrator = createParallelOrchestrator({ workerPool: { minWorkers: CONCURRENCY + 1, maxWorkers: CONCURRENCY + 1 } });
  await orchestrator.start();
  for (let a = 0; a < AGENTS; a++) {
    orchestrator.registerAgent({ agentId: `agent-${a}`, role: AgentRole.EXECUTOR, capabilities: CAPABILITIES, maxConcurrent: CONCURRENCY, handler: noop });
  }
  return orchestrator;
}

async function runWorkflowOnce(workflow, n) {
  const orchestrator = await orchestratorWithAgents();
  const c0 = cpuMs();
  const t0 = performance.now();
  const result = await runWorkflow(orchestrator, workflow, null).result();
  const ms = performance.now() - t0;
  const cpu = cpuMs() - c0;
  await orchestrator.shutdown();
  if (result.status !== 'completed' || Object.keys(result.results).length !== n) throw new Error(`the workflow ended ${result.status} with ${Object.keys(result.results).length} of ${n} results`);
  return { ms, cpu };
}

/**
 * The floor for any DAG layer on the public API: a hand-written loop that submits a step's task
 * once its dependencies completed (no payloads, no events, no checkpoints, no rollback).
 */
async function runHandDagOnce(dag, n) {
  const orchestrator = await orchestratorWithAgents();
  const names = Object.keys(dag.steps);
  const index = new Map(names.map((name, i) => [name, i]));
  const waiting = new Int32Array(n);
  const dependents = Array.from({ length: n }, () => []);
  names.forEach((name, i) => {
    waiting[i] = dag.steps[name].dependsOn.length;
    for (const dep of dag.steps[name].dependsOn) dependents[index.get(dep)].push(i);
  });
  const c0 = cpuMs();
  const t0 = performance.now();
  let done = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const start = (i) => {
    orchestrator.submit({ id: `hand/${names[i]}`, type: names[i], capabilities: CAPABILITIES }).on('complete', () => {
      if (++done === n) finish();
      for (const d of dependents[i]) if (--waiting[d] === 0) start(d);
    });
  };
  for (let i = 0; i < n; i++) if (waiting[i] === 0) start(i);
  await finished;
  const ms = performance.now() - t0;
  const cpu = cpuMs() - c0;
  await orchestrator.shutdown();
  return { ms, cpu };
}

async function runBareOnce(n) {
  const orchestrator = await orchestratorWithAgents();
  const c0 = cpuMs();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) orchestrator.submit({ type: 'noop', capabilities: CAPABILITIES });
  await orchestrator.onIdle();
  const ms = performance.now() - t0;
  const cpu = cpuMs() - c0;
  const completed = orchestrator.getStats().totalCompleted;
  await orchestrator.shutdown();
  if (completed !== n) throw new Error(`bare: ${completed} of ${n} tasks completed`);
  return { ms, cpu };
}

export async function workflow({ steps = envInt('BENCH_WORKFLOW_STEPS', 10_000), runs = envInt('BENCH_WORKFLOW_RUNS', 5), log = () => {} } = {}) {
  const taskDag = randomDag(steps, 'task');
  const functionDag = randomDag(steps, 'function');
  const defineMs = [];
  let taskWorkflow;
  let functionWorkflow;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    taskWorkflow = defineWorkflow({ id: 'bench-tasks', steps: taskDag.steps });
    defineMs.push(performance.now() - t0);
    functionWorkflow = defineWorkflow({ id: 'bench-functions', steps: functionDag.steps });
  }
  const contenders = [
    { key: 'workflow', label: `workflow: ${steps.toLocaleString('en-US')} task steps (random DAG)`, run: () => runWorkflowOnce(taskWorkflow, steps) },
    { key: 'bare', label: `bare: ${steps.toLocaleString('en-US')} tasks submitted at once`, run: () => runBareOnce(steps) },
    { key: 'handDag', label: 'hand-written DAG loop over submit() (same DAG)', run: () => runHandDagOnce(taskDag, steps) },
    { key: 'functions', label: `workflow: ${steps.toLocaleString('en-US')} function steps (same DAG)`, run: () => runWorkflowOnce(functionWorkflow, steps) },
  ];
  // The first runs of a process compile the hot paths: three of each before measuring.
  for (let w = 0; w < 3; w++) for (const c of contenders) await c.run();
  log(`workflow: warm-up done (${steps} steps, ${taskDag.edges} edges, ${taskWorkflow.waves.length} waves)`);
  const results = Object.fromEntries(contenders.map((c) => [c.key, { label: c.label, ms: [], cpuMs: [], stepsPerSec: [] }]));
  for (let r = 0; r < runs; r++) {
    for (const c of rotate(contenders, r)) {
      // Steady state, as in a long-lived process (benchmark 1's headline figures): only a turn of
      // the event loop between runs. A forced full GC before each run also flushes compiled
      // code, and a run of 10,000 steps is too short to optimise it again: every contender runs
      // several times slower then (the workflow most, having the most code).
      await tick();
      const { ms, cpu } = await c.run();
      results[c.key].ms.push(ms);
      results[c.key].cpuMs.push(cpu);
      results[c.key].stepsPerSec.push(steps / (ms / 1000));
      log(`workflow ${r + 1}/${runs}: ${c.key} ${ms.toFixed(0)} ms, CPU ${cpu.toFixed(0)} ms (${Math.round(steps / (ms / 1000))} steps/s)`);
    }
  }
  for (const entry of Object.values(results)) {
    entry.msMedian = median(entry.ms);
    entry.cpuMsMedian = median(entry.cpuMs);
    entry.median = median(entry.stepsPerSec);
  }
  // Paired per run (same position in the rotation), so drift hits both alike.
  const paired = results.workflow.ms.map((ms, r) => ((ms - results.bare.ms[r]) * 1000) / steps);
  const pairedOverHand = results.workflow.ms.map((ms, r) => ((ms - results.handDag.ms[r]) * 1000) / steps);
  return {
    steps,
    edges: taskDag.edges,
    waves: taskWorkflow.waves.length,
    maxFanIn: MAX_FAN_IN,
    runs,
    concurrency: CONCURRENCY,
    agents: AGENTS,
    defineMsMedian: median(defineMs),
    results,
    overheadMicrosPerStep: ((results.workflow.msMedian - results.bare.msMedian) * 1000) / steps,
    pairedOverheadMicrosPerStep: median(paired),
    overheadOverHandDagMicrosPerStep: ((results.workflow.msMedian - results.handDag.msMedian) * 1000) / steps,
    pairedOverheadOverHandDagMicrosPerStep: median(pairedOverHand),
    cpuOverheadMicrosPerStep: ((results.workflow.cpuMsMedian - results.bare.cpuMsMedian) * 1000) / steps,
    cpuOverheadOverHandDagMicrosPerStep: ((results.workflow.cpuMsMedian - results.handDag.cpuMsMedian) * 1000) / steps,
    functionMicrosPerStep: (results.functions.msMedian * 1000) / steps,
    loadAverage: os.loadavg(),
    goals: { overheadMicrosPerStep: 20 },
  };
}

if (isMain(import.meta.url)) {
  const result = await workflow({ log: (line) => console.error(line) });
  console.log(JSON.stringify(result));
}
