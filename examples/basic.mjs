// The seed's Basic Example, runnable. In your project import from 'parallel-orchestrator'; here the built dist/.
import { Buffer } from 'node:buffer';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { createParallelOrchestrator, AgentRole, TaskPriority } from '../dist/index.js';

const gzipAsync = promisify(gzip);

// Create orchestrator
const orchestrator = createParallelOrchestrator({
  workerPool: {
    minWorkers: 2,
    maxWorkers: 10,
    assignmentStrategy: 'least-busy'
  },
  taskQueue: {
    maxSize: 1000,
    defaultPriority: TaskPriority.NORMAL
  },
  streaming: {
    enableDeltaCompression: true,
    snapshotInterval: 10
  }
});

await orchestrator.start();

// Register agents
orchestrator.registerAgent({
  agentId: 'observer-1',
  role: AgentRole.OBSERVER,
  capabilities: ['observe', 'compress'],
  maxConcurrent: 3,
  // Observes the readings in batches (streaming progress), then gzips what it observed.
  handler: async (task, ctx) => {
    const { data } = task.payload;
    const observed = [];
    const batch = 250;
    for (let i = 0; i < data.length; i += batch) {
      for (const reading of data.slice(i, i + batch)) observed.push(`${reading.sensor},${reading.value.toFixed(3)}`);
      ctx.progress({ progress: Math.round((observed.length / data.length) * 100) });
    }
    const raw = Buffer.from(observed.join('\n'));
    const compressed = await gzipAsync(raw, { signal: ctx.signal });
    return { readings: observed.length, rawBytes: raw.length, compressedBytes: compressed.length };
  }
});

// Submit task
const observable = orchestrator.submit({
  type: 'observe-compress',
  priority: TaskPriority.HIGH,
  capabilities: ['observe', 'compress'],
  payload: { data: Array.from({ length: 1000 }, (_, i) => ({ sensor: `s${i % 8}`, value: Math.sin(i / 10) * 100 })) }
});

// Subscribe to updates
observable.on('delta', (update) => {
  console.log('Progress:', update.data.progress);
});

observable.on('complete', (result) => {
  console.log('Complete:', result);
});

observable.on('error', ({ error }) => {
  console.error('Failed:', error);
});

// Shutdown (graceful: waits for the task above to finish first)
await orchestrator.shutdown({ graceful: true });
