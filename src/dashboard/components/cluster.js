import { clock, h, heading, replace } from '../dom.js';

/** The cluster's nodes (PostgreSQL store only: `stats.cluster`); hidden elsewhere. */
export function cluster(root) {
  const body = h('tbody');
  const title = heading('cluster-title', 'Cluster nodes');
  const note = h('span', { class: 'note' });
  title.append(note);
  replace(
    root,
    title,
    h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'node'), h('th', {}, 'host'), h('th', { class: 'wide-only' }, 'pid'), h('th', {}, 'agents'), h('th', {}, 'running'), h('th', {}, 'heartbeat'))), body)),
  );
  let last = '';
  return {
    render(state) {
      const cluster = state.stats?.cluster;
      const nodes = cluster?.nodes;
      root.hidden = nodes === undefined;
      if (nodes === undefined) return;
      note.textContent = `${nodes.length} nodes · cluster-wide ${cluster.running ?? 0} running, ${cluster.queued ?? 0} queued`;
      const key = JSON.stringify(nodes);
      if (key === last) return;
      last = key;
      replace(
        body,
        nodes.map((n) =>
          h('tr', {}, h('td', { class: 'mono' }, n.nodeId), h('td', {}, n.host), h('td', { class: 'wide-only' }, String(n.pid)), h('td', {}, String(n.agents)), h('td', {}, String(n.running)), h('td', {}, clock(n.heartbeatAt))),
        ),
      );
    },
  };
}
