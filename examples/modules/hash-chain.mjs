// A CPU-bound agent module: its default export is the handler, run in a worker thread.
import { createHash } from 'node:crypto';

export default async function hashChain(task, ctx) {
  let digest = String(task.payload.seed);
  const rounds = task.payload.rounds;
  for (let i = 1; i <= rounds; i++) {
    digest = createHash('sha256').update(digest).digest('hex');
    if (i % (rounds / 4) === 0) ctx.progress({ done: i, of: rounds });
  }
  return { digest, rounds };
}
