import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRole, createParallelOrchestrator, createServer, type ParallelOrchestrator, type PorchServer } from '../src/index.js';
import { deferred, nextEvent, type Deferred } from './helpers.js';
import { http, ROOT } from './porch-helpers.js';

// The dashboard in Debian's chromium (headless), against a real server and orchestrator.
// Screenshots are saved under .tmp/ (gitignored) as test artifacts.

const ARTIFACTS = join(ROOT, '.tmp');
const WAIT = { timeout: 20_000 };

let o: ParallelOrchestrator;
let server: PorchServer;
let url = '';
let browser: BrowserContext;
let profile = '';
let gate: Deferred<void>;
let upstreamUp = false;

beforeAll(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  o = createParallelOrchestrator({ taskQueue: { retry: { maxAttempts: 1 } } });
  await o.start();
  gate = deferred();
  o.registerAgent({
    agentId: 'stepper',
    role: AgentRole.ANALYZER,
    capabilities: ['step'],
    maxConcurrent: 2,
    // Streams progress up to 100, then holds until the test lets it finish.
    handler: async (_task, ctx) => {
      for (let progress = 0; progress <= 100; progress += 20) {
        ctx.progress({ progress, step: progress / 20 });
        await new Promise((resolve) => setImmediate(resolve));
      }
      await gate.promise;
      return 'stepped';
    },
  });
  o.registerAgent({
    agentId: 'sync',
    role: AgentRole.COORDINATOR,
    capabilities: ['sync'],
    handler: async () => {
      if (!upstreamUp) throw new Error('upstream down');
      return 'synced';
    },
  });
  server = createServer(o);
  url = await server.listen({ port: 0 });
  profile = await mkdtemp(join(tmpdir(), 'porch-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 60_000);

afterAll(async () => {
  gate?.resolve();
  await browser?.close();
  await server?.close();
  await o?.shutdown({ graceful: false });
  if (profile !== '') await rm(profile, { recursive: true, force: true });
});

/** A page of the dashboard; browser errors fail the test. */
async function open(target = url): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  // Bars jump to their value (no transition), so a screenshot shows what the page says.
  await page.emulateMedia({ reducedMotion: 'reduce' });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  await page.goto(target);
  return { page, errors };
}

describe('the dashboard', () => {
  it('lists the agents with role, load and circuit state', async () => {
    const { page, errors } = await open();
    const row = page.locator('#agents tr[data-agent="stepper"]');
    await row.waitFor(WAIT);
    await expect(row.textContent()).resolves.toContain('α₅-analyzer');
    await expect(row.locator('.circuit').getAttribute('data-state')).resolves.toBe('closed');
    await expect(page.locator('#agents tr[data-agent="sync"]').textContent()).resolves.toContain('0/1');
    await page.locator('.connection[data-tone="ok"]').waitFor(WAIT);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows a task submitted through the API with a progress bar that reaches 100%', async () => {
    const { page, errors } = await open();
    await page.locator('.connection[data-tone="ok"]').waitFor(WAIT);
    const created = await http(url, 'POST', '/api/tasks', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'analysis-7', type: 'analyze', capabilities: ['step'], priority: 'HIGH' }) });
    expect(created.status).toBe(201);
    const bar = page.locator('#running li[data-task="analysis-7"] [role="progressbar"]');
    await page.locator('#running li[data-task="analysis-7"] [role="progressbar"][aria-valuenow="100"]').waitFor(WAIT);
    await expect(bar.locator('.fill').evaluate((el) => (el as unknown as { style: { width: string } }).style.width)).resolves.toBe('100%');
    await expect(page.locator('#running li[data-task="analysis-7"] .percent').textContent()).resolves.toBe('100%');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-1280x800.png') });
    // Its audit trail and last state, on click.
    await page.locator('#running li[data-task="analysis-7"] .task-id').click();
    await page.locator('#task-detail .timeline li[data-type="started"]').waitFor(WAIT);
    await expect(page.locator('#task-detail pre.json').first().textContent()).resolves.toContain('"progress": 100');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-task-detail.png') });
    await page.keyboard.press('Escape');
    await page.locator('#task-detail').waitFor({ state: 'hidden', ...WAIT });
    // It finishes: the row leaves the running list for the recent ones.
    gate.resolve();
    await page.locator('#recent li[data-task="analysis-7"][data-status="completed"]').waitFor(WAIT);
    await page.locator('#running li[data-task="analysis-7"]').waitFor({ state: 'detached', ...WAIT });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('requeue on a dead letter moves it back to the queue', async () => {
    upstreamUp = false;
    await o.submit({ id: 'sync-3', type: 'sync', capabilities: ['sync'] }).result().catch(() => undefined);
    const { page, errors } = await open();
    const row = page.locator('#dead-letters tr[data-task="sync-3"]');
    await row.waitFor(WAIT);
    await expect(row.textContent()).resolves.toContain('upstream down');
    upstreamUp = true;
    const resubmitted = nextEvent(o, 'task:submitted', (e) => e.taskId === 'sync-3');
    const completed = nextEvent(o, 'task:completed', (e) => e.taskId === 'sync-3');
    await row.locator('button.requeue').click();
    await resubmitted;
    await row.waitFor({ state: 'detached', ...WAIT });
    expect((await completed).result).toBe('synced');
    await page.locator('#recent li[data-task="sync-3"][data-status="completed"]').waitFor(WAIT);
    expect(await o.deadLetters()).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows hostile task ids and errors as text (no markup is injected)', async () => {
    const hostile = '<img src=x onerror="window.__pwned=1">';
    upstreamUp = false;
    await o.submit({ id: hostile, type: 'sync', capabilities: ['sync'] }).result().catch(() => undefined);
    const { page, errors } = await open();
    await page.locator('#dead-letters tbody tr').filter({ hasText: hostile }).waitFor(WAIT);
    expect(await page.locator('#dead-letters img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(errors).toEqual([]);
    await page.close();
  });

  it('reads at phone width', async () => {
    const { page, errors } = await open();
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator('#agents tr[data-agent="stepper"]').waitFor(WAIT);
    // Nothing wider than the screen: no sideways scrolling of the page.
    const overflow = await page.evaluate(() => {
      const root = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
      return root.scrollWidth - root.clientWidth;
    });
    expect(overflow).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-390x844.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });
});

describe('the dashboard on a cluster', () => {
  it("shows the cluster's nodes when the stats carry them (as on PostgreSQL)", async () => {
    const nodes = [
      { nodeId: 'node-a1', host: 'worker-1.internal', pid: 4242, agents: 3, running: 2, heartbeatAt: Date.now() },
      { nodeId: 'node-b7', host: 'worker-2.internal', pid: 1717, agents: 5, running: 0, heartbeatAt: Date.now() - 1500 },
    ];
    // The stats of a PostgreSQL orchestrator: getStats() with `cluster`.
    const clustered = new Proxy(o, {
      get: (target, key) => {
        if (key === 'getStats') return () => ({ ...target.getStats(), cluster: { queued: 4, running: 2, nodes } });
        const value = Reflect.get(target, key, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const clusterServer = createServer(clustered);
    const clusterUrl = await clusterServer.listen({ port: 0 });
    try {
      const { page, errors } = await open(clusterUrl);
      const section = page.locator('#cluster');
      await section.locator('tbody tr').nth(1).waitFor(WAIT);
      await expect(section.textContent()).resolves.toMatch(/2 nodes · cluster-wide 2 running, 4 queued.*node-a1.*worker-1\.internal.*4242/);
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-cluster.png') });
      const metrics = await http(clusterUrl, 'GET', '/metrics');
      expect(metrics.text).toContain('porch_cluster_nodes 2');
      expect(metrics.text).toContain('porch_cluster_tasks{status="queued"} 4');
      expect(metrics.text).toContain('porch_cluster_node_running{node="node-a1",host="worker-1.internal"} 2');
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await clusterServer.close();
    }
  });

  it('hides the cluster section elsewhere', async () => {
    const { page } = await open();
    await page.locator('#agents tr[data-agent="stepper"]').waitFor(WAIT);
    expect(await page.locator('#cluster').isHidden()).toBe(true);
    await page.close();
  });
});

describe('the dashboard with a token', () => {
  it('asks for the token once, keeps it in the tab, and goes live', async () => {
    const guarded = createServer(o, { token: 'dashboard-token-123' });
    const guardedUrl = await guarded.listen({ port: 0 });
    try {
      const { page } = await open(guardedUrl);
      const dialog = page.locator('#token-dialog[open]');
      await dialog.waitFor(WAIT);
      await dialog.locator('input').fill('wrong-token');
      await dialog.locator('button[type="submit"]').click();
      await page.locator('#token-dialog[open]').waitFor(WAIT);
      await expect(page.locator('#token-dialog p').textContent()).resolves.toContain('refused');
      await page.locator('#token-dialog input').fill('dashboard-token-123');
      await page.locator('#token-dialog button[type="submit"]').click();
      await page.locator('#agents tr[data-agent="stepper"]').waitFor(WAIT);
      await page.locator('.connection[data-tone="ok"]').waitFor(WAIT);
      await expect(page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem(key: string): string | null } }).sessionStorage.getItem('porch.token'))).resolves.toBe('dashboard-token-123');
      // A reload in the same tab does not ask again.
      await page.reload();
      await page.locator('#agents tr[data-agent="stepper"]').waitFor(WAIT);
      await expect(page.locator('#token-dialog').getAttribute('open')).resolves.toBeNull();
      await page.close();
    } finally {
      await guarded.close();
    }
  });
});
