import { duration, h, replace } from '../dom.js';

const CONNECTION = {
  connecting: ['connecting…', 'wait'],
  live: ['live', 'ok'],
  reconnecting: ['reconnecting…', 'wait'],
  unauthorized: ['token needed', 'bad'],
};

/** Title, connection state, the store and the headline counters. */
export function header(root, { askToken }) {
  const status = h('span', { class: 'connection', role: 'status', 'aria-live': 'polite' });
  const figures = h('dl', { class: 'figures' });
  const store = h('span', { class: 'store' });
  replace(
    root,
    h('div', { class: 'brand' }, h('img', { src: 'favicon.svg', alt: '', width: 22, height: 22 }), h('h1', {}, 'porch'), store, status),
    figures,
    h('button', { type: 'button', class: 'ghost token-button', onclick: () => askToken() }, 'Token'),
  );
  let last = '';
  return {
    render(state) {
      const [label, tone] = CONNECTION[state.connection] ?? [state.connection, 'wait'];
      status.textContent = label;
      status.dataset.tone = tone;
      const s = state.stats;
      if (s === null) return;
      store.textContent = `${s.store} · up ${duration(s.uptime)}`;
      const items = [
        ['submitted', s.totalSubmitted],
        ['running', s.running],
        ['queued', s.taskQueue.size + s.taskQueue.retrying],
        ['completed', s.totalCompleted],
        ['failed', s.totalFailed, s.totalFailed > 0 ? 'bad' : ''],
        ['cancelled', s.totalCancelled],
        ['dead letters', s.taskQueue.deadLetters, s.taskQueue.deadLetters > 0 ? 'bad' : ''],
        ['success', s.totalCompleted + s.totalFailed === 0 ? '—' : `${((s.totalCompleted / (s.totalCompleted + s.totalFailed)) * 100).toFixed(1)}%`],
      ];
      const key = JSON.stringify(items);
      if (key === last) return;
      last = key;
      replace(figures, items.map(([name, value, tone]) => h('div', { class: 'figure', 'data-tone': tone || null }, h('dt', {}, name), h('dd', {}, String(value)))));
    },
  };
}
