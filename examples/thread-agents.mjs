// CPU-bound agents in worker threads, a circuit breaker and a rate limit.
import { createParallelOrchestrator, AgentRole, TaskPriority } from 'parallel-orchestrator';

const orchestrator = createParallelOrchestrator({
  workerPool: { minWorkers: 2, maxWorkers: 4, idleTimeout: 1000, stuckGrace: 500 },
  circuitBreaker: { failureThreshold: 2, successThreshold: 1, resetTimeout: 100 },
});
await orchestrator.start();

orchestrator.on('agent:circuit-state', ({ agentId, from, to }) => console.log(`Agent ${agentId}: ${from} → ${to}`));
orchestrator.on('worker:replaced', ({ workerId, replacementId }) => console.log(`${workerId} replaced by ${replacementId}`));

// CPU-bound work: a module run in worker threads.
orchestrator.registerAgent({
  agentId: 'hasher',
  role: AgentRole.EXECUTOR,
  capabilities: ['hash'],
  maxConcurrent: 8,
  module: new URL('./modules/hash-chain.mjs', import.meta.url),
});

// An in-process agent that fails twice, then recovers; its breaker opens and closes again.
let calls = 0;
orchestrator.registerAgent({
  agentId: 'flaky-api',
  role: AgentRole.OBSERVER,
  capabilities: ['observe'],
  handler: async () => {
    calls++;
    if (calls <= 2) throw new Error(`upstream unavailable (call ${calls})`);
    return { ok: true, calls };
  },
});

// At most 5 starts per 100 ms; tasks over the rate wait in the queue.
orchestrator.registerAgent({
  agentId: 'rate-limited',
  role: AgentRole.MONITOR,
  capabilities: ['monitor'],
  maxConcurrent: 5,
  rateLimit: { max: 5, perMs: 100 },
  handler: async (task) => task.payload,
});

const hashes = Array.from({ length: 8 }, (_, i) =>
  orchestrator.submit({ type: 'hash', capabilities: ['hash'], payload: { seed: i, rounds: 20_000 } }),
);
hashes[0].on('delta', ({ data }) => console.log(`hash 0: ${data.done}/${data.of}`));

const flaky = orchestrator.submit({
  type: 'observe',
  priority: TaskPriority.HIGH,
  capabilities: ['observe'],
  retry: { maxAttempts: 5, initialDelay: 150, jitter: 0 },
});

const monitors = Array.from({ length: 15 }, (_, i) => orchestrator.submit({ type: 'monitor', capabilities: ['monitor'], payload: i }));

for (const [i, h] of hashes.entries()) {
  const { result, workerId } = await h.result();
  console.log(`hash ${i} on ${workerId}: ${result.digest.slice(0, 16)}…`);
}
console.log('flaky:', (await flaky.result()).result);
await Promise.all(monitors.map((m) => m.result()));
console.log('agent states:', orchestrator.listAgents().map(({ agentId, circuitState, completed }) => `${agentId} ${circuitState} ${completed}`).join(', '));
console.log('pool:', orchestrator.getStats().workerPool);
await orchestrator.shutdown();
