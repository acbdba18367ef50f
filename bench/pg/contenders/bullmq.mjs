// BullMQ 6 on Redis, as its docs advise for production and throughput: a Worker at concurrency 10
// (the runner's), jobs added with addBulk, completed jobs removed (removeOnComplete, "auto-removal
// of jobs" in the production guide; graphile-worker deletes completed jobs too), connections with
// maxRetriesPerRequest: null (required for workers).
import { Queue, Worker } from 'bullmq';

export const kind = 'redis';
const QUEUE = 'noop';
const CHUNK = 1000;
const defaultJobOptions = { removeOnComplete: true, removeOnFail: 1000 };

function connection(redisUrl) {
  const url = new URL(redisUrl);
  return { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
}

export function describe(options = {}) {
  return {
    library: 'bullmq 6.7.0 (ioredis 5.8.2)',
    queue: { defaultJobOptions },
    worker: { concurrency: 10, ...options, note: 'other Worker options at their defaults (drainDelay 5 s long poll, lockDuration 30 s, stalledInterval 30 s)' },
    producer: `queue.addBulk(…) in chunks of ${CHUNK}; queue.add(…) for the latency run`,
    handler: 'async (job) => handler(job.data)',
  };
}

const open = ({ redisUrl, prefix }) => new Queue(QUEUE, { connection: connection(redisUrl), prefix, defaultJobOptions });

export async function setup() {}

export async function teardown(ctx) {
  const queue = open(ctx);
  try {
    await queue.obliterate({ force: true });
  } finally {
    await queue.close();
  }
}

export async function pending(ctx) {
  const queue = open(ctx);
  try {
    const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'paused');
    return Object.values(c).reduce((a, b) => a + b, 0);
  } finally {
    await queue.close();
  }
}

export async function createProducer(ctx) {
  const queue = open(ctx);
  await queue.waitUntilReady();
  return {
    async addMany(payloads) {
      for (let i = 0; i < payloads.length; i += CHUNK) await queue.addBulk(payloads.slice(i, i + CHUNK).map((data) => ({ name: QUEUE, data })));
    },
    addOne: (data) => queue.add(QUEUE, data),
    close: () => queue.close(),
  };
}

export async function work(ctx, { concurrency, handler, onReady, until }) {
  const worker = new Worker(QUEUE, (job) => handler(job.data), { connection: connection(ctx.redisUrl), prefix: ctx.prefix, concurrency, ...ctx.options });
  worker.on('error', (error) => process.stderr.write(`bullmq worker error: ${error.message}\n`));
  await worker.waitUntilReady();
  onReady();
  await until;
  await worker.close();
  return undefined;
}

export const recovery = {
  supported: true,
  options: { lockDuration: 2000, stalledInterval: 1000 },
  note: 'lock per active job renewed by its worker; a live worker\'s stalled check (every stalledInterval) moves jobs whose lock expired back to wait. Run with lockDuration 2 s, stalledInterval 1 s (defaults 30 s and 30 s)',
};
