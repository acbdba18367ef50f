import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One dashboard file, held in memory (the whole dashboard is a few tens of kB). */
export interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** Where the page lives: `dist/dashboard/` next to the built server, `src/dashboard/` in the sources. */
const DASHBOARD_DIR = fileURLToPath(new URL('../dashboard/', import.meta.url));

/**
 * The dashboard's files by URL path, read once. A request is answered only when its path is a
 * key of this map, so no path from a client ever reaches the file system (no traversal, no
 * symlink surprises, no directory listings).
 */
export async function loadStaticFiles(): Promise<Map<string, StaticFile>> {
  const dir = DASHBOARD_DIR;
  const files = new Map<string, StaticFile>();
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const type = TYPES[extname(entry.name)];
    if (type === undefined) continue;
    const path = join(entry.parentPath, entry.name);
    const body = await readFile(path);
    const urlPath = `/${relative(dir, path).split(sep).join('/')}`;
    files.set(urlPath, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  const index = files.get('/index.html');
  if (index !== undefined) files.set('/', index);
  return files;
}
