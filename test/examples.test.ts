import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// Every example runs as its own process against the built dist/ (built by the global setup).
const examplesDir = fileURLToPath(new URL('../examples/', import.meta.url));
const examples = readdirSync(examplesDir).filter((name) => name.endsWith('.mjs')).sort();

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs an example to its end; a hung example is killed after 30 s and shows up as `signal`. */
function runExample(file: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [file], { cwd: examplesDir, timeout: 30_000, killSignal: 'SIGKILL' }, (_error, stdout, stderr) => {
      resolve({ code: child.exitCode, signal: child.signalCode, stdout, stderr });
    });
  });
}

/** What each example's output must show. */
const checks: Record<string, (out: string) => void> = {
  'distributed.mjs': (out) => {
    expect(out).toBe('33%\n67%\n100%\n{ resized: 3 } by resizer\nnodes: 2\n');
  },
  'basic.mjs': (out) => {
    expect(out).toMatch(/^Progress: 25$/m);
    expect(out).toMatch(/^Progress: 100$/m);
    expect(out).toMatch(/Complete: \{\s+type: 'complete'/);
    expect(out).toContain('readings: 1000');
  },
  'priority-scheduling.mjs': (out) => {
    expect(out).toContain('start order: system-monitor → system-monitor #2 → data-process → data-process #2 → optimize → optimize #2');
    expect(out).toMatch(/data-process on executor-1: \{"acct-0":4750/);
  },
  'checkpointing.mjs': (out) => {
    expect(out).toContain("checkpoint of");
    expect(out).toContain("{ progress: 50, data: 'checkpoint-state' }");
    expect(out).toMatch(/retry: attempt 2 after "simulated crash after chunk 3"; checkpoint: \{ chunk: 3, primes: \d+ \}/);
    expect(out).toMatch(/^attempt 2: resuming at chunk 3 /m);
    // Attempt 2 runs only the chunks left: 4 and 5.
    expect(out).not.toMatch(/^attempt 2: chunk [123]\/5/m);
    // π(200000) = 17984: resuming lost no partial count.
    expect(out).toContain('primes: { limit: 200000, primes: 17984 }');
    expect(out).toContain('from: 5000');
    expect(out).toContain('after completion: null');
  },
  'circuit-breaker.mjs': (out) => {
    expect(out).toMatch(/Agent geo-primary: closed → open[\s\S]*Agent geo-primary: open → half-open[\s\S]*Agent geo-primary: half-open → closed/);
    expect(out).toMatch(/^route 0: \d+ km by geo-backup \(attempts: 2\)$/m);
    expect(out).toMatch(/^route 12: \d+ km by geo-primary$/m);
    expect(out).toContain('geo-primary: closed, completed 3, failed 5');
  },
  'parallel-agent-execution.mjs': (out) => {
    const completed = Number(/totalCompleted: (\d+)/.exec(out)?.[1]);
    expect(completed).toBeGreaterThan(0);
    expect(out).toContain(`totalSubmitted: ${completed}, totalCompleted: ${completed}, totalFailed: 0`);
    expect(out).toContain('successRate: 100.0%');
    expect(out).toMatch(/^ {2}workerPool: \{"currentWorkers":\d+/m);
    expect(out).toMatch(/^ {2}taskQueue: \{"size":0/m);
    expect(out).toContain('agentRouter: 10 agents');
    for (const priority of ['CRITICAL', 'HIGH', 'NORMAL', 'LOW', 'BACKGROUND']) expect(out).toMatch(new RegExp(`^✓ \\S+ +${priority} `, 'm'));
    expect(out).toMatch(/^ {2}… compress-1 100% /m);
    expect(out).toMatch(/^ {2}↻ monitor-\d retry \(attempt 2\): health probe timed out$/m);
    expect(out).toMatch(/^✓ monitor-\d +CRITICAL +monitor .* \[\d attempts\]$/m);
    expect(out.split('\n').length).toBeLessThan(80);
  },
  'thread-agents.mjs': (out) => {
    expect(out).toMatch(/^hash 7 on thread-\d+: [0-9a-f]{16}…$/m);
    expect(out).toContain('Agent flaky-api: half-open → closed');
    expect(out).toContain('flaky: { ok: true, calls: 3 }');
  },
  'streaming.mjs': (out) => {
    expect(out).toContain('delta 1: [{"op":"replace","path":"","value":{"indexed":1,"of":12,"terms":{"red":1,"fox":1}}}]');
    expect(out).toContain('late subscriber: start → snapshot 5 → delta 6 → delta 7 → delta 8');
    expect(out).toContain('stalled consumer: start → snapshot 11 → delta 12 → complete (4 conflations)');
    expect(out).toContain('replay after the end: snapshot 10 → delta 11 → delta 12 → complete');
    expect(out).toContain('client copy matches the final state: true; rebuilt from the replay: true');
  },
  'persistence.mjs': (out) => {
    expect(out).toContain('first process ended by SIGKILL');
    expect(out).toContain('store: sqlite, recovered: 2, dead letters: report-1 (the warehouse is offline)');
    expect(out).toContain('import-1: attempt 2 resumes at batch 4/6');
    expect(out).toContain('import-1: 600 rows after 2 attempt(s)');
    expect(out).toContain('report-1 requeued: report sent');
    expect(out).toContain('recovered entries: import-1 was running (with checkpoint), import-2 was queued');
  },
  'workflows.mjs': (out) => {
    expect(out).toContain('waves: build → unit-tests + e2e-tests + notes → tag → deploy');
    // The middle wave runs at once: its three steps start before any of them completes.
    const wave = out.split('\n').slice(out.split('\n').indexOf('  ✓ build: app-2.1.0.tgz') + 1, out.split('\n').indexOf('  ✓ build: app-2.1.0.tgz') + 4);
    expect(wave.sort()).toEqual(['  ▶ e2e-tests on tester', '  ▶ notes', '  ▶ unit-tests on tester']);
    expect(out).toMatch(/… build 50%\n {2}… build 100%\n {2}✓ build: app-2\.1\.0\.tgz/);
    expect(out).toContain('release-2.1.0: completed; deploy said "deployed app-2.1.0.tgz"');
    expect(out).toContain('steps: build=completed unit-tests=completed e2e-tests=completed notes=completed tag=completed deploy=completed');
    expect(out).toContain('  ✗ deploy: the cluster refused the deployment\n  rollback: tag, notes\n  ↶ tag: v2.2.0 removed (failed: deploy failed)\n  ↶ notes: draft deleted');
    expect(out).toContain('release-2.2.0: failed at deploy, rolled back: true, compensated: tag, notes');
    expect(out).toContain('waves: @acme/core → @acme/plugin-a + @acme/plugin-b → @acme/cli → @acme/docs');
    expect(out).toContain('cycles: @acme/plugin-a ↔ @acme/plugin-b');
    expect(out).toContain('decision: allow (completed); stages: dependency_analysis:completed admission:completed testing:completed building:completed validation:completed integration:skipped commit:completed');
    expect(out).toContain('receipt: 28 entries, valid: true');
    expect(out).toContain('after editing entry 3: {"valid":false,"index":3,"reason":"its content does not match its hash: the entry was modified"}');
  },
};

describe('examples', () => {
  it('has a check for every example and an example for every check', () => {
    expect(examples).toEqual(Object.keys(checks).sort());
  });

  it.each(examples)('%s exits 0 by itself with the expected output', async (file) => {
    const run = await runExample(file);
    expect({ code: run.code, signal: run.signal, stderr: run.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    checks[file]?.(run.stdout);
  });
});
