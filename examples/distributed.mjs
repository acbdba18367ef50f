// Two nodes on one PostgreSQL schema (docs/distributed.md): a worker with an agent and a producer
// that only submits and watches. In real use they are separate processes on separate machines.
// Needs a PostgreSQL server: DATABASE_URL, or the local one (postgres://postgres@127.0.0.1:5432/test).
// In your project import from 'parallel-orchestrator'; here the built dist/.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createParallelOrchestrator, AgentRole } from '../dist/index.js';

const connectionString = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `example_${randomBytes(4).toString('hex')}`;
const store = { type: 'postgres', connectionString, schema };

// A worker node: agents, no submits. Run as many of these as you like, anywhere.
const worker = createParallelOrchestrator({ store });
await worker.start(); // creates and migrates the schema (once, even if ten nodes start at once)
worker.registerAgent({
  agentId: 'resizer',
  role: AgentRole.EXECUTOR,
  capabilities: ['images'],
  maxConcurrent: 4,
  handler: async (task, ctx) => {
    const done = ctx.resumeState?.done ?? 0; // where a crashed node left off
    for (let i = done; i < task.payload.images; i++) {
      await ctx.checkpoint({ done: i + 1 }); // committed to the database
      ctx.progress({ progress: Math.round(((i + 1) / task.payload.images) * 100) });
    }
    return { resized: task.payload.images };
  },
});
await worker.flush(); // the registry now shows this node's agents to the others

// A producer node (a web server, say): submits and watches, runs nothing itself.
const producer = createParallelOrchestrator({ store });
await producer.start();
const task = producer.submit({ type: 'resize', capabilities: ['images'], payload: { images: 3 } });
task.on('delta', ({ data }) => console.log(`${data.progress}%`)); // streamed from the worker's node
const { result, agentId } = await task.result();
console.log(result, 'by', agentId);
console.log('nodes:', producer.getStats().cluster.nodes.length);

await producer.shutdown();
await worker.shutdown();

// Only for this example: remove its schema.
const admin = new pg.Client({ connectionString });
await admin.connect();
await admin.query(`drop schema ${schema} cascade`);
await admin.end();
