// The seed's Checkpointing snippet, runnable. In your project import from 'parallel-orchestrator'; here the built dist/.
import { createHash } from 'node:crypto';
import { createParallelOrchestrator, AgentRole } from '../dist/index.js';

// Automatic checkpointing (every 5s)
const orchestrator = createParallelOrchestrator({
  checkpointing: {
    enabled: true,
    interval: 5000
  }
});

// Counts primes chunk by chunk, checkpointing after each chunk. Its first attempt crashes
// after chunk 3; the retry resumes from the checkpoint instead of starting over.
orchestrator.registerAgent({
  agentId: 'prime-counter',
  role: AgentRole.ANALYZER,
  capabilities: ['count-primes'],
  handler: async (task, ctx) => {
    const { limit, chunks } = task.payload;
    const resume = ctx.resumeState ?? { chunk: 0, primes: 0 };
    if (ctx.resumeState) console.log(`attempt ${ctx.attempt}: resuming at chunk ${resume.chunk} with ${resume.primes} primes so far`);
    const size = limit / chunks;
    let total = resume.primes;
    for (let chunk = resume.chunk; chunk < chunks; chunk++) {
      for (let n = Math.max(2, chunk * size); n < (chunk + 1) * size; n++) if (isPrime(n)) total++;
      await ctx.checkpoint({ chunk: chunk + 1, primes: total });
      console.log(`attempt ${ctx.attempt}: chunk ${chunk + 1}/${chunks} done`);
      if (ctx.attempt === 1 && chunk + 1 === 3) throw new Error('simulated crash after chunk 3');
    }
    return { limit, primes: total };
  }
});

// Hashes records from where its checkpoint says (a percentage) to the end.
orchestrator.registerAgent({
  agentId: 'record-hasher',
  role: AgentRole.EXECUTOR,
  capabilities: ['hash-records'],
  handler: async (task, ctx) => {
    const records = task.payload.records;
    const from = Math.floor(((ctx.resumeState?.progress ?? 0) / 100) * records.length);
    const hash = createHash('sha256');
    for (const record of records.slice(from)) hash.update(JSON.stringify(record));
    return { from, hashed: records.length - from, digest: hash.digest('hex').slice(0, 16), resumedWith: ctx.resumeState };
  }
});

const primes = orchestrator.submit({
  type: 'count-primes',
  capabilities: ['count-primes'],
  payload: { limit: 200_000, chunks: 5 },
  retry: { maxAttempts: 2, initialDelay: 50 }
});
primes.on('retry', ({ attempt, error }) => {
  console.log(`retry: attempt ${attempt} after "${error.message}"; checkpoint:`, orchestrator.resumeFromCheckpoint(primes.taskId));
});

const hashing = orchestrator.submit({
  type: 'hash-records',
  capabilities: ['hash-records'],
  payload: { records: Array.from({ length: 10_000 }, (_, i) => ({ id: i, value: i * 31 })) }
});
const taskId = hashing.taskId;

// The task is still queued (start() has not been called): a manual checkpoint set now is what its first run resumes from.
// Manual checkpoint
await orchestrator.checkpoint(taskId, {
  progress: 50,
  data: 'checkpoint-state'
});

// Resume from checkpoint
const state = orchestrator.resumeFromCheckpoint(taskId);
console.log('checkpoint of', taskId, state);

await orchestrator.start();
console.log('primes:', (await primes.result()).result);
console.log('hash-records:', (await hashing.result()).result);
// Checkpoints of completed tasks are released.
console.log('after completion:', orchestrator.resumeFromCheckpoint(primes.taskId));
console.log('checkpoints taken:', orchestrator.getStats().checkpoints);
await orchestrator.shutdown({ graceful: true });

function isPrime(n) {
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}
