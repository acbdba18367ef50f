// Streaming: (1) one task emitting N progress updates of a 20-key object with one key changing,
// 3 subscribers: updates/s of ours (JSON Patch deltas, snapshots, replay retention) against a
// bare EventEmitter passing the state through, and bytes of delta against bytes of full state;
// (2) delivery latency from ctx.progress to the subscriber's callback with 1,000 tasks
// streaming at once, p50/p99 in µs, for an on() listener and a buffered subscribe() listener.
//
//   node bench/streaming.mjs                 prints the results as JSON (bench/run.mjs runs it so)
//   BENCH_STREAM_UPDATES=50000 node bench/streaming.mjs
import { EventEmitter } from 'node:events';
import { AgentRole, createParallelOrchestrator } from 'parallel-orchestrator';
import { envInt, isMain, median, percentile, rotate, tick } from './common.mjs';

const SUBSCRIBERS = 3;
const KEYS = 20;

/** 20 keys, half 6-digit counters, half short status strings: ~530 bytes of JSON, the size of a typical progress report. */
function initialState() {
  const state = {};
  for (let k = 0; k < KEYS; k++) state[`field${k}`] = k % 2 === 0 ? 100_000 + k * 7919 : `stage ${k} of the pipeline`;
  return state;
}

async function withOrchestrator(options, body) {
  const orchestrator = createParallelOrchestrator({ ...options, workerPool: { minWorkers: 1, maxWorkers: 1 } });
  await orchestrator.start();
  try {
    return await body(orchestrator);
  } finally {
    await orchestrator.shutdown();
  }
}

/** One task whose handler mutates one key of its state and calls ctx.progress `updates` times; `listeners` get its deltas. Returns the handler's ms. */
async function streamOneTask(updates, listeners) {
  return withOrchestrator({}, async (orchestrator) => {
    orchestrator.registerAgent({
      agentId: 'producer',
      role: AgentRole.EXECUTOR,
      capabilities: ['stream'],
      handler: async (_task, ctx) => {
        const state = initialState();
        const t0 = performance.now();
        for (let i = 0; i < updates; i++) {
          state.field3 = i;
          ctx.progress(state);
        }
        return performance.now() - t0;
      },
    });
    const observable = orchestrator.submit({ type: 'stream', capabilities: ['stream'] });
    for (const listener of listeners) observable.on('delta', listener);
    return (await observable.result()).result;
  });
}

/** Ours: 3 on('delta') listeners count. */
async function runOurs(updates) {
  const counts = new Array(SUBSCRIBERS).fill(0);
  const ms = await streamOneTask(updates, counts.map((_, s) => () => counts[s]++));
  if (counts.some((count) => count !== updates)) throw new Error(`subscribers saw ${counts.join(', ')} of ${updates} updates`);
  return ms;
}

/** The floor: an EventEmitter handing the same mutated state to 3 listeners. */
async function runBareEmitter(updates) {
  const emitter = new EventEmitter();
  const counts = new Array(SUBSCRIBERS).fill(0);
  for (let s = 0; s < SUBSCRIBERS; s++) emitter.on('delta', () => counts[s]++);
  const state = initialState();
  const t0 = performance.now();
  for (let i = 0; i < updates; i++) {
    state.field3 = i;
    emitter.emit('delta', state);
  }
  const ms = performance.now() - t0;
  if (counts.some((count) => count !== updates)) throw new Error('emitter lost updates');
  await tick();
  return ms;
}

/** Bytes on the wire: JSON of each delta against JSON of each full state, over `updates` updates. */
async function measureBytes(updates) {
  let deltaBytes = 0;
  let stateBytes = 0;
  await streamOneTask(updates, [
    (event) => {
      deltaBytes += JSON.stringify(event.delta).length;
      stateBytes += JSON.stringify(event.data).length;
    },
  ]);
  return { deltaBytes, stateBytes, deltaOverState: deltaBytes / stateBytes };
}

/** 1,000 tasks each streaming `perTask` updates, yielding between updates; latency from progress() to the callback. */
async function measureLatency(tasks, perTask, mode) {
  return withOrchestrator({ workerPool: { minWorkers: tasks, maxWorkers: tasks } }, async (orchestrator) => {
    orchestrator.registerAgent({
      agentId: 'producer',
      role: AgentRole.EXECUTOR,
      capabilities: ['stream'],
      maxConcurrent: tasks,
      handler: async (task, ctx) => {
        const state = initialState();
        state.task = task.payload;
        for (let i = 0; i < perTask; i++) {
          await tick();
          state.field3 = i;
          state.sentAt = performance.now();
          ctx.progress(state);
        }
      },
    });
    const latencies = [];
    const observables = [];
    for (let t = 0; t < tasks; t++) {
      const observable = orchestrator.submit({ type: 'stream', capabilities: ['stream'], payload: t });
      const record = (event) => {
        if (event.type === 'delta') latencies.push((performance.now() - event.data.sentAt) * 1000);
      };
      if (mode === 'subscribe') observable.subscribe(record);
      else observable.on('delta', record);
      observables.push(observable.result());
    }
    await Promise.all(observables);
    if (latencies.length !== tasks * perTask) throw new Error(`latency: got ${latencies.length} of ${tasks * perTask} updates`);
    return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: percentile(latencies, 1) };
  });
}

export async function streaming({
  updates = envInt('BENCH_STREAM_UPDATES', 200_000),
  runs = envInt('BENCH_RUNS', 3),
  latencyTasks = envInt('BENCH_STREAM_TASKS', 1_000),
  latencyUpdates = envInt('BENCH_STREAM_TASK_UPDATES', 20),
  log = () => {},
} = {}) {
  const contenders = [
    { key: 'ours', label: 'parallel-orchestrator, 3 on(\'delta\') listeners (JSON Patch deltas, snapshots every 10)', run: runOurs },
    { key: 'bareEmitter', label: 'EventEmitter passing the state to 3 listeners', run: runBareEmitter },
  ];
  for (const contender of contenders) await contender.run(Math.min(updates, 20_000));
  const results = Object.fromEntries(contenders.map((c) => [c.key, { label: c.label, updatesPerSec: [] }]));
  for (let r = 0; r < runs; r++) {
    for (const contender of rotate(contenders, r)) {
      const ms = await contender.run(updates);
      results[contender.key].updatesPerSec.push(updates / (ms / 1000));
      log(`streaming ${r + 1}/${runs}: ${contender.key} ${Math.round(updates / (ms / 1000))} updates/s`);
    }
  }
  for (const entry of Object.values(results)) entry.median = median(entry.updatesPerSec);
  const bytes = await measureBytes(Math.min(updates, 20_000));
  log(`streaming: delta ${bytes.deltaBytes} B against full state ${bytes.stateBytes} B`);
  const latency = {};
  for (const mode of ['on', 'subscribe']) {
    latency[mode] = await measureLatency(latencyTasks, latencyUpdates, mode);
    log(`streaming latency (${mode}): p50 ${latency[mode].p50.toFixed(1)} µs, p99 ${latency[mode].p99.toFixed(1)} µs`);
  }
  return {
    updates,
    runs,
    subscribers: SUBSCRIBERS,
    keys: KEYS,
    results,
    ratios: { oursOverBareEmitter: results.ours.median / results.bareEmitter.median },
    bytes,
    latency: { tasks: latencyTasks, updatesPerTask: latencyUpdates, ...latency },
    goals: { updatesPerSec: 300_000, deltaOverState: 0.1, p99Micros: 1000 },
  };
}

if (isMain(import.meta.url)) {
  const result = await streaming({ log: (line) => console.error(line) });
  console.log(JSON.stringify(result));
}
