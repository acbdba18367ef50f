import { h, heading, replace } from '../dom.js';

/** Agents: role, capabilities, load / maxConcurrent as a bar, circuit state in colour, counts. */
export function agents(root) {
  const body = h('tbody');
  const note = h('span', { class: 'note' });
  const title = heading('agents-title', 'Agents');
  title.append(note);
  replace(
    root,
    title,
    h(
      'div',
      { class: 'scroll' },
      h(
        'table',
        { class: 'agents-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'agent'), h('th', { class: 'wide-only' }, 'role'), h('th', { class: 'wide-only' }, 'capabilities'), h('th', {}, 'load'), h('th', {}, 'circuit'), h('th', { class: 'num wide-only' }, 'done'), h('th', { class: 'num wide-only' }, 'failed'))),
        body,
      ),
    ),
  );
  let last = '';
  return {
    render(state) {
      const list = state.stats?.agentRouter.agentStats;
      if (list === undefined) return;
      const key = JSON.stringify(list);
      if (key === last) return;
      last = key;
      note.textContent = `${list.length} registered`;
      if (list.length === 0) {
        replace(body, h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No agents registered. Start porch serve with --agents <file>.')));
        return;
      }
      replace(body, list.map(row));
    },
  };
}

function row(a) {
  const share = a.maxConcurrent === 0 ? 0 : (a.active / a.maxConcurrent) * 100;
  const fill = h('span', { class: 'fill' });
  fill.style.width = `${share}%`;
  const circuit = a.isolated ? 'isolated' : a.circuitState;
  return h(
    'tr',
    { 'data-agent': a.agentId },
    h(
      'td',
      { class: 'mono' },
      a.agentId,
      a.execution === 'thread' ? h('span', { class: 'tag' }, 'thread') : null,
      a.rateLimited ? h('span', { class: 'tag warn' }, 'rate-limited') : null,
      // On a phone the role goes under the id (its column is hidden).
      h('span', { class: 'role-inline' }, a.role),
    ),
    h('td', { class: 'wide-only' }, a.role),
    h('td', { class: 'wide-only caps' }, a.capabilities.join(', ') || '(any)'),
    h('td', {}, h('div', { class: 'load' }, h('span', { class: 'load-bar', role: 'img', 'aria-label': `${a.active} of ${a.maxConcurrent}` }, fill), h('span', { class: 'load-text' }, `${a.active}/${a.maxConcurrent}`))),
    h('td', {}, h('span', { class: 'circuit', 'data-state': circuit }, circuit)),
    h('td', { class: 'num wide-only' }, String(a.completed)),
    h('td', { class: 'num wide-only' }, String(a.failed)),
  );
}
