import { clock, h, priorityName, progressOf, replace } from '../dom.js';

/** A task's details, last state and audit trail, in a side panel (full screen on a phone). */
export function taskDetail(root, { close, cancel, requeue }) {
  let shown = null;
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !root.hidden) close();
  });
  return {
    render(state) {
      const selected = state.selected;
      root.hidden = selected === null;
      if (selected === null) {
        shown = null;
        return;
      }
      const key = `${selected.taskId}|${selected.loading}|${selected.error}|${JSON.stringify(selected.details?.progress ?? null)}|${selected.details?.status}`;
      if (key === shown) return;
      const first = shown === null || !shown.startsWith(`${selected.taskId}|`);
      shown = key;
      replace(root, panel(selected, state, { close, cancel, requeue }));
      if (first) root.querySelector('.close')?.focus();
    },
  };
}

function panel(selected, state, { close, cancel, requeue }) {
  const d = selected.details;
  const head = h('div', { class: 'detail-head' }, h('h2', { class: 'mono' }, selected.taskId), h('button', { type: 'button', class: 'ghost close', onclick: close, 'aria-label': 'close' }, '✕'));
  if (selected.loading) return h('div', { class: 'detail-panel', role: 'dialog', 'aria-label': `task ${selected.taskId}` }, head, h('p', { class: 'muted' }, 'Loading…'));
  if (selected.error) return h('div', { class: 'detail-panel', role: 'dialog' }, head, h('p', { class: 'error-text' }, selected.error));
  const live = ['queued', 'running', 'retrying'].includes(d.status);
  const dead = state.deadLetters.some((x) => x.taskId === d.taskId);
  const progress = progressOf(d.progress);
  const bar = h('span', { class: 'bar' }, h('span', { class: 'fill' }));
  if (progress !== undefined) bar.firstChild.style.width = `${progress}%`;
  return h(
    'div',
    { class: 'detail-panel', role: 'dialog', 'aria-label': `task ${d.taskId}` },
    head,
    h(
      'dl',
      { class: 'pairs detail-pairs' },
      pair('status', h('span', { class: 'badge', 'data-status': d.status }, d.status)),
      pair('type', d.type),
      pair('priority', priorityName(d.priority)),
      pair('attempts', String(d.attempt)),
      pair('agent', d.agentId ?? '—'),
      pair('capabilities', d.capabilities.join(', ') || '(any agent)'),
    ),
    h(
      'div',
      { class: 'detail-actions' },
      live ? h('button', { type: 'button', class: 'danger', onclick: () => cancel(d.taskId) }, 'Cancel task') : null,
      dead ? h('button', { type: 'button', onclick: () => requeue(d.taskId) }, 'Requeue') : null,
    ),
    progress === undefined ? null : h('div', { class: 'detail-progress' }, bar, ` ${Math.round(progress)}%`),
    block('Last state', d.progress),
    d.result === undefined ? null : block('Result', d.result),
    d.error === undefined ? null : h('section', {}, h('h3', {}, 'Error'), h('p', { class: 'error-text' }, h('span', { class: 'code' }, d.error.code ?? d.error.name), ' ', d.error.message)),
    block('Payload', d.payload),
    h('section', {}, h('h3', {}, `Audit trail (${d.history.length})`), history(d.history)),
  );
}

function pair(name, value) {
  return h('div', {}, h('dt', {}, name), h('dd', {}, value));
}

function block(title, value) {
  if (value === undefined) return null;
  let text;
  try {
    text = JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    text = String(value);
  }
  if (text.length > 20_000) text = `${text.slice(0, 20_000)}\n…`;
  return h('section', {}, h('h3', {}, title), h('pre', { class: 'json' }, text));
}

function history(entries) {
  if (entries.length === 0) return h('p', { class: 'muted' }, 'No audit entries.');
  return h(
    'ol',
    { class: 'timeline' },
    entries.map((e) =>
      h(
        'li',
        { 'data-type': e.type },
        h('span', { class: 'time' }, clock(e.timestamp)),
        h('span', { class: 'event' }, e.type),
        h('span', { class: 'muted' }, [e.agentId, e.attempt === null || e.attempt === 0 ? null : `attempt ${e.attempt}`].filter(Boolean).join(' · ')),
        e.details === null ? null : h('span', { class: 'detail mono' }, JSON.stringify(e.details)),
      ),
    ),
  );
}
