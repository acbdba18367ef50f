// The page's model, fed by snapshots (GET /api/...) and the event stream. Every change bumps
// `version`, and the page redraws on the next animation frame.
import { progressOf } from './dom.js';

const HISTORY = 120; // queue-depth samples kept for the chart (one per stats event)
const RECENT = 40; // finished tasks listed

export function createState() {
  return {
    connection: 'connecting',
    stats: null,
    /** [{ at, byPriority, running }], oldest first. */
    history: [],
    /** Live tasks by id: { taskId, type, status, priority, agentId, attempt, progress, state, startedAt }. */
    tasks: new Map(),
    /** Finished tasks, newest first: { taskId, type, status, agentId, at, duration, attempts, detail }. */
    recent: [],
    deadLetters: [],
    /** The task shown in the detail panel: { taskId, details, loading, error }. */
    selected: null,
    version: 0,
  };
}

/** The snapshot read when the stream (re)connects. */
export function loadSnapshot(state, { live, finished, deadLetters }) {
  state.tasks.clear();
  for (const task of live) state.tasks.set(task.taskId, { ...task, progress: undefined, state: undefined, startedAt: undefined });
  state.recent = finished.map((t) => ({ taskId: t.taskId, type: t.type, status: t.status, agentId: t.agentId, at: undefined, duration: undefined, attempts: t.attempt, detail: '' }));
  state.deadLetters = deadLetters;
  state.version++;
}

export function loadStats(state, stats) {
  state.stats = stats;
  state.history.push({ at: Date.now(), byPriority: stats.taskQueue.byPriority, running: stats.running });
  if (state.history.length > HISTORY) state.history.shift();
  state.version++;
}

/**
 * Between two stats events (one a second), the counters and agent loads follow the events, so
 * the page moves with them; the next stats event sets the true figures again.
 */
function count(state, event, data, task) {
  const s = state.stats;
  if (s === null) return;
  const agent = (id) => s.agentRouter.agentStats.find((a) => a.agentId === id);
  const pool = s.workerPool;
  const ended = (t) => {
    if (t?.status !== 'running') return;
    s.running = Math.max(0, s.running - 1);
    pool.busy = Math.max(0, pool.busy - 1);
    const a = agent(t.agentId);
    if (a !== undefined) a.active = Math.max(0, a.active - 1);
  };
  switch (event) {
    case 'task:submitted':
      s.totalSubmitted++;
      break;
    case 'task:started': {
      if (task?.status === 'running') break;
      s.running++;
      pool.busy = Math.min(pool.currentWorkers, pool.busy + 1);
      const a = agent(data.agentId);
      if (a !== undefined) a.active = Math.min(a.maxConcurrent, a.active + 1);
      break;
    }
    case 'task:retry':
      ended(task);
      break;
    case 'task:completed':
      ended(task);
      s.totalCompleted++;
      break;
    case 'task:failed':
      ended(task);
      s.totalFailed++;
      break;
    case 'task:cancelled':
      ended(task);
      s.totalCancelled++;
      break;
    default:
  }
}

/** Applies one event of GET /api/events. Returns what else needs fetching: 'dlq', 'resync' or nothing. */
export function applyEvent(state, { event, data }) {
  state.version++;
  const task = data.taskId === undefined ? undefined : state.tasks.get(data.taskId);
  count(state, event, data, task);
  switch (event) {
    case 'task:submitted':
      state.tasks.set(data.taskId, { taskId: data.taskId, type: data.type, status: 'queued', priority: data.priority, agentId: undefined, attempt: 0, progress: undefined, state: undefined, startedAt: undefined });
      // A requeued dead letter is submitted again under its id.
      state.deadLetters = state.deadLetters.filter((d) => d.taskId !== data.taskId);
      return undefined;
    case 'task:started':
      if (task !== undefined) Object.assign(task, { status: 'running', agentId: data.agentId, attempt: data.attempt, startedAt: Date.now() });
      else state.tasks.set(data.taskId, { taskId: data.taskId, type: data.type, status: 'running', priority: undefined, agentId: data.agentId, attempt: data.attempt, progress: undefined, state: undefined, startedAt: Date.now() });
      return undefined;
    case 'task:progress':
      if (task !== undefined) Object.assign(task, { state: data.data, progress: progressOf(data.data) });
      if (state.selected?.taskId === data.taskId && state.selected.details) state.selected.details.progress = data.data;
      return undefined;
    case 'task:retry':
      if (task !== undefined) Object.assign(task, { status: 'retrying' });
      return undefined;
    case 'task:completed':
      finish(state, data.taskId, { type: data.type, status: 'completed', agentId: data.agentId, duration: data.duration, attempts: data.attempts, detail: summary(data.result) });
      return undefined;
    case 'task:failed':
      finish(state, data.taskId, { type: data.type, status: data.status, agentId: task?.agentId, attempts: data.attempts, detail: `${data.code}: ${data.error?.message ?? ''}` });
      return undefined;
    case 'task:cancelled':
      finish(state, data.taskId, { type: task?.type, status: 'cancelled', agentId: task?.agentId, attempts: task?.attempt, detail: data.reason });
      return undefined;
    case 'task:dead-letter':
      return 'dlq';
    case 'agent:circuit-state': {
      const agent = state.stats?.agentRouter.agentStats.find((a) => a.agentId === data.agentId);
      if (agent !== undefined) agent.circuitState = data.to;
      return undefined;
    }
    case 'stream:gap':
      return 'resync';
    default:
      return undefined;
  }
}

function finish(state, taskId, outcome) {
  const task = state.tasks.get(taskId);
  state.tasks.delete(taskId);
  state.recent = [{ taskId, type: outcome.type ?? task?.type, at: Date.now(), ...outcome }, ...state.recent.filter((t) => t.taskId !== taskId)].slice(0, RECENT);
  if (state.selected?.taskId === taskId) state.selected.stale = true;
}

function summary(value) {
  try {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    return text === undefined ? '' : text.length > 160 ? `${text.slice(0, 159)}…` : text;
  } catch {
    return '';
  }
}
