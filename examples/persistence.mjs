// Durable tasks on SQLite: a process is killed (SIGKILL) in the middle of a task, and the next
// process on the same file finishes the work from the last checkpoint, with the dead letters
// and the audit trail intact. Needs better-sqlite3 (npm install better-sqlite3).
// Guide: docs/persistence.md.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { createParallelOrchestrator, AgentRole, NonRetryableError } from 'parallel-orchestrator';

const BATCHES = 6;
let warehouseOnline = false;

/** Imports a file batch by batch, checkpointing after each; resumes from the checkpoint. */
async function importFile(task, ctx) {
  const start = ctx.resumeState?.batch ?? 0;
  if (start > 0) say(`  ${task.id}: attempt ${ctx.attempt} resumes at batch ${start + 1}/${BATCHES}`);
  let rows = ctx.resumeState?.rows ?? 0;
  for (let batch = start; batch < BATCHES; batch++) {
    await sleep(5); // the work of importing one batch
    rows += 100;
    await ctx.checkpoint({ batch: batch + 1, rows }); // resolves once committed to the file
    if (process.argv[2] === 'crash' && task.id === 'import-1' && batch + 1 === 3) {
      say(`  ${task.id}: batch 3/${BATCHES} committed, now the process is killed`);
      process.kill(process.pid, 'SIGKILL');
    }
  }
  return { rows };
}

async function report() {
  if (!warehouseOnline) throw new NonRetryableError('the warehouse is offline');
  return 'report sent';
}

function registerAgents(orchestrator) {
  orchestrator.registerAgent({ agentId: 'importer', role: AgentRole.EXECUTOR, capabilities: ['import'], handler: importFile });
  orchestrator.registerAgent({ agentId: 'reporter', role: AgentRole.AGGREGATOR, capabilities: ['report'], handler: report });
}

/** The first process: submits the work and dies in the middle of it. */
async function crashingProcess(path) {
  const orchestrator = createParallelOrchestrator({ store: { type: 'sqlite', path } });
  await orchestrator.start();
  registerAgents(orchestrator);
  orchestrator.submit({ id: 'report-1', type: 'report', capabilities: ['report'] });
  orchestrator.submit({ id: 'import-1', type: 'import', capabilities: ['import'] });
  orchestrator.submit({ id: 'import-2', type: 'import', capabilities: ['import'] });
  await orchestrator.flush(); // the three submits are committed: the crash below cannot lose them
  await orchestrator.onIdle(); // never reached: the importer kills the process
}

if (process.argv[2] === 'crash') {
  await crashingProcess(process.argv[3]);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'persistence-example-'));
  const path = join(dir, 'orchestrator.db');
  try {
    say('first process:');
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'crash', path], { stdio: ['ignore', 'inherit', 'inherit'] });
    const [, signal] = await once(child, 'exit');
    say(`first process ended by ${signal}`);

    say('second process:');
    const orchestrator = createParallelOrchestrator({ store: { type: 'sqlite', path } });
    await orchestrator.start(); // reads what the first process left
    const stats = orchestrator.getStats();
    say(`  store: ${stats.store}, recovered: ${stats.recovered}, dead letters: ${(await orchestrator.deadLetters()).map((d) => `${d.taskId} (${d.error.message})`).join(', ')}`);
    registerAgents(orchestrator); // recovered tasks waited for a capable agent
    for (const id of ['import-1', 'import-2']) {
      const { result, attempts } = await orchestrator.observe(id).result();
      say(`  ${id}: ${result.rows} rows after ${attempts} attempt(s)`);
    }
    warehouseOnline = true;
    say(`  report-1 requeued: ${(await (await orchestrator.requeueDeadLetter('report-1')).result()).result}`);

    say(`  history of import-1: ${(await orchestrator.history('import-1')).map((entry) => entry.type).join(' → ')}`);
    const recovered = await orchestrator.audit({ type: 'recovered' });
    say(`  recovered entries: ${recovered.map(({ taskId, details }) => `${taskId} was ${details.previousStatus}${details.resumeState ? ' (with checkpoint)' : ''}`).join(', ')}`);
    await orchestrator.shutdown();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Written at once (not buffered), so nothing is lost when the process is killed.
function say(line) {
  writeSync(1, `${line}\n`);
}
