import { h, heading, PRIORITIES, replace } from '../dom.js';

const WIDTH = 600;
const HEIGHT = 160;

/** Queue depth per priority over the last two minutes: a stacked area chart in SVG, with a legend. */
export function queueChart(root) {
  const legend = h('ul', { class: 'legend' });
  const chart = h('svg', { class: 'chart', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'queue depth per priority over time' });
  const scale = h('div', { class: 'scale' });
  replace(root, heading('queue-title', 'Queue depth', 'per priority, last 2 min'), h('div', { class: 'plot' }, scale, chart), legend);
  let drawn = -1;
  return {
    render(state) {
      if (state.history.length === drawn) return;
      drawn = state.history.length;
      const samples = state.history;
      const latest = samples[samples.length - 1]?.byPriority ?? {};
      replace(
        legend,
        PRIORITIES.map((name, i) => h('li', { 'data-level': i }, h('span', { class: 'swatch' }), `${name} `, h('strong', {}, String(latest[name] ?? 0)))),
      );
      const totals = samples.map((s) => PRIORITIES.reduce((sum, name) => sum + (s.byPriority[name] ?? 0), 0));
      const max = Math.max(4, ...totals);
      const top = niceCeiling(max);
      replace(scale, h('span', {}, String(top)), h('span', {}, String(Math.round(top / 2))), h('span', {}, '0'));
      const x = (i) => (samples.length <= 1 ? WIDTH : (i / (samples.length - 1)) * WIDTH);
      const y = (value) => HEIGHT - (value / top) * HEIGHT;
      const layers = [];
      const base = samples.map(() => 0);
      // Stacked from CRITICAL at the bottom up to BACKGROUND.
      PRIORITIES.forEach((name, level) => {
        const upper = samples.map((s, i) => base[i] + (s.byPriority[name] ?? 0));
        if (samples.length > 0) {
          const points = [...upper.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`), ...base.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).reverse()];
          layers.push(h('polygon', { points: points.join(' '), class: 'layer', 'data-level': level }));
        }
        upper.forEach((v, i) => (base[i] = v));
      });
      const grid = [0.5, 1].map((f) => h('line', { x1: 0, x2: WIDTH, y1: HEIGHT - f * HEIGHT, y2: HEIGHT - f * HEIGHT, class: 'grid' }));
      replace(chart, grid, layers);
    },
  };
}

/** The smallest of 1, 2, 4 × 10^k at or above `value`: its half is a whole number too. */
function niceCeiling(value) {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 4, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}
