// Helpers shared by the benchmarks: seeded randomness, statistics, formatting.
import { pathToFileURL } from 'node:url';

/** A small seeded PRNG (mulberry32), so every run and every process draws the same numbers. */
export function rng(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` priorities 0..4 (0 = CRITICAL), uniformly drawn from a fixed seed. */
export function priorities(n, seed = 42) {
  const next = rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 5);
  return out;
}

export function median(values) {
  return percentile(values, 0.5);
}

/** Nearest-rank percentile of an unsorted list (p in 0..1). */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank];
}

/** Yields to the event loop so pending callbacks and microtasks run. */
export function tick() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Full GC when the process runs with --expose-gc; a no-op otherwise. */
export async function settleHeap() {
  await tick();
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
    globalThis.gc();
  }
}

/** The list rotated left by `by`, so contenders alternate who goes first from run to run. */
export function rotate(list, by) {
  const k = ((by % list.length) + list.length) % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

export function fmtInt(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : String(n);
}

export function fmt(n, digits = 2) {
  return Number.isFinite(n) ? n.toFixed(digits) : String(n);
}

export function fmtRatio(n) {
  return Number.isFinite(n) ? `${n.toFixed(2)}x` : String(n);
}

/** A markdown table: header row and rows of cells (strings). */
export function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** True when the module at `url` is the script node was started with. */
export function isMain(url) {
  return process.argv[1] !== undefined && url === pathToFileURL(process.argv[1]).href;
}

/** Reads a positive integer from the environment, or the fallback. */
export function envInt(name, fallback) {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : fallback;
}
