// parallel-orchestrator on PostgreSQL with its default settings: submits batched per turn of the
// event loop (one insert statement each), claims in batches into the node's local lanes with
// prefetch, outcomes batched and fenced by claim token, audit trail and checkpoints kept, leases
// extended by a heartbeat. The producer is an orchestrator without agents; the worker one agent
// with maxConcurrent = concurrency on a pool of as many in-process workers.
import { AgentRole, createParallelOrchestrator } from '../../../dist/index.js';

export const kind = 'postgres';

// Tuning runs: BENCH_OURS_VARIANTS='[{"label":"ours prefetch 1500","store":{"prefetch":1500}}]' adds
// rows with other store options next to the defaults (row 'ours', which the ratios and goals use).
const extra = JSON.parse(process.env.BENCH_OURS_VARIANTS ?? '[]');
export const variants = [{ label: 'ours', options: {} }, ...extra.map((v) => ({ label: v.label, options: { store: v.store } }))];
export const scaleOut = variants.map((v) => v.label);

const store = ({ connectionString, schema, options }) => ({ type: 'postgres', connectionString, schema, ...options?.store, ...options?.recovery });

export function describe(options = {}) {
  return {
    ...(options.store ? { storeOverrides: options.store } : {}),
    library: 'parallel-orchestrator (this repo, dist/)',
    store: "{ type: 'postgres', connectionString, schema } with defaults: leaseMs 5000, prefetch 500, maxBatch 500, poolSize 8, pollIntervalMs 2000",
    producer: "submit({ type, payload, waitForAgent: true }) for each job, then flush() (one insert statement per turn); submitAsync() for the latency run (resolves on commit)",
    worker: 'one agent, maxConcurrent = concurrency, workerPool min = max = concurrency; audit trail on (defaults)',
  };
}

export async function setup(ctx) {
  // start() creates and migrates the schema.
  const o = createParallelOrchestrator({ store: store(ctx) });
  await o.start();
  await o.shutdown();
}

export async function teardown() {
  // the runner drops the schema
}

export async function createProducer(ctx) {
  const o = createParallelOrchestrator({ store: store(ctx) });
  await o.start();
  return {
    addMany: async (payloads) => {
      for (const payload of payloads) o.submit({ type: 'noop', payload, waitForAgent: true });
      await o.flush();
    },
    addOne: (payload) => o.submitAsync({ type: 'noop', payload, waitForAgent: true }),
    close: () => o.shutdown({ graceful: false }),
  };
}

export async function work(ctx, { concurrency, handler, onReady, until }) {
  const o = createParallelOrchestrator({ store: store(ctx), workerPool: { minWorkers: concurrency, maxWorkers: concurrency } });
  await o.start();
  o.registerAgent({ agentId: 'noop', role: AgentRole.EXECUTOR, capabilities: [], maxConcurrent: concurrency, handler: (task) => handler(task.payload) });
  await o.flush();
  onReady();
  await until;
  await o.shutdown({ graceful: true });
  const stats = o.getStats();
  return { completed: stats.totalCompleted };
}

export const recovery = {
  supported: true,
  note: 'default lease (5 s): a dead node’s claims are re-queued by a live node’s reaper once they expire',
  expectedMs: 9_000,
};
