// The seed's Priority Scheduling snippet, runnable. In your project import from 'parallel-orchestrator'; here the built dist/.
import { freemem, loadavg, totalmem } from 'node:os';
import { brotliCompressSync, constants } from 'node:zlib';
import { Buffer } from 'node:buffer';
import { createParallelOrchestrator, AgentRole, TaskPriority } from '../dist/index.js';

// One execution slot, so the queue alone decides what runs next.
const orchestrator = createParallelOrchestrator({ workerPool: { minWorkers: 1, maxWorkers: 1 } });

orchestrator.registerAgent({
  agentId: 'monitor-1',
  role: AgentRole.MONITOR,
  capabilities: ['monitor'],
  handler: async () => {
    const heap = process.memoryUsage();
    return { heapUsedMb: +(heap.heapUsed / 2 ** 20).toFixed(1), freeMemPct: +((freemem() / totalmem()) * 100).toFixed(1), load1m: loadavg()[0] };
  }
});
orchestrator.registerAgent({
  agentId: 'executor-1',
  role: AgentRole.EXECUTOR,
  capabilities: ['process'],
  // Parses CSV rows and totals the amount per account.
  handler: async (task) => {
    const totals = {};
    for (const line of (task.payload?.csv ?? '').trim().split('\n')) {
      const [account, amount] = line.split(',');
      totals[account] = (totals[account] ?? 0) + Number(amount);
    }
    return totals;
  }
});
orchestrator.registerAgent({
  agentId: 'optimizer-1',
  role: AgentRole.OPTIMIZER,
  capabilities: ['optimize'],
  // Finds the brotli quality with the best size for the blob.
  handler: async (task) => {
    const blob = Buffer.from(task.payload?.blob ?? '');
    let best = { quality: 0, bytes: Infinity };
    for (const quality of [1, 5, 9, 11]) {
      const bytes = brotliCompressSync(blob, { params: { [constants.BROTLI_PARAM_QUALITY]: quality } }).length;
      if (bytes < best.bytes) best = { quality, bytes };
    }
    return { ...best, of: blob.length };
  }
});

const csv = Array.from({ length: 500 }, (_, i) => `acct-${i % 5},${(i * 7) % 100}`).join('\n');
const blob = JSON.stringify(Array.from({ length: 2000 }, (_, i) => ({ id: i, tag: `t${i % 13}` })));
const started = [];
orchestrator.on('task:started', ({ type }) => started.push(type));
orchestrator.on('task:completed', ({ type, agentId, result }) => console.log(`${type} on ${agentId}:`, JSON.stringify(result)));

// Submitted before start(), so all of them wait in the queue: they start by priority, FIFO within one.
// Critical system tasks
orchestrator.submit({
  type: 'system-monitor',
  priority: TaskPriority.CRITICAL,
  capabilities: ['monitor']
});

// Normal data processing
orchestrator.submit({
  type: 'data-process',
  priority: TaskPriority.NORMAL,
  capabilities: ['process'],
  payload: { csv }
});

// Background optimization
orchestrator.submit({
  type: 'optimize',
  priority: TaskPriority.BACKGROUND,
  capabilities: ['optimize'],
  payload: { blob }
});

// The same three again, submitted in reverse order.
orchestrator.submit({ type: 'optimize #2', priority: TaskPriority.BACKGROUND, capabilities: ['optimize'], payload: { blob } });
orchestrator.submit({ type: 'data-process #2', priority: TaskPriority.NORMAL, capabilities: ['process'], payload: { csv } });
orchestrator.submit({ type: 'system-monitor #2', priority: TaskPriority.CRITICAL, capabilities: ['monitor'] });

await orchestrator.start();
await orchestrator.onIdle();
console.log('start order:', started.join(' → '));
await orchestrator.shutdown({ graceful: true });
