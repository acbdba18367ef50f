import { clock, duration, h, heading, replace } from '../dom.js';

/** Recent completions and failures, newest first. */
export function recent(root, { select }) {
  const list = h('ul', { class: 'recent-list' });
  const empty = h('p', { class: 'empty' }, 'No task has finished yet.');
  replace(root, heading('recent-title', 'Recently finished'), list, empty);
  let shown = null;
  return {
    render(state) {
      if (shown === state.recent) return;
      shown = state.recent;
      empty.hidden = state.recent.length > 0;
      replace(
        list,
        state.recent.map((t) =>
          h(
            'li',
            { 'data-status': t.status, 'data-task': t.taskId },
            h(
              'div',
              { class: 'line' },
              h('span', { class: 'badge', 'data-status': t.status }, t.status),
              h('button', { type: 'button', class: 'link mono', onclick: () => select(t.taskId) }, t.taskId),
              h('span', { class: 'when muted' }, t.at === undefined ? '' : clock(t.at)),
            ),
            h('div', { class: 'detail' }, [t.agentId, t.duration === undefined ? null : duration(t.duration), t.detail || null].filter(Boolean).join(' · ')),
          ),
        ),
      );
    },
  };
}
