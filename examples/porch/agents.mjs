// An agents file for `porch run`, `porch serve` and `porch worker` (docs/cli.md#the-agents-file):
//
//   porch run   --agents examples/porch/agents.mjs
//   porch serve --agents examples/porch/agents.mjs        then open http://127.0.0.1:7070/
//
// Its default export is { agents, tasks?, workflow?, config? } (or a function returning it).
// Agents and tasks are exactly what registerAgent() and submit() take; config is what
// createParallelOrchestrator() takes (--store and --max-workers on the command line win over it).
import { setTimeout as sleep } from 'node:timers/promises';

/** @typedef {import('parallel-orchestrator').AgentsFile} AgentsFile */

// Works in steps, streaming { progress } (0-100): the live views draw a bar from it.
async function crawl(task, ctx) {
  const pages = task.payload.pages;
  for (let page = 1; page <= pages; page++) {
    await sleep(task.payload.pace ?? 80, undefined, { signal: ctx.signal });
    ctx.progress({ progress: Math.round((page / pages) * 100), page, of: pages });
  }
  return { pages, words: pages * 412 };
}

// Resumes from its checkpoint after a retry, and streams a state without a progress field.
async function index(task, ctx) {
  let done = ctx.resumeState?.done ?? 0;
  for (; done < task.payload.documents; done++) {
    await sleep(40, undefined, { signal: ctx.signal });
    ctx.progress({ indexed: done + 1, of: task.payload.documents });
    if ((done + 1) % 5 === 0) await ctx.checkpoint({ done: done + 1 });
  }
  return `${done} documents indexed`;
}

// Fails on purpose when the payload says so: its task ends in the dead-letter queue, where
// `porch inspect dlq` and the dashboard show it.
async function publish(task) {
  await sleep(30);
  if (task.payload.target === 'offline-mirror') throw new Error(`${task.payload.target} refused the connection`);
  return `published to ${task.payload.target}`;
}

/** @type {AgentsFile} */
export default {
  config: {
    workerPool: { maxWorkers: 4 },
    taskQueue: { retry: { maxAttempts: 2, initialDelay: 200 } },
  },
  agents: [
    { agentId: 'crawler', role: 'α₁-observer', capabilities: ['crawl'], maxConcurrent: 2, handler: crawl },
    { agentId: 'indexer', role: 'α₅-analyzer', capabilities: ['index'], maxConcurrent: 1, handler: index },
    { agentId: 'publisher', role: 'α₉-executor', capabilities: ['publish'], maxConcurrent: 2, handler: publish },
  ],
  tasks: [
    { id: 'crawl-docs', type: 'crawl', priority: 1, capabilities: ['crawl'], payload: { pages: 12 } },
    { id: 'crawl-blog', type: 'crawl', priority: 2, capabilities: ['crawl'], payload: { pages: 8 } },
    { id: 'crawl-wiki', type: 'crawl', priority: 3, capabilities: ['crawl'], payload: { pages: 20, pace: 50 } },
    { id: 'index-all', type: 'index', priority: 2, capabilities: ['index'], payload: { documents: 15 } },
    { id: 'publish-site', type: 'publish', priority: 1, capabilities: ['publish'], payload: { target: 'cdn' } },
    { id: 'publish-mirror', type: 'publish', priority: 4, capabilities: ['publish'], payload: { target: 'offline-mirror' } },
  ],
};
