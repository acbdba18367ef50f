/**
 * The URL of a worker thread's entry module, `file` next to the module at `moduleUrl`. Run from
 * the TypeScript sources (the test runner transforms them; a worker thread cannot load `.ts`),
 * the thread loads the same module built into dist/: `npm run build` first.
 */
export function threadEntry(file: string, moduleUrl: string): URL {
  const url = new URL(file, moduleUrl);
  if (!moduleUrl.endsWith('.ts')) return url;
  const at = url.pathname.lastIndexOf('/src/');
  return new URL(`${url.pathname.slice(0, at)}/dist/${url.pathname.slice(at + '/src/'.length)}`, url);
}
