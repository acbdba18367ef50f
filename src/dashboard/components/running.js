import { brief, duration, h, heading, priorityName, replace } from '../dom.js';

const SHOWN = 50;

/**
 * Running (and retry-waiting) tasks with a live progress bar: the bar reads `progress` (0-100)
 * from the task's latest state; a task whose state has no such field shows the state instead.
 * Rows are kept by task id and updated in place, so bars move smoothly.
 */
export function running(root, { select }) {
  const list = h('ul', { class: 'task-list' });
  const note = h('span', { class: 'note' });
  const title = heading('running-title', 'Running tasks');
  title.append(note);
  const empty = h('p', { class: 'empty' }, 'Nothing running.');
  replace(root, title, list, empty);
  const rows = new Map();
  return {
    render(state) {
      const tasks = [...state.tasks.values()].filter((t) => t.status === 'running' || t.status === 'retrying');
      const queued = state.tasks.size - tasks.length;
      note.textContent = `${tasks.length} running · ${queued} queued`;
      empty.hidden = tasks.length > 0;
      const shown = tasks.slice(0, SHOWN);
      const ids = new Set(shown.map((t) => t.taskId));
      for (const [id, row] of rows) {
        if (!ids.has(id)) {
          row.el.remove();
          rows.delete(id);
        }
      }
      shown.forEach((task, index) => {
        let row = rows.get(task.taskId);
        if (row === undefined) {
          row = createRow(task, select);
          rows.set(task.taskId, row);
        }
        updateRow(row, task);
        if (list.children[index] !== row.el) list.insertBefore(row.el, list.children[index] ?? null);
      });
    },
  };
}

function createRow(task, select) {
  const fill = h('span', { class: 'fill' });
  const bar = h('span', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-label': `progress of ${task.taskId}` }, fill);
  const percent = h('span', { class: 'percent' });
  const meta = h('span', { class: 'meta' });
  const stateText = h('span', { class: 'state-text mono' });
  const el = h(
    'li',
    { class: 'task-row', 'data-task': task.taskId },
    h('button', { type: 'button', class: 'link mono task-id', onclick: () => select(task.taskId), title: 'show its audit trail and last state' }, task.taskId),
    meta,
    h('span', { class: 'progress' }, bar, percent, stateText),
  );
  return { el, bar, fill, percent, meta, stateText };
}

function updateRow(row, task) {
  row.el.dataset.status = task.status;
  const elapsed = task.startedAt === undefined ? '' : ` · ${duration(Date.now() - task.startedAt)}`;
  row.meta.textContent = `${task.type} · ${task.agentId ?? '—'}${task.attempt > 1 ? ` · attempt ${task.attempt}` : ''}${task.priority === undefined ? '' : ` · ${priorityName(task.priority)}`}${elapsed}`;
  const hasBar = task.progress !== undefined;
  row.bar.hidden = !hasBar;
  row.percent.hidden = !hasBar;
  row.stateText.hidden = hasBar;
  if (hasBar) {
    row.fill.style.width = `${task.progress}%`;
    row.bar.setAttribute('aria-valuenow', String(Math.round(task.progress)));
    row.percent.textContent = `${Math.round(task.progress)}%`;
  } else {
    row.stateText.textContent = task.status === 'retrying' ? 'waiting to retry' : task.state === undefined ? 'running (no progress yet)' : brief(task.state, 80);
  }
}
