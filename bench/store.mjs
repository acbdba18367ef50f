// Store write rates: what persistence costs the engine, before it is wired in.
//
//   npm run build && node bench/store.mjs     (prints a markdown table; BENCH_STORE_TASKS=N to resize)
//
// Each task: one saveTask (of a completed task) and three appendAudit (submitted, started,
// completed), with a flush() every 1,000 tasks, through SqliteStore (synchronous normal, full and
// off; a fresh temp file each) and MemoryStore. Entries/s counts the task row and the three audit
// entries. An audit retention of 100,000 entries applies, so the trail is trimmed as it grows.
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
  status = 'completed';

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
    store.appendAudit('submitted', timestamp, task, null, 0, null);
    store.appendAudit('started', timestamp, task, 'agent-1', 1, null);
    store.appendAudit('completed', timestamp, task, 'agent-1', 1, null);
    if ((i + 1) % FLUSH_EVERY === 0) await store.flush();
  }
  await store.flush();
  const ms = performance.now() - start;
  await store.close();
  return { ms, tasksPerSec: (TASKS / ms) * 1000, entriesPerSec: ((TASKS * 4) / ms) * 1000 };
}

async function sqlite(synchronous) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-store-'));
  try {
    return await writeThrough(new SqliteStore({ path: join(dir, 'store.db'), synchronous, audit: AUDIT, nodeId: 'bench' }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * ns per appendAudit on the memory ring (at a bound of 100,000), median of 3 runs: `fixed`
 * appends one timestamp (the ring alone); `engine` reads the clock for each, as the journal does.
 */
function memoryAppendNs() {
  const fixed = [];
  const engine = [];
  const task = { id: 'task', generatedSeq: -1 };
  const idOfSeq = (seq) => `task-${seq}`;
  for (let run = 0; run < 3; run++) {
    let store = new MemoryStore(AUDIT, idOfSeq);
    const timestamp = Date.now();
    let start = process.hrtime.bigint();
    for (let i = 0; i < APPENDS; i++) store.appendAudit('completed', timestamp, task, 'agent-1', 1, null);
    fixed.push(Number(process.hrtime.bigint() - start) / APPENDS);

    store = new MemoryStore(AUDIT, idOfSeq);
    start = process.hrtime.bigint();
    for (let i = 0; i < APPENDS; i++) store.appendAudit('completed', Date.now(), task, 'agent-1', 1, null);
    engine.push(Number(process.hrtime.bigint() - start) / APPENDS);
  }
  return { fixed: median(fixed), engine: median(engine) };
}

export async function store() {
  const rows = [];
  for (const synchronous of ['normal', 'full', 'off']) {
    const r = await sqlite(synchronous);
    rows.push([`SqliteStore (synchronous ${synchronous})`, fmtInt(r.tasksPerSec), fmtInt(r.entriesPerSec), fmt(r.ms, 0)]);
  }
  const m = await writeThrough(new MemoryStore(AUDIT, (seq) => `task-${seq}`));
  rows.push(['MemoryStore (audit trail only)', fmtInt(m.tasksPerSec), fmtInt(m.entriesPerSec), fmt(m.ms, 0)]);
  return {
    writes: table(['store', 'tasks/s', 'row + entries/s', 'ms'], rows),
    memoryAppendNs: memoryAppendNs(),
  };
}

if (isMain(import.meta.url)) {
  const result = await store();
  console.log(`${fmtInt(TASKS)} tasks, each 1 saveTask + 3 appendAudit, flush every ${FLUSH_EVERY}:\n`);
  console.log(result.writes);
  const ns = result.memoryAppendNs;
  console.log(
    `\nMemoryStore appendAudit, ${fmtInt(APPENDS)} appends, median of 3: ${fmt(ns.fixed, 1)} ns/append (one timestamp), ` +
      `${fmt(ns.engine, 1)} ns/append (Date.now() each, as the engine appends)`,
  );
}
