// Streaming progress: a client that rebuilds the state from JSON Patch deltas, snapshots, a late
// subscriber, a stalled consumer that gets conflated, replay after the end, and the
// orchestrator-wide event stream. Guide: docs/streaming.md.
import jsonPatch from 'fast-json-patch';
import { setTimeout as sleep } from 'node:timers/promises';
import { createParallelOrchestrator, AgentRole } from 'parallel-orchestrator';

const { applyPatch } = jsonPatch;
const orchestrator = createParallelOrchestrator({ streaming: { snapshotInterval: 5 } });

// A dashboard: every orchestrator event in one sequenced stream, which ends after shutdown.
const dashboard = (async () => {
  const counts = {};
  for await (const { event } of orchestrator.events()) counts[event] = (counts[event] ?? 0) + 1;
  return counts;
})();

await orchestrator.start();
orchestrator.registerAgent({
  agentId: 'indexer',
  role: AgentRole.ANALYZER,
  capabilities: ['index'],
  handler: async (task, ctx) => {
    const state = { indexed: 0, of: task.payload.docs.length, terms: {} };
    for (const doc of task.payload.docs) {
      for (const term of doc.split(' ')) state.terms[term] = (state.terms[term] ?? 0) + 1;
      state.indexed++;
      ctx.progress(state); // the same object every time: each delta is still exact
      await sleep(2); // the work of indexing one document
    }
    return { terms: Object.keys(state.terms).length };
  },
});

const docs = [
  'red fox', 'blue fox', 'red hen', 'lazy dog', 'red dog', 'blue hen',
  'quick fox', 'lazy hen', 'quick dog', 'red fox', 'blue dog', 'lazy fox',
];
const task = orchestrator.submit({ id: 'index-1', type: 'index', capabilities: ['index'], payload: { docs } });

// 1. A client keeps its own copy of the state by applying each delta to the previous copy.
let copy;
task.on('delta', (event) => {
  copy = event.type === 'snapshot' ? event.data : applyPatch(copy, event.delta, false, false).newDocument;
  if (event.metadata.sequence <= 2) console.log(`delta ${event.metadata.sequence}: ${JSON.stringify(event.delta)}`);
});
task.on('snapshot', ({ metadata }) => console.log(`snapshot at ${metadata.sequence}`));

// 2. A subscriber that joins after update 7 starts from the snapshot at 5 and the deltas after it.
const late = [];
const lateDone = new Promise((done) =>
  task.on('delta', ({ metadata }) => {
    if (metadata.sequence !== 7) return;
    task.subscribe((event) => {
      late.push(describe(event));
      if (event.type === 'complete') done();
    });
  }),
);

// 3. A consumer stalled until the task ends, with room for 3 updates: its backlog is
// conflated into one fresh snapshot each time it overflows, so it ends at the true state.
let conflations = 0;
orchestrator.on('backpressure:conflated', () => conflations++);
const stalled = [];
const stalledDone = new Promise((done) =>
  task.subscribe(
    async (event) => {
      stalled.push(describe(event));
      if (event.type === 'start') await task.result();
      if (event.type === 'complete') done();
    },
    { bufferSize: 3 },
  ),
);

const { result } = await task.result();
console.log('result:', result);
await Promise.all([lateDone, stalledDone]);
console.log(`late subscriber: ${late.join(' → ')}`);
console.log(`stalled consumer: ${stalled.join(' → ')} (${conflations} conflations)`);

// 4. After the end, observe() still finds the task: a late reader gets the final snapshot,
// the deltas after it and the result.
const replayed = [];
let rebuilt;
for await (const event of orchestrator.observe('index-1')) {
  replayed.push(describe(event));
  if (event.type === 'snapshot') rebuilt = event.data;
  if (event.type === 'delta') rebuilt = applyPatch(rebuilt, event.delta, false, false).newDocument;
}
console.log(`replay after the end: ${replayed.join(' → ')}`);

const expected = { indexed: docs.length, of: docs.length, terms: {} };
for (const term of docs.join(' ').split(' ')) expected.terms[term] = (expected.terms[term] ?? 0) + 1;
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
console.log(`client copy matches the final state: ${same(copy, expected)}; rebuilt from the replay: ${same(rebuilt, expected)}`);

await orchestrator.shutdown();
console.log('dashboard:', await dashboard);

function describe(event) {
  return event.metadata === undefined ? event.type : `${event.type} ${event.metadata.sequence}`;
}
