import { clock, h, heading, replace } from '../dom.js';

/** The dead-letter queue, with a Requeue button per task. */
export function deadLetters(root, { requeue, select }) {
  const body = h('tbody');
  const note = h('span', { class: 'note' });
  const title = heading('dlq-title', 'Dead letters');
  title.append(note);
  const empty = h('p', { class: 'empty' }, 'No dead letters.');
  const tableWrap = h(
    'div',
    { class: 'scroll' },
    h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'task'), h('th', { class: 'wide-only' }, 'type'), h('th', {}, 'error'), h('th', { class: 'num wide-only' }, 'attempts'), h('th', { class: 'wide-only' }, 'failed at'), h('th', {}, ''))), body),
  );
  replace(root, title, tableWrap, empty);
  let shown = null;
  return {
    render(state) {
      if (shown === state.deadLetters) return;
      shown = state.deadLetters;
      note.textContent = `${state.deadLetters.length}`;
      empty.hidden = state.deadLetters.length > 0;
      tableWrap.hidden = state.deadLetters.length === 0;
      replace(
        body,
        state.deadLetters.map((d) => {
          const button = h('button', { type: 'button', class: 'requeue', 'data-requeue': d.taskId }, 'Requeue');
          button.addEventListener('click', async () => {
            button.disabled = true;
            button.textContent = 'Requeuing…';
            if (!(await requeue(d.taskId))) {
              button.disabled = false;
              button.textContent = 'Requeue';
            }
          });
          return h(
            'tr',
            { 'data-task': d.taskId },
            h('td', {}, h('button', { type: 'button', class: 'link mono', onclick: () => select(d.taskId) }, d.taskId)),
            h('td', { class: 'wide-only' }, d.type),
            h('td', { class: 'error-text' }, h('span', { class: 'code' }, d.code), ' ', d.error.message),
            h('td', { class: 'num wide-only' }, String(d.attempts)),
            h('td', { class: 'wide-only' }, clock(d.failedAt)),
            h('td', { class: 'actions' }, button),
          );
        }),
      );
    },
  };
}
