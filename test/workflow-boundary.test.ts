// DESIGN.md: workflow, cli and server use only the public API (and each other), and the arrows
// point one way (nothing of the engine imports them). Checked on the sources' import statements.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

interface Import {
  file: string;
  from: string;
  typeOnly: boolean;
  names: string[];
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const out: Import[] = [];
  for (const match of text.matchAll(/^import\s+(type\s+)?([\s\S]*?)\s+from\s+'([^']+)';/gm)) {
    const clause = match[2]!;
    const names = [...clause.matchAll(/(?:^|[{,]\s*)(type\s+)?([A-Za-z_$][\w$]*)(?:\s+as\s+[\w$]+)?/g)]
      .filter((m) => m[1] === undefined)
      .map((m) => m[2]!)
      .filter((name) => name !== 'type');
    out.push({ file: relative(SRC, file), from: match[3]!, typeOnly: match[1] !== undefined, names: match[1] !== undefined ? [] : names });
  }
  return out;
}

// Modules of the public API: index.ts re-exports what they export (values checked against it).
const PUBLIC = new Set(['index.js', 'errors.js', 'enums.js', 'orchestrator/parallel-orchestrator.js']);

describe('the workflow, cli and server layers use only the public API', () => {
  it('imports nothing else of the library than the public modules, and only what index.ts exports', () => {
    const offenders: string[] = [];
    for (const file of [...sources(join(SRC, 'workflow')), ...sources(join(SRC, 'cli')), ...sources(join(SRC, 'server'))]) {
      for (const imp of importsOf(file)) {
        if (!imp.from.startsWith('.')) continue;
        const target = relative(SRC, join(file, '..', imp.from)).split('\\').join('/');
        if (target.startsWith('workflow/') || target.startsWith('cli/') || target.startsWith('server/')) continue;
        if (!PUBLIC.has(target)) {
          offenders.push(`${imp.file} imports ${imp.from}`);
          continue;
        }
        for (const name of imp.names) if (!(name in api)) offenders.push(`${imp.file} imports ${name} from ${imp.from}, which index.ts does not export`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('nothing outside them imports them, except index.ts', () => {
    const offenders: string[] = [];
    for (const file of sources(SRC)) {
      const rel = relative(SRC, file).split('\\').join('/');
      if (rel.startsWith('workflow/') || rel.startsWith('cli/') || rel === 'index.ts') continue;
      for (const imp of importsOf(file)) if (/(^|\/)(workflow|cli)\//.test(imp.from)) offenders.push(`${rel} imports ${imp.from}`);
    }
    expect(offenders).toEqual([]);
  });
});
