// The porch dashboard. No framework, on purpose: the page is nine small components over one
// model, drawn with a 40-line DOM helper (dom.js), so it ships as these files, needs no build
// step from users nor a vendored runtime, runs under a strict Content-Security-Policy (no inline
// script or style), and reads like the API it shows. Each component lives in components/ with
// its own stylesheet in styles/; api.js is the only code that talks to the server.
import { ApiError, createClient } from './api.js';
import { agents } from './components/agents.js';
import { cluster } from './components/cluster.js';
import { deadLetters } from './components/dead-letters.js';
import { header } from './components/header.js';
import { queueChart } from './components/queue-chart.js';
import { recent } from './components/recent.js';
import { running } from './components/running.js';
import { taskDetail } from './components/task-detail.js';
import { tokenDialog } from './components/token-dialog.js';
import { workers } from './components/workers.js';
import { applyEvent, createState, loadSnapshot, loadStats } from './state.js';

const STATS_EVERY_MS = 1000;
const state = createState();
const $ = (id) => document.getElementById(id);

let dialog;
const client = createClient({ onUnauthorized: (reason) => dialog.open(client.token === '' ? undefined : `The token was refused${reason ? `: ${reason}` : ''}. Enter it again.`) });
dialog = tokenDialog($('token-dialog'), {
  submit: (token) => {
    client.setToken(token);
    stream.restart();
  },
});

const select = (taskId) => void showTask(taskId);
const components = [
  header($('header'), { askToken: () => dialog.open() }),
  queueChart($('queue-chart')),
  workers($('workers')),
  cluster($('cluster')),
  running($('running'), { select }),
  recent($('recent'), { select }),
  agents($('agents')),
  deadLetters($('dead-letters'), { requeue, select }),
  taskDetail($('task-detail'), { close: () => ((state.selected = null), changed()), cancel, requeue }),
];

let drawn = -1;
let frame = 0;
function changed() {
  state.version++;
  if (frame === 0) frame = requestAnimationFrame(draw);
}
function draw() {
  frame = 0;
  if (drawn === state.version) return;
  drawn = state.version;
  for (const component of components) component.render(state);
}

// Events that arrive while a snapshot loads wait, then apply on top of it (each event sets a
// state, so replaying one the snapshot already shows changes nothing).
let pending = null;
let dlqTimer = 0;
let lastSequence = 0;

async function resync() {
  pending = [];
  try {
    const [live, finished, letters] = await Promise.all([
      client.get('/api/tasks?status=queued,running,retrying&limit=1000'),
      client.get('/api/tasks?status=completed,failed,timeout,cancelled&limit=40'),
      client.get('/api/dlq'),
    ]);
    loadSnapshot(state, { live, finished, deadLetters: letters });
    // The running ones' latest progress, which listTasks does not carry.
    await Promise.all(
      live
        .filter((t) => t.status === 'running')
        .slice(0, 50)
        .map(async (t) => {
          const details = await client.get(`/api/tasks/${encodeURIComponent(t.taskId)}`).catch(() => null);
          const task = state.tasks.get(t.taskId);
          if (details !== null && task !== undefined && task.state === undefined) applyEvent(state, { event: 'task:progress', data: { taskId: t.taskId, data: details.progress } });
        }),
    );
  } catch (error) {
    console.warn('porch: snapshot', error);
  } finally {
    const queued = pending ?? [];
    pending = null;
    for (const message of queued) handle(message);
    changed();
  }
}

function handle(message) {
  if (pending !== null) {
    pending.push(message);
    return;
  }
  let item;
  try {
    item = JSON.parse(message.data);
  } catch {
    return;
  }
  if (message.event === 'stats') {
    loadStats(state, item);
    changed();
    return;
  }
  // Sequences only grow: a smaller one means the server restarted (a new event stream).
  if (typeof item.sequence === 'number') {
    if (item.sequence < lastSequence) {
      lastSequence = item.sequence;
      void resync();
      return;
    }
    lastSequence = item.sequence;
  }
  const follow = applyEvent(state, item);
  if (state.selected?.stale) void showTask(state.selected.taskId);
  if (follow === 'resync') void resync();
  if (follow === 'dlq' && dlqTimer === 0) {
    dlqTimer = setTimeout(async () => {
      dlqTimer = 0;
      state.deadLetters = await client.get('/api/dlq').catch(() => state.deadLetters);
      changed();
    }, 200);
  }
  changed();
}

const stream = client.stream(`/api/events?stats=${STATS_EVERY_MS}`, {
  onState: (connection) => {
    state.connection = connection;
    changed();
  },
  // On the first connection, and after a reconnection the server could not fully replay, a snapshot.
  onOpen: (resumed) => (resumed ? undefined : resync()),
  onEvent: handle,
});

async function showTask(taskId) {
  state.selected = { taskId, loading: true, details: null, error: null };
  changed();
  try {
    const details = await client.get(`/api/tasks/${encodeURIComponent(taskId)}`);
    if (state.selected?.taskId === taskId) state.selected = { taskId, loading: false, details, error: null };
  } catch (error) {
    if (state.selected?.taskId === taskId) state.selected = { taskId, loading: false, details: null, error: error instanceof ApiError ? error.message : String(error) };
  }
  changed();
}

async function requeue(taskId) {
  try {
    await client.post(`/api/dlq/${encodeURIComponent(taskId)}/requeue`);
    state.deadLetters = state.deadLetters.filter((d) => d.taskId !== taskId);
    if (state.selected?.taskId === taskId) void showTask(taskId);
    changed();
    return true;
  } catch (error) {
    alertError('requeue', error);
    return false;
  }
}

async function cancel(taskId) {
  try {
    await client.post(`/api/tasks/${encodeURIComponent(taskId)}/cancel`, { reason: 'cancelled from the dashboard' });
  } catch (error) {
    alertError('cancel', error);
  }
  void showTask(taskId);
}

function alertError(what, error) {
  if (error instanceof ApiError && error.status === 401) return;
  window.alert(`Could not ${what}: ${error instanceof Error ? error.message : String(error)}`);
}

// Durations in the running list tick even when no event arrives.
setInterval(changed, 1000);
