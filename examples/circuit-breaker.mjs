// The seed's Circuit Breaker snippet, runnable. In your project import from 'parallel-orchestrator'; here the built dist/.
import { createParallelOrchestrator, AgentRole, CircuitState } from '../dist/index.js';

// Configure per-agent failure handling
const orchestrator = createParallelOrchestrator({
  circuitBreaker: {
    failureThreshold: 5,     // Open after 5 failures
    successThreshold: 2,     // Close after 2 successes
    resetTimeout: 500        // Try again after 0.5s (the seed's 30000 would keep this demo waiting 30 s)
  }
});

const t0 = performance.now();
// Monitor circuit state
orchestrator.on('agent:circuit-state', ({ agentId, from, to }) => {
  console.log(`[${Math.round(performance.now() - t0)} ms] Agent ${agentId}: ${from} → ${to}`);
});

await orchestrator.start();

// Great-circle distance of a route: the work both geo agents do.
function routeKm(points) {
  const rad = (deg) => (deg * Math.PI) / 180;
  let km = 0;
  for (let i = 1; i < points.length; i++) {
    const [lat1, lon1] = points[i - 1];
    const [lat2, lon2] = points[i];
    const a = Math.sin(rad(lat2 - lat1) / 2) ** 2 + Math.cos(rad(lat1)) * Math.cos(rad(lat2)) * Math.sin(rad(lon2 - lon1) / 2) ** 2;
    km += 2 * 6371 * Math.asin(Math.sqrt(a));
  }
  return Math.round(km);
}

// The preferred agent; its upstream is down for its first 5 calls.
let primaryCalls = 0;
orchestrator.registerAgent({
  agentId: 'geo-primary',
  role: AgentRole.OBSERVER,
  capabilities: ['route'],
  maxConcurrent: 5,
  handler: async (task) => {
    if (++primaryCalls <= 5) throw new Error(`upstream unavailable (call ${primaryCalls})`);
    return routeKm(task.payload);
  }
});
// A healthy agent with the same capability takes over while the primary's circuit is open.
orchestrator.registerAgent({
  agentId: 'geo-backup',
  role: AgentRole.EXECUTOR,
  capabilities: ['route'],
  maxConcurrent: 5,
  handler: async (task) => routeKm(task.payload)
});

const halfOpen = new Promise((resolve) => {
  const off = orchestrator.on('agent:circuit-state', ({ to }) => {
    if (to === CircuitState.HALF_OPEN) {
      off();
      resolve();
    }
  });
});
const route = (i) => [[48.85, 2.35], [51.5 + i / 10, -0.12], [52.52, 13.4]];
const submitRoute = (i) => orchestrator.submit({ type: 'route', capabilities: ['route'], preferredRole: AgentRole.OBSERVER, payload: route(i) });

// Wave 1: five tasks go to the primary and fail; its circuit opens and their retries go to the backup.
const wave1 = Array.from({ length: 10 }, (_, i) => submitRoute(i));
for (const [i, task] of wave1.entries()) {
  const { result, agentId, attempts } = await task.result();
  console.log(`route ${i}: ${result} km by ${agentId} (attempts: ${attempts})`);
}
console.log('geo-primary after wave 1:', orchestrator.getAgentState('geo-primary').circuitState);

// Wave 2, once the circuit half-opens: the probes succeed and close it again. An open circuit
// alone does not keep a process alive (nothing is queued or running now), so the demo holds it.
const hold = setInterval(() => {}, 1000);
await halfOpen;
clearInterval(hold);
for (let i = 10; i < 13; i++) {
  const { result, agentId } = await submitRoute(i).result();
  console.log(`route ${i}: ${result} km by ${agentId}`);
}
const { circuitState, completed, failed } = orchestrator.getAgentState('geo-primary');
console.log(`geo-primary: ${circuitState}, completed ${completed}, failed ${failed}`);
await orchestrator.shutdown({ graceful: true });
