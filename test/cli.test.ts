import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createParallelOrchestrator } from '../src/index.js';
import { DATABASE_URL, dropSchema, postgresAvailable, uniqueSchema } from './pg-helpers.js';
import { FIXTURES, http, Porch, porch, ROOT } from './porch-helpers.js';

// `porch` as users run it: the built dist/cli/main.js in a child process (the global setup builds).

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'porch-cli-'));
});
afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

const fixture = (name: string) => join(FIXTURES, name);
const postgres = await postgresAvailable();
const execFileAsync = promisify(execFile);
const ESC = String.fromCharCode(27);

describe('porch demo', () => {
  it('runs the ten agents with plain lines when stdout is not a terminal, and exits 0', async () => {
    const run = await porch(['demo']);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).not.toContain(ESC);
    expect(run.stdout).toMatch(/^started {4}monitor-1 on monitor$/m);
    expect(run.stdout).toMatch(/^progress {3}compress-1 100%$/m);
    expect(run.stdout).toMatch(/^retry {6}monitor-\d attempt 2 in \d+ ms: health probe timed out$/m);
    expect(run.stdout).toMatch(/^completed {2}monitor-\d on monitor in [\d.]+ ms after \d attempts: p95 \d+ ms/m);
    expect(run.stdout).toContain('tasks             30 submitted, 30 completed, 0 failed, 0 cancelled');
    for (const agent of ['observer', 'compressor', 'validator', 'orchestrator', 'analyzer', 'optimizer', 'monitor', 'aggregator', 'executor', 'coordinator']) {
      expect(run.stdout).toMatch(new RegExp(`^  ${agent} +α\\S+ +3 +\\d+ +closed$`, 'm'));
    }
  });

  it('--json prints one JSON object per event, then the stats', async () => {
    const run = await porch(['demo', '--rounds', '1', '--json']);
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { sequence?: number; event: string; data: Record<string, unknown> });
    const events = lines.slice(0, -1);
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.event === 'task:completed')).toHaveLength(10);
    expect(events.at(-1)?.event).toBe('orchestrator:shutdown');
    expect(lines.at(-1)).toMatchObject({ event: 'stats', data: { totalCompleted: 10, totalFailed: 0 } });
  });

  it('stops quietly when its reader goes away (porch demo | head -1)', async () => {
    const child = new Porch(['demo', '--rounds', '20', '--json']);
    await child.waitFor(/\n/);
    child.child.stdout!.destroy();
    const run = await child.done;
    expect(run.signal).toBeNull();
    expect(run.stderr).not.toMatch(/EPIPE|Unhandled|at /);
  });
});

describe('porch impact', () => {
  const monorepo = join(ROOT, 'test/fixtures/monorepo');

  it('prints the affected packages of a workspace, in waves (JSON too)', async () => {
    const run = await porch(['impact', monorepo, '--changed', '@fx/core', '--json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as { affectedPackages: string[]; waves: string[][]; cycles: string[][] };
    expect(report.affectedPackages).toContain('@fx/core');
    expect(report.waves[0]).toContain('@fx/core');
    const text = await porch(['impact', monorepo, '--changed', '@fx/core']);
    expect(text.stdout).toMatch(/^affected \(22\): .*@fx\/core/m);
  });

  it('exits 2 with one line when no change is given', async () => {
    const run = await porch(['impact', monorepo]);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('porch run', () => {
  it('exits 0 when every task succeeded', async () => {
    const run = await porch(['run', '--agents', fixture('ok.mjs')]);
    expect(run.stdout).toMatch(/^completed {2}echo-1 on echo in [\d.]+ ms: one$/m);
    expect(run.stdout).toContain('2 submitted, 2 completed, 0 failed');
    expect(run.code).toBe(0);
  });

  it('exits 1 when a task failed, naming it', async () => {
    const run = await porch(['run', '--agents', fixture('failing.mjs')], { env: { PORCH_FIXTURE_BROKEN: '1' } });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^failed {5}report-1 TASK_FAILED after 1 attempt: the warehouse is offline \(weekly\)$/m);
    expect(run.stdout).toContain('2 submitted, 0 completed, 2 failed');
  });

  it('takes a default export that is an (async) function', async () => {
    const run = await porch(['run', '--agents', fixture('async-default.mjs'), '--json']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/"event":"task:completed".*"result":5/);
  });

  it("runs the agents file's workflow, and exits 0 once it completed", async () => {
    const run = await porch(['run', '--agents', fixture('workflow.mjs')]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
  });

  it('SIGINT stops at once: exit 130, and a SQLite store keeps the task for the next start', async () => {
    const db = join(dir, 'interrupted.db');
    const child = new Porch(['run', '--agents', fixture('slow.mjs'), '--store', `sqlite:${db}`]);
    await child.waitFor(/^started {4}slow-1 on sleeper$/m);
    child.child.kill('SIGINT');
    const run = await child.done;
    expect(run.code).toBe(130);
    expect(run.stderr).toContain('porch: SIGINT: stopping, running tasks are cancelled; unfinished tasks stay in the store for the next start');
    expect(run.stdout).not.toContain('final stats');
    // The task is still unfinished in the file: cancel it from another process.
    const cancel = await porch(['cancel', 'slow-1', '--store', `sqlite:${db}`, '--reason', 'not needed']);
    expect(cancel.stdout).toBe('cancelled slow-1\n');
    expect(cancel.code).toBe(0);
    const task = await porch(['inspect', 'task', 'slow-1', '--store', `sqlite:${db}`, '--json']);
    expect(JSON.parse(task.stdout)).toMatchObject({ taskId: 'slow-1', status: 'cancelled', error: { message: expect.stringContaining('not needed') } });
    const again = await porch(['cancel', 'slow-1', '--store', `sqlite:${db}`]);
    expect(again).toMatchObject({ code: 1, stderr: 'porch: task slow-1 is already cancelled\n' });
  });
});

describe('porch inspect and requeue against a SQLite file', () => {
  it('lists the dead letter, shows the task with its history, requeues and runs it, and shows the audit trail', async () => {
    const db = join(dir, 'dlq.db');
    const store = `sqlite:${db}`;
    const first = await porch(['run', '--agents', fixture('failing.mjs'), '--store', store], { env: { PORCH_FIXTURE_BROKEN: '1' } });
    expect(first.code).toBe(1);

    const dlq = await porch(['inspect', 'dlq', '--store', store]);
    expect(dlq.code).toBe(0);
    expect(dlq.stdout).toMatch(/^task +type +code +attempts +failed at +error$/m);
    expect(dlq.stdout).toMatch(/^report-1 +report +TASK_FAILED +1 +\d{4}-\d\d-\d\dT[\d:.]+Z +the warehouse is offline \(weekly\)$/m);
    const dlqJson = JSON.parse((await porch(['inspect', 'dlq', '--store', store, '--json'])).stdout) as { taskId: string }[];
    expect(dlqJson.map((d) => d.taskId).sort()).toEqual(['report-0', 'report-1']);

    const task = await porch(['inspect', 'task', 'report-1', '--store', store]);
    expect(task.code).toBe(0);
    expect(task.stdout).toMatch(/^status +failed$/m);
    expect(task.stdout).toMatch(/^error +TASK_FAILED: the warehouse is offline \(weekly\)$/m);
    expect(task.stdout).toMatch(/^\d+ +\S+ +dead-lettered +report-1 /m);

    // Without agents that can run it, requeue leaves it queued in the store for the process that has one.
    const parked = await porch(['requeue', 'report-0', '--store', store]);
    expect(parked).toMatchObject({ code: 0, stdout: 'requeued report-0: queued in the store for a node with a capable agent\n' });
    const queued = JSON.parse((await porch(['inspect', 'task', 'report-0', '--store', store, '--json'])).stdout) as { status: string };
    expect(queued.status).toBe('queued');

    const requeue = await porch(['requeue', 'report-1', '--store', store, '--agents', fixture('failing.mjs')]);
    expect(requeue.stdout).toContain('requeued report-1: completed');
    expect(requeue.code).toBe(0);

    const done = JSON.parse((await porch(['inspect', 'task', 'report-1', '--store', store, '--json'])).stdout) as { status: string; result: string; history: { type: string }[] };
    expect(done).toMatchObject({ status: 'completed', result: 'report weekly sent' });
    expect(done.history.map((h) => h.type)).toEqual(['submitted', 'started', 'failed', 'dead-lettered', 'submitted', 'requeued', 'started', 'completed']);
    const remaining = JSON.parse((await porch(['inspect', 'dlq', '--store', store, '--json'])).stdout) as { taskId: string }[];
    expect(remaining).toEqual([]);

    const audit = await porch(['inspect', 'audit', '--store', store, '--type', 'requeued', '--json']);
    expect(JSON.parse(audit.stdout)).toMatchObject([{ type: 'requeued', taskId: 'report-0' }, { type: 'requeued', taskId: 'report-1' }]);
    const since = await porch(['inspect', 'audit', '--store', store, '--since', '1h', '--limit', '3']);
    expect(since.stdout.trim().split('\n')).toHaveLength(4);
    const future = await porch(['inspect', 'audit', '--store', store, '--since', '2999-01-01']);
    expect(future.stdout).toBe('(no entries)\n');
    const tasks = await porch(['inspect', 'tasks', '--store', store, '--status', 'completed']);
    expect(tasks.stdout).toMatch(/^report-1 +report +completed +NORMAL +1 +reporter$/m);

    const missing = await porch(['inspect', 'task', 'nope', '--store', store]);
    expect(missing).toMatchObject({ code: 1, stderr: 'porch: no task nope in the store\n' });
    const notDead = await porch(['requeue', 'report-1', '--store', store, '--agents', fixture('failing.mjs')]);
    expect(notDead).toMatchObject({ code: 1, stderr: 'porch: report-1 is not a dead letter in the store (porch inspect dlq lists them)\n' });
  });
});

describe('porch serve', () => {
  it('prints the URL, serves the API and the page, and stops gracefully on SIGTERM', async () => {
    const child = new Porch(['serve', '--port', '0', '--agents', fixture('ok.mjs')]);
    const [, url] = await child.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+\/)/);
    const agents = await http(url!, 'GET', '/api/agents');
    expect(agents.status).toBe(200);
    expect(agents.json).toMatchObject([{ agentId: 'echo' }]);
    expect((await http(url!, 'GET', '/')).text).toContain('<title>porch');
    child.child.kill('SIGTERM');
    const run = await child.done;
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('porch serve: SIGTERM: stopping');
    expect(run.stdout).toContain('porch serve: stopped');
  });

  it('refuses to listen on 0.0.0.0 without a token (exit 2, one line)', async () => {
    const run = await porch(['serve', '--host', '0.0.0.0', '--port', '0'], { env: { PORCH_TOKEN: '' } });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^porch: --host 0\.0\.0\.0: a token must be set to listen on 0\.0\.0\.0.*\(--token or PORCH_TOKEN\)\n$/);
  });

  it('takes the token from PORCH_TOKEN', async () => {
    const child = new Porch(['serve', '--port', '0'], { env: { PORCH_TOKEN: 'from-the-environment' } });
    const [, url] = await child.waitFor(/listening on (http:\/\/\S+)/);
    expect((await http(url!, 'GET', '/api/stats')).status).toBe(401);
    expect((await http(url!, 'GET', '/api/stats', { headers: { authorization: 'Bearer from-the-environment' } })).status).toBe(200);
    child.child.kill('SIGINT');
    expect((await child.done).code).toBe(0);
  });
});

describe('porch worker', () => {
  it('needs a postgres:// store (exit 2)', async () => {
    const run = await porch(['worker', '--store', `sqlite:${join(dir, 'w.db')}`, '--agents', fixture('ok.mjs')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe('porch: --store must be a postgres:// URL: a worker joins a cluster through a shared PostgreSQL database\n');
  });

  // Without a reachable PostgreSQL the cluster tests are skipped, loudly (pg-helpers says so; CI=true fails instead).
  describe.skipIf(!postgres)('on PostgreSQL', () => {
    let schema = '';
    afterEach(async () => {
      if (schema !== '') await dropSchema(schema);
    });

    it('joins the cluster, runs a task submitted by another node, shows in inspect, and leaves on SIGTERM', async () => {
      schema = uniqueSchema('porch_cli');
      const url = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}schema=${schema}`;
      const child = new Porch(['worker', '--store', url, '--agents', fixture('ok.mjs')]);
      await child.waitFor(/porch worker: joined .* with 1 agents/, 'stderr');
      expect(child.stderr).not.toContain(new URL(DATABASE_URL).password || '\u0000');
      const submitter = createParallelOrchestrator({ store: { type: 'postgres', connectionString: DATABASE_URL, schema } });
      await submitter.start();
      try {
        const done = await submitter.submit({ id: 'from-elsewhere', type: 'echo', capabilities: ['echo'], payload: 'hello cluster' }).result();
        expect(done).toMatchObject({ result: 'hello cluster' });
      } finally {
        await submitter.shutdown();
      }
      await child.waitFor(/^completed {2}from-elsewhere on echo in [\d.]+ ms: hello cluster$/m);
      const inspect = await porch(['inspect', 'task', 'from-elsewhere', '--store', url, '--json']);
      expect(JSON.parse(inspect.stdout)).toMatchObject({ taskId: 'from-elsewhere', status: 'completed', result: 'hello cluster' });
      child.child.kill('SIGTERM');
      const run = await child.done;
      expect(run.code).toBe(0);
      expect(run.stderr).toContain('porch worker: SIGTERM: leaving');
    });
  });
});

describe('hostile input', () => {
  it('prints control characters from tasks and errors inert (no terminal escape reaches the terminal)', async () => {
    const db = join(dir, 'evil.db');
    const run = await porch(['run', '--agents', fixture('evil.mjs'), '--store', `sqlite:${db}`]);
    expect(run.code).toBe(1);
    expect(run.stdout).not.toContain(ESC);
    expect(run.stdout).toContain('failed     evil\\x1b[31m-1 CODE\\x1b[31m after 1 attempt: boom\\x1b[2J\\x1b]0;pwned\\x07');
    const dlq = await porch(['inspect', 'dlq', '--store', `sqlite:${db}`]);
    expect(dlq.stdout).not.toContain(ESC);
    expect(dlq.stdout).not.toContain(String.fromCharCode(7));
    expect(dlq.stdout).toContain('evil\\x1b[31m-1');
    const audit = await porch(['inspect', 'audit', '--store', `sqlite:${db}`]);
    expect(audit.stdout).not.toContain(ESC);
  });

  it('a second SIGINT while serve stops gracefully exits at once (130)', async () => {
    const child = new Porch(['serve', '--port', '0', '--agents', fixture('slow.mjs')]);
    const [, url] = await child.waitFor(/listening on (http:\/\/\S+)/);
    // Wait until slow-1 runs: the graceful stop then waits for it (up to --shutdown-timeout, 30 s).
    for (let i = 0; (await http(url!, 'GET', '/api/tasks/slow-1')).text.includes('"status":"queued"'); i++) expect(i).toBeLessThan(1000);
    child.child.kill('SIGINT');
    await child.waitFor(/SIGINT: stopping/);
    child.child.kill('SIGINT');
    const run = await child.done;
    expect(run.code).toBe(130);
    expect(run.stderr).toBe('porch: SIGINT again: exiting now\n');
  });

  it('a port in use: one line, exit 1', async () => {
    const first = new Porch(['serve', '--port', '0']);
    const [, port] = await first.waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)\//);
    const second = await porch(['serve', '--port', port!]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`^porch: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*\n$`));
    first.child.kill('SIGTERM');
    expect((await first.done).code).toBe(0);
  });

  it('a file that is not a SQLite database: one line, exit 1', async () => {
    const bogus = join(dir, 'not-a-database.db');
    await writeFile(bogus, 'this is not sqlite '.repeat(100));
    const run = await porch(['inspect', 'dlq', '--store', `sqlite:${bogus}`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^porch: store .*not-a-database\.db: .+\n$/);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('warns about a short token', async () => {
    const child = new Porch(['serve', '--port', '0', '--token', 'abc']);
    await child.waitFor(/listening on/);
    expect(child.stderr).toContain('porch serve: warning: the token has 3 characters; use 16 or more random ones');
    child.child.kill('SIGTERM');
    expect((await child.done).code).toBe(0);
  });
});

describe('--help, --version and bad input', () => {
  it('has --help with examples on every command', async () => {
    for (const command of [[], ['demo'], ['run'], ['serve'], ['worker'], ['inspect'], ['inspect', 'task'], ['inspect', 'tasks'], ['inspect', 'dlq'], ['inspect', 'audit'], ['requeue'], ['cancel']]) {
      const run = await porch([...command, '--help']);
      expect(run.code, command.join(' ')).toBe(0);
      expect(run.stdout, command.join(' ')).toMatch(/^Usage: porch/);
      expect(run.stdout, command.join(' ')).toMatch(/Examples?:\n {2}\$ porch /);
    }
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(await porch(['--version'])).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it('is the package bin: an executable file with a node shebang', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; version: string };
    expect(pkg.bin).toEqual({ porch: './dist/cli/main.js' });
    const { stdout } = await execFileAsync(join(ROOT, pkg.bin.porch!), ['--version']);
    expect(stdout).toBe(`${pkg.version}\n`);
  });

  it('a bad flag or value: one line on stderr, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['demo', '--bogus'], /^porch: unknown option '--bogus'/],
      [['demo', '--rounds', '0'], /^porch: option '--rounds <n>' argument '0' is invalid\. must be an integer 1\.\.1000$/],
      [['demo', '--store', 'mysql://x'], /must be memory, sqlite:<path> or a postgres:\/\/ URL$/],
      [['demo', '--store', 'sqlite:'], /sqlite: needs a file path/],
      [['serve', '--port', 'abc'], /^porch: option '--port <n>' argument 'abc' is invalid\. must be an integer 0\.\.65535$/],
      [['serve', '--port', '70000'], /must be an integer 0\.\.65535$/],
      [['serve', '--prot', '1'], /^porch: unknown option '--prot' \(Did you mean --port\?\)$/],
      [['run'], /^porch: required option '--agents <file>' not specified$/],
      [['run', '--agents', 'no-such-file.mjs'], /^porch: --agents: no file at no-such-file\.mjs$/],
      [['run', '--agents', fixture('bad-agent.mjs')], /^porch: --agents .*bad-agent\.mjs: agents\[1\]: role must be one of AgentRole/],
      [['run', '--agents', join(ROOT, 'package.json')], /could not be loaded/],
      [['inspect', 'dlq'], /^porch: --store must name a durable store to inspect/],
      [['inspect', 'dlq', '--store', `sqlite:${join('/nonexistent', 'x.db')}`], /^porch: --store: no SQLite file at /],
      [['inspect', 'audit', '--since', 'yesterday'], /^porch: option '--since <time>' argument 'yesterday' is invalid/],
      [['inspect', 'audit', '--type', 'boom'], /^porch: option '--type <type>' argument 'boom' is invalid/],
      [['inspect', 'tasks', '--status', 'done'], /must be one or more of queued/],
      [['inspect', 'nothing'], /^porch: unknown command 'nothing'/],
      [['requeue'], /^porch: missing required argument 'id'$/],
      [['frobnicate'], /^porch: unknown command 'frobnicate'$/],
      [['demo', 'extra'], /^porch: too many arguments for 'demo'/],
    ];
    for (const [args, message] of cases) {
      const run = await porch(args);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr.endsWith('\n') && run.stderr.trim().split('\n').length, `${args.join(' ')}: ${run.stderr}`).toBe(1);
      expect(run.stderr.trim(), args.join(' ')).toMatch(message);
      expect(run.stderr, args.join(' ')).not.toMatch(/\n\s+at /);
    }
  });
});
