// Store write rates: what persistence costs the engine, before it is wired in.
//
//   npm run build && node bench/store.mjs     (prints a markdown table; BENCH_STORE_TASKS=N to resize)
//
// Each task: one saveTask and three appendAudit (submitted, started, completed), with a flush()
// every 1,000 tasks, through SqliteStore (synchronous normal, full and off; a fresh temp file each)
// and MemoryStore. Rows/s counts the task row and the three audit rows. The default audit
// retention (100,000 events) applies, so the trail is trimmed as it grows, as in production.
// Then the memory store's audit ring alone: 1,000,000 appends, ns per append.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore, SqliteStore } from '../dist/persistence/index.js';
import { envInt, fmt, fmtInt, isMain, median, table } from './common.mjs';

const TASKS = envInt('BENCH_STORE_TASKS', 200_000);
const APPENDS = envInt('BENCH_STORE_APPENDS', 1_000_000);
const FLUSH_EVERY = 1_000;
const AUDIT = { retainMs: 7 * 24 * 3600 * 1000, maxEvents: 100_000 };

/** A task shaped like the engine's: its row is built when the store asks for it. */
class BenchTask {
  constructor(i) {
    this.id = `task-${i}`;
    this.i = i;
  }

  toRow() {
    const now = Date.now();
    return {
      id: this.id,
      type: 'work',
      priority: this.i % 5,
      capabilities: ['work'],
      payload: { n: this.i, text: 'payload' },
      metadata: {},
      options: {},
      status: 'completed',
      attempt: 1,
      agentId: 'agent-1',
      submittedAt: now,
      updatedAt: now,
      result: { ok: true, n: this.i },
      error: null,
    };
  }
}

async function writeThrough(store) {
  await store.open();
  const start = performance.now();
  for (let i = 0; i < TASKS; i++) {
    const task = new BenchTask(i);
    store.saveTask(task);
    const timestamp = Date.now();
    store.appendAudit({ timestamp, type: 'submitted', taskId: task.id, agentId: null, attempt: 0, details: { type: 'work', priority: 2 } });
    store.appendAudit({ timestamp, type: 'started', taskId: task.id, agentId: 'agent-1', attempt: 1, details: { workerId: 'w1' } });
    store.appendAudit({ timestamp, type: 'completed', taskId: task.id, agentId: 'agent-1', attempt: 1, details: { duration: 1 } });
    if ((i + 1) % FLUSH_EVERY === 0) await store.flush();
  }
  await store.flush();
  const ms = performance.now() - start;
  await store.close();
  return { ms, tasksPerSec: (TASKS / ms) * 1000, rowsPerSec: ((TASKS * 4) / ms) * 1000 };
}

async function sqlite(synchronous) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-store-'));
  try {
    return await writeThrough(new SqliteStore({ path: join(dir, 'store.db'), synchronous, audit: AUDIT }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * ns per appendAudit on the memory ring (at its default bound of 100,000), median of 3 runs:
 * `reused` appends one event object (the ring alone); `engine` builds each event with Date.now(),
 * as the engine's journal does.
 */
function memoryAppendNs() {
  const reused = [];
  const engine = [];
  const details = { duration: 1 };
  const event = { timestamp: Date.now(), type: 'completed', taskId: 'task', agentId: 'agent-1', attempt: 1, details };
  for (let run = 0; run < 3; run++) {
    let store = new MemoryStore(AUDIT);
    let start = process.hrtime.bigint();
    for (let i = 0; i < APPENDS; i++) store.appendAudit(event);
    reused.push(Number(process.hrtime.bigint() - start) / APPENDS);

    store = new MemoryStore(AUDIT);
    start = process.hrtime.bigint();
    for (let i = 0; i < APPENDS; i++) {
      store.appendAudit({ timestamp: Date.now(), type: 'completed', taskId: 'task', agentId: 'agent-1', attempt: 1, details });
    }
    engine.push(Number(process.hrtime.bigint() - start) / APPENDS);
  }
  return { reused: median(reused), engine: median(engine) };
}

export async function store() {
  const rows = [];
  for (const synchronous of ['normal', 'full', 'off']) {
    const r = await sqlite(synchronous);
    rows.push([`SqliteStore (synchronous ${synchronous})`, fmtInt(r.tasksPerSec), fmtInt(r.rowsPerSec), fmt(r.ms, 0)]);
  }
  const m = await writeThrough(new MemoryStore(AUDIT));
  rows.push(['MemoryStore', fmtInt(m.tasksPerSec), fmtInt(m.rowsPerSec), fmt(m.ms, 0)]);
  return {
    writes: table(['store', 'tasks/s', 'rows/s', 'ms'], rows),
    memoryAppendNs: memoryAppendNs(),
  };
}

if (isMain(import.meta.url)) {
  const result = await store();
  console.log(`${fmtInt(TASKS)} tasks, each 1 saveTask + 3 appendAudit, flush every ${FLUSH_EVERY}:\n`);
  console.log(result.writes);
  const ns = result.memoryAppendNs;
  console.log(
    `\nMemoryStore appendAudit, ${fmtInt(APPENDS)} appends, median of 3: ${fmt(ns.reused, 1)} ns/append (one event object), ` +
      `${fmt(ns.engine, 1)} ns/append (a new event with Date.now() each, as the engine appends)`,
  );
}
