// Tiny DOM helpers. Text always goes in through textContent (never innerHTML), so task ids,
// payloads and error messages from the server cannot inject markup.

/**
 * Creates an element: h('div', { class: 'row', onclick: fn }, 'text', child, [children]).
 * Attributes starting with "on" become listeners; false/null/undefined ones are skipped.
 */
export function h(tag, attributes = {}, ...children) {
  const svg = SVG_TAGS.has(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG_TAGS = new Set(['svg', 'g', 'path', 'polygon', 'polyline', 'line', 'rect', 'text', 'title']);

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export const PRIORITIES = ['CRITICAL', 'HIGH', 'NORMAL', 'LOW', 'BACKGROUND'];

export function priorityName(value) {
  return PRIORITIES[value] ?? String(value);
}

/** The `progress` field (0-100) of a progress state, as the seed's agents stream it; else undefined. */
export function progressOf(state) {
  if (state === null || typeof state !== 'object') return undefined;
  const value = state.progress;
  return typeof value === 'number' && Number.isFinite(value) ? Math.max(0, Math.min(100, value)) : undefined;
}

/** A value as one short line of JSON. */
export function brief(value, max = 120) {
  let text;
  try {
    text = typeof value === 'string' ? value : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text === undefined) return '';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function clock(timestamp) {
  return new Date(timestamp).toLocaleTimeString(undefined, { hour12: false });
}

/** A section heading with an optional note at its right. */
export function heading(id, title, note) {
  return h('h2', { id }, title, note === undefined ? null : h('span', { class: 'note' }, note));
}
