// Workflows: a release pipeline as a DAG of steps on the orchestrator (parallel waves, results
// passed on, progress streamed per step), the same pipeline failing and rolling back, then the
// seed's package workflow: impact analysis of a change in a small monorepo and its stages, with
// a hash-chained receipt. Guide: docs/workflows.md.
import {
  createParallelOrchestrator,
  AgentRole,
  defineWorkflow,
  runWorkflow,
  getWorkflow,
  analyzeWorkflowImpact,
  executeWorkflow,
  verifyReceipt,
} from 'parallel-orchestrator';

const orchestrator = createParallelOrchestrator({ workerPool: { maxWorkers: 4 }, taskQueue: { retry: { maxAttempts: 1 } } });
await orchestrator.start();

let deployWorks = true;
orchestrator.registerAgent({
  agentId: 'builder',
  role: AgentRole.EXECUTOR,
  capabilities: ['build'],
  handler: async (task, ctx) => {
    for (const percent of [50, 100]) ctx.progress({ percent });
    return `app-${task.payload.input.version}.tgz`;
  },
});
orchestrator.registerAgent({
  agentId: 'tester',
  role: AgentRole.VALIDATOR,
  capabilities: ['test'],
  maxConcurrent: 2,
  handler: async (task) => `${task.type}: ${task.payload.results.build} passed`,
});
orchestrator.registerAgent({
  agentId: 'deployer',
  role: AgentRole.EXECUTOR,
  capabilities: ['deploy'],
  handler: async (task) => {
    if (!deployWorks) throw new Error('the cluster refused the deployment');
    return `deployed ${task.payload.artifact}`;
  },
});

const release = defineWorkflow({
  id: 'release',
  steps: {
    build: { capabilities: ['build'] },
    'unit-tests': { capabilities: ['test'], dependsOn: ['build'] },
    'e2e-tests': { capabilities: ['test'], dependsOn: ['build'] },
    notes: { dependsOn: ['build'], run: (ctx) => `release notes for ${ctx.input.version}`, compensate: () => console.log('  ↶ notes: draft deleted') },
    tag: {
      dependsOn: ['unit-tests', 'e2e-tests'],
      run: (ctx) => `v${ctx.input.version}`,
      compensate: (ctx) => console.log(`  ↶ tag: ${ctx.result} removed (${ctx.reason}: ${ctx.failedStep} failed)`),
    },
    deploy: { capabilities: ['deploy'], dependsOn: ['tag', 'notes'], input: (results) => ({ artifact: results.build }) },
  },
});
console.log('waves:', release.waves.map((wave) => wave.join(' + ')).join(' → '));

const run = runWorkflow(orchestrator, release, { version: '2.1.0' }, { runId: 'release-2.1.0' });
run.on('step:started', (e) => console.log(`  ▶ ${e.step}${e.agentId ? ` on ${e.agentId}` : ''}`));
run.on('step:progress', (e) => console.log(`  … ${e.step} ${e.data.percent}%`));
run.on('step:completed', (e) => console.log(`  ✓ ${e.step}: ${e.result}`));
const result = await run.result();
console.log(`release-2.1.0: ${result.status}; deploy said "${result.results.deploy}"`);
const info = await getWorkflow(orchestrator, 'release-2.1.0');
console.log('steps:', Object.entries(info.steps).map(([step, s]) => `${step}=${s.status}`).join(' '));

deployWorks = false;
const failing = runWorkflow(orchestrator, release, { version: '2.2.0' }, { runId: 'release-2.2.0' });
failing.on('step:failed', (e) => console.log(`  ✗ ${e.step}: ${e.error.message}`));
failing.on('rollback:started', (e) => console.log(`  rollback: ${e.steps.join(', ')}`));
const failed = await failing.result();
console.log(`release-2.2.0: ${failed.status} at ${failed.failedStep}, rolled back: ${failed.rolledBack}, compensated: ${failed.compensated.join(', ')}`);
await orchestrator.shutdown();

// The seed's package workflow over a small monorepo (package.json-style dependencies).
const packages = {
  '@acme/utils': {},
  '@acme/core': { dependencies: { '@acme/utils': '^1.0.0', zod: '^3.0.0' } },
  '@acme/plugin-a': { dependencies: { '@acme/core': '^1.0.0', '@acme/plugin-b': '^1.0.0' } },
  '@acme/plugin-b': { dependencies: { '@acme/plugin-a': '^1.0.0' } },
  '@acme/cli': { dependencies: { '@acme/core': '^1.0.0', '@acme/plugin-a': '^1.0.0' } },
  '@acme/docs': { devDependencies: { '@acme/cli': '^1.0.0' } },
};
const impact = analyzeWorkflowImpact({ changedPackages: ['@acme/core'], packages });
console.log('affected:', impact.affectedPackages.join(', '));
console.log('waves:', impact.waves.map((wave) => wave.join(' + ')).join(' → '));
console.log('cycles:', impact.cycles.map((cycle) => cycle.join(' ↔ ')).join('; '));

const outcome = await executeWorkflow({
  changedPackages: ['@acme/core'],
  packages,
  options: { parallel: true, skipStages: ['integration'], customExecutors: { testing: (ctx) => `${ctx.packageName} tested` } },
});
console.log(`decision: ${outcome.decision} (${outcome.status}); stages: ${outcome.stages.map((s) => `${s.name}:${s.status}`).join(' ')}`);
console.log(`receipt: ${outcome.receipt.entries.length} entries, valid: ${verifyReceipt(outcome.receipt).valid}`);
outcome.receipt.entries[3].status = 'failed';
console.log('after editing entry 3:', JSON.stringify(verifyReceipt(outcome.receipt)));
