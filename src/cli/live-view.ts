import type { OrchestratorStats, OrchestratorStreamItem, ParallelOrchestrator } from '../index.js';
import { stringify } from '../server/json.js';
import { cut, fit, painter, safe, table, type Terminal } from './terminal.js';

/** How a run is shown: a redrawn view (a terminal), one line per event (CI logs), or JSON lines. */
export type ViewMode = 'tty' | 'plain' | 'json';

interface Running {
  taskId: string;
  type: string;
  agentId: string;
  attempt: number;
  /** The latest progress state's `progress` field (0-100), when it has one. */
  progress: number | undefined;
  /** The latest progress state, shown when it has no `progress`. */
  state: unknown;
  /** The last quarter printed in plain mode. */
  printedQuarter: number;
}

const PRIORITIES = ['CRITICAL', 'HIGH', 'NORMAL', 'LOW', 'BACKGROUND'] as const;
const REDRAW_MS = 100;
const BAR = 20;

/** The `progress` field (0-100) of a progress state, as the seed's agents stream it. */
export function progressOf(state: unknown): number | undefined {
  if (typeof state !== 'object' || state === null) return undefined;
  const value = (state as { progress?: unknown }).progress;
  return typeof value === 'number' && Number.isFinite(value) ? Math.max(0, Math.min(100, value)) : undefined;
}

/**
 * Shows a run from `orchestrator.events()`: in a terminal, a live view redrawn in place (a
 * progress bar per running task, queue depth per priority, agent load and circuit state) under
 * a scrolling log of completions and failures; elsewhere, plain lines; with `--json`, every
 * event as one JSON line. Call `watch()` before `start()` so no event is missed.
 */
export class LiveView {
  readonly #orchestrator: ParallelOrchestrator;
  readonly #mode: ViewMode;
  readonly #term: Terminal;
  readonly #title: string;
  readonly #paint: ReturnType<typeof painter>;
  readonly #running = new Map<string, Running>();
  readonly #startedAt = Date.now();
  #finished = { completed: 0, failed: 0, cancelled: 0 };
  #frameLines = 0;
  #timer: NodeJS.Timeout | undefined;
  #done: Promise<void> | undefined;

  constructor(orchestrator: ParallelOrchestrator, mode: ViewMode, term: Terminal, title: string) {
    this.#orchestrator = orchestrator;
    this.#mode = mode;
    this.#term = term;
    this.#title = title;
    this.#paint = painter(mode === 'tty' && term.color);
  }

  /** Starts consuming the event stream; resolves when it ends (after the orchestrator's shutdown). */
  watch(): Promise<void> {
    const items = this.#orchestrator.events();
    if (this.#mode === 'tty') {
      this.#term.write('\x1b[?25l');
      this.#timer = setInterval(() => this.#draw(), REDRAW_MS);
      this.#timer.unref();
    }
    this.#done = (async () => {
      for await (const item of items) this.#on(item);
    })();
    return this.#done;
  }

  /** Stops redrawing and removes the live frame (the log above it stays). */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#clearFrame();
    this.#term.write('\x1b[?25h');
  }

  /** The final figures: a table, or one JSON line. */
  printStats(stats: OrchestratorStats): void {
    if (this.#mode === 'json') {
      this.#term.write(`${stringify({ event: 'stats', data: stats })}\n`);
      return;
    }
    const { taskQueue: q, workerPool: pool } = stats;
    const rows: string[][] = [
      ['uptime', `${(stats.uptime / 1000).toFixed(2)} s`],
      ['tasks', `${stats.totalSubmitted} submitted, ${stats.totalCompleted} completed, ${stats.totalFailed} failed, ${stats.totalCancelled} cancelled`],
      ['retries', `${stats.totalRetries} (${stats.totalTimeouts} timeouts)`],
      ['success rate', `${(stats.successRate * 100).toFixed(1)}%`],
      ['average duration', `${stats.averageDuration.toFixed(1)} ms`],
      ['workers', `${pool.currentWorkers} now, peak ${pool.peakWorkers} (min ${pool.minWorkers}, max ${pool.maxWorkers}), ${pool.tasksRun} runs`],
      ['queue', `${q.size} queued, ${q.retrying} retrying, ${q.deadLetters} dead letters`],
      ['agents', `${stats.agentRouter.agents}, ${stats.agentRouter.routingDecisions} routing decisions`],
    ];
    this.#term.write(`\nfinal stats\n${indent(table(['', ''], rows).split('\n').slice(1).join('\n'))}\n`);
    const agents = stats.agentRouter.agentStats.map((a) => [a.agentId, a.role, String(a.completed), String(a.failed), a.circuitState]);
    if (agents.length > 0) this.#term.write(`\n${indent(table(['agent', 'role', 'completed', 'failed', 'circuit'], agents))}\n`);
  }

  #on(item: OrchestratorStreamItem): void {
    if (this.#mode === 'json') {
      this.#term.write(`${stringify(item)}\n`);
      return;
    }
    const line = this.#describe(item);
    if (line !== undefined) this.#log(line);
  }

  /** Updates the model; returns the log line for the event, if it has one. */
  #describe(item: OrchestratorStreamItem): string | undefined {
    const p = this.#paint;
    switch (item.event) {
      case 'task:started': {
        const d = item.data;
        this.#running.set(d.taskId, { taskId: d.taskId, type: d.type, agentId: d.agentId, attempt: d.attempt, progress: undefined, state: undefined, printedQuarter: 0 });
        return this.#mode === 'plain' ? `started    ${safe(d.taskId)} on ${safe(d.agentId)}${d.attempt > 1 ? ` (attempt ${d.attempt})` : ''}` : undefined;
      }
      case 'task:progress': {
        const run = this.#running.get(item.data.taskId);
        if (run === undefined) return undefined;
        run.state = item.data.data;
        run.progress = progressOf(item.data.data);
        if (this.#mode !== 'plain' || run.progress === undefined) return undefined;
        const quarter = Math.floor(run.progress / 25);
        if (quarter <= run.printedQuarter) return undefined;
        run.printedQuarter = quarter;
        return `progress   ${safe(run.taskId)} ${Math.round(run.progress)}%`;
      }
      case 'task:retry': {
        const d = item.data;
        this.#running.delete(d.taskId);
        return `${p('yellow', 'retry')}      ${safe(d.taskId)} attempt ${d.attempt} in ${Math.round(d.delay)} ms: ${safe(d.error.message)}`;
      }
      case 'task:completed': {
        const d = item.data;
        this.#running.delete(d.taskId);
        this.#finished.completed++;
        const attempts = d.attempts > 1 ? ` after ${d.attempts} attempts` : '';
        return `${p('green', 'completed')}  ${safe(d.taskId)} on ${safe(d.agentId)} in ${d.duration.toFixed(1)} ms${attempts}: ${summary(d.result)}`;
      }
      case 'task:failed': {
        const d = item.data;
        this.#running.delete(d.taskId);
        this.#finished.failed++;
        return `${p('red', 'failed')}     ${safe(d.taskId)} ${safe(d.code)} after ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}: ${safe(d.error.message)}`;
      }
      case 'task:cancelled':
        this.#running.delete(item.data.taskId);
        this.#finished.cancelled++;
        return `${p('yellow', 'cancelled')}  ${safe(item.data.taskId)}: ${safe(item.data.reason)}`;
      case 'agent:circuit-state':
        return `${p('magenta', 'circuit')}    ${safe(item.data.agentId)} ${item.data.from} → ${item.data.to}`;
      case 'worker:stuck':
        return `${p('red', 'stuck')}      worker ${item.data.workerId} still held task ${safe(item.data.taskId)} (agent ${safe(item.data.agentId)})`;
      case 'worker:failed':
        return `${p('red', 'worker')}     ${item.data.workerId} failed: ${safe(item.data.error.message)}`;
      case 'store:error':
        return `${p('red', 'store')}      ${safe(item.data.error.message)} (retrying)`;
      case 'listener:error':
        return `${p('red', 'listener')}   a '${safe(item.data.event)}' listener threw: ${safe(item.data.error instanceof Error ? item.data.error.message : String(item.data.error))}`;
      case 'stream:gap':
        return `(${item.data.dropped} events not shown: the output fell behind)`;
      default:
        return undefined;
    }
  }

  #log(line: string): void {
    if (this.#mode === 'tty') {
      this.#clearFrame();
      this.#term.write(`${cut(line, this.#term.columns - 1)}\n`);
      this.#drawFrame();
    } else {
      this.#term.write(`${line}\n`);
    }
  }

  #draw(): void {
    this.#clearFrame();
    this.#drawFrame();
  }

  #clearFrame(): void {
    if (this.#frameLines === 0) return;
    // Up to the frame's first line, then erase to the end of the screen.
    this.#term.write(`\x1b[${this.#frameLines}F\x1b[0J`);
    this.#frameLines = 0;
  }

  #drawFrame(): void {
    if (this.#timer === undefined) return;
    const lines = this.#frame();
    this.#term.write(`${lines.map((l) => cut(l, this.#term.columns - 1)).join('\n')}\n`);
    this.#frameLines = lines.length;
  }

  #frame(): string[] {
    const p = this.#paint;
    const stats = this.#orchestrator.getStats();
    const q = stats.taskQueue;
    const f = this.#finished;
    const elapsed = ((Date.now() - this.#startedAt) / 1000).toFixed(1);
    const lines = [
      '',
      `${p('bold', safe(this.#title))} · ${elapsed} s · ${f.completed} completed · ${f.failed > 0 ? p('red', `${f.failed} failed`) : '0 failed'}${f.cancelled > 0 ? ` · ${f.cancelled} cancelled` : ''}`,
      `queue   ${PRIORITIES.map((name) => `${p('dim', name)} ${q.byPriority[name]}`).join('  ')}  · retrying ${q.retrying} · dead letters ${q.deadLetters}`,
      `workers ${stats.workerPool.busy} busy / ${stats.workerPool.currentWorkers} (max ${stats.workerPool.maxWorkers})`,
    ];
    // Rows left for running tasks and agents, so the frame never scrolls.
    const budget = Math.max(4, this.#term.rows - lines.length - 4);
    const agents = stats.agentRouter.agentStats;
    const agentRows = Math.min(agents.length, Math.max(2, Math.floor(budget / 2)));
    const taskRows = Math.max(1, budget - agentRows);
    const running = [...this.#running.values()];
    lines.push(p('bold', `running (${running.length})`));
    for (const run of running.slice(0, taskRows)) lines.push(`  ${fit(safe(run.taskId), 16)} ${fit(safe(run.agentId), 12)} ${this.#bar(run)}`);
    if (running.length > taskRows) lines.push(p('dim', `  … and ${running.length - taskRows} more`));
    lines.push(p('bold', 'agents (load / max, circuit)'));
    for (const a of agents.slice(0, agentRows)) {
      const colour = a.circuitState === 'closed' ? 'green' : a.circuitState === 'open' ? 'red' : 'yellow';
      lines.push(`  ${fit(safe(a.agentId), 14)} ${fit(a.role, 17)} ${fit(`${a.active}/${a.maxConcurrent}`, 6)} ${p(colour, `● ${a.circuitState}`)}`);
    }
    if (agents.length > agentRows) lines.push(p('dim', `  … and ${agents.length - agentRows} more`));
    return lines;
  }

  #bar(run: Running): string {
    if (run.progress === undefined) return this.#paint('dim', run.state === undefined ? 'running' : `state ${summary(run.state, 40)}`);
    const filled = Math.round((run.progress / 100) * BAR);
    return `${this.#paint('cyan', '█'.repeat(filled))}${this.#paint('dim', '░'.repeat(BAR - filled))} ${fit(`${Math.round(run.progress)}%`, 4)}`;
  }
}

function summary(value: unknown, width = 80): string {
  const text = typeof value === 'string' ? value : stringify(value);
  return cut(safe(text.replace(/\s+/g, ' ')), width);
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}
