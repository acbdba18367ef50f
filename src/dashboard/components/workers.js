import { h, heading, replace } from '../dom.js';

/** The worker pool: busy out of current and max, threads, peak, runs. */
export function workers(root) {
  const body = h('div', { class: 'workers-body' });
  replace(root, heading('workers-title', 'Workers'), body);
  let last = '';
  return {
    render(state) {
      const pool = state.stats?.workerPool;
      if (pool === undefined) return;
      const key = JSON.stringify(pool);
      if (key === last) return;
      last = key;
      const busy = pool.maxWorkers === 0 ? 0 : (pool.busy / pool.maxWorkers) * 100;
      const current = pool.maxWorkers === 0 ? 0 : (pool.currentWorkers / pool.maxWorkers) * 100;
      const meter = h('div', { class: 'pool-meter', role: 'img', 'aria-label': `${pool.busy} busy of ${pool.currentWorkers} workers, at most ${pool.maxWorkers}` }, h('div', { class: 'current' }), h('div', { class: 'busy' }));
      meter.children[0].style.width = `${current}%`;
      meter.children[1].style.width = `${busy}%`;
      replace(
        body,
        h('p', { class: 'big' }, h('strong', {}, String(pool.busy)), ` busy of ${pool.currentWorkers}`, h('span', { class: 'muted' }, ` (max ${pool.maxWorkers})`)),
        meter,
        h(
          'dl',
          { class: 'pairs' },
          pair('idle', pool.idle),
          pair('threads', pool.threads),
          pair('peak', pool.peakWorkers),
          pair('runs', pool.tasksRun),
          pair('success', `${(pool.successRate * 100).toFixed(1)}%`),
          pair('replaced', pool.workersReplaced),
        ),
      );
    },
  };
}

function pair(name, value) {
  return h('div', {}, h('dt', {}, name), h('dd', {}, String(value)));
}
