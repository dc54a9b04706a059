/**
 * The overview's Fleet panel in a real browser: two proxy nodes share a real redis-server; node A runs in
 * this process with its console, node B is `mtproxy run` in a process of its own. Node A's console lists
 * both nodes with their sessions; once B is killed (SIGKILL, no clean leave) its row turns to down when its
 * heartbeat expires. A proxy with no cluster shows no Fleet panel at all; a front without Redis shows its
 * backs and says it has no shared state. A picture of the panel goes to docs/console/ with
 * MTP_CONSOLE_SCREENSHOTS=1 (the README links it), else to a temp folder.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { start } from '../../cli/spawn-cli.ts';
import { type ClusterNode, clusterNodeToml, startClusterNode } from '../../helpers/cluster-node.ts';
import { CONSOLE_TOKEN, type ConsoleProxy, startConsoleProxy } from '../../helpers/console.ts';
import { FakeDc } from '../../helpers/fake-dc.ts';
import { clusterCerts, linkAddress, startBack } from '../../helpers/front-back.ts';
import { freePort } from '../../helpers/ports.ts';
import { basicToml, TEST_SECRET_HEX } from '../../helpers/proxy.ts';
import { redisSkip, startRedis, type TestRedis } from '../../helpers/redis.ts';
import { echoedSession } from '../../helpers/relay-probe.ts';
import { suiteTempDir } from '../../helpers/temp-dir.ts';

const CHROMIUM = '/usr/bin/chromium';
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run'];

/** Polls a condition for at most 20 s. */
async function eventually(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function signIn(page: Page, base: string): Promise<void> {
  await page.goto(`${base}/console/`);
  await page.getByLabel('Admin token').fill(CONSOLE_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/console/`);
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  await page.locator('.tile', { hasText: 'Version' }).getByText('0.1.0').waitFor();
}

const skip = redisSkip || (!existsSync(CHROMIUM) && `${CHROMIUM} is not installed`);

describe('console: the Fleet panel', { skip }, () => {
  const dir = suiteTempDir('mtp-console-fleet-');
  let redis: TestRedis;
  let dc: FakeDc;
  let a: ClusterNode;
  let b: ChildProcess | null = null;
  let bDir = '';
  let alone: ConsoleProxy;
  let base = '';
  let bPort = 0;
  let context: BrowserContext;
  let page: Page;
  let profile = '';
  const outside: string[] = [];
  /** The proxies' admin addresses: all the page may ask. */
  const origins = new Set<string>();
  const pageErrors: string[] = [];

  // biome-ignore lint/suspicious/noExplicitAny: JSON read field by field
  const cluster = async (): Promise<any> => {
    const res = await fetch(`${base}/cluster`, { headers: { authorization: `Bearer ${CONSOLE_TOKEN}` } });
    return res.json();
  };

  before(async () => {
    redis = await startRedis();
    dc = await FakeDc.start();
    const adminPort = await freePort();
    a = await startClusterNode('node-a', redis.url, dc.port, {
      operations: true,
      top: `[admin]\nlisten = "127.0.0.1:${adminPort}"\ntoken = "${CONSOLE_TOKEN}"\n`,
    });
    base = `http://127.0.0.1:${adminPort}`;
    bDir = mkdtempSync(path.join(tmpdir(), 'mtp-node-b-'));
    bPort = await freePort();
    const toml = clusterNodeToml('node-b', redis.url, dc.port, bDir).replace(
      /^port = 0$/m,
      `port = ${bPort}`,
    );
    const file = path.join(bDir, 'mtproxy.toml');
    writeFileSync(file, toml);
    b = start(['run', '--config', file], bDir);
    b.stdout?.resume();
    b.stderr?.resume();
    alone = await startConsoleProxy(dir());
    origins.add(base).add(alone.base);
    profile = mkdtempSync(path.join(tmpdir(), 'mtp-console-profile-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 1280, height: 860 },
    });
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (origins.has(url.origin)) return route.continue();
      outside.push(url.href);
      return route.abort();
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => pageErrors.push(String(err)));
  });

  after(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (b && b.exitCode === null && b.signalCode === null) {
      b.kill('SIGKILL');
      await once(b, 'exit');
    }
    if (bDir) rmSync(bDir, { recursive: true, force: true });
    await a?.stop();
    await alone?.stop();
    await dc?.stop();
    await redis?.stop();
    assert.deepEqual(outside, [], 'the page asked for nothing outside the proxy');
    assert.deepEqual(pageErrors, [], 'no script error on the page');
  });

  it('lists both nodes with their sessions, and a killed node as down', async () => {
    await eventually(
      async () => (await cluster()).nodes?.some((n: { name: string }) => n.name === 'node-b') ?? false,
      'node B registered',
    );
    const session = await echoedSession(bPort, TEST_SECRET_HEX);
    try {
      await signIn(page, base);
      const fleet = page.getByRole('region', { name: /^Fleet/ });
      await fleet.waitFor();
      await fleet.locator('[data-redis="up"]').waitFor();
      const rowA = fleet.locator('tr[data-node="node-a"]');
      const rowB = fleet.locator('tr[data-node="node-b"]');
      await rowA.waitFor();
      await rowA.getByText('(this node)').waitFor();
      assert.equal(await rowA.locator('td').nth(1).textContent(), 'both');
      // B's session shows on the page once B's next heartbeat has carried it.
      const sessionsOf = (row: typeof rowA) => row.locator('td.num').first().textContent();
      await eventually(async () => (await sessionsOf(rowB)) === '1', "node B's session on the page");
      assert.equal(await rowB.locator('td').nth(1).textContent(), 'both');
      assert.equal(await rowB.getAttribute('data-alive'), 'up');
      assert.equal(await sessionsOf(rowA), '0');
    } finally {
      session.close();
    }
    b!.kill('SIGKILL');
    await once(b!, 'exit');
    // No clean leave: B's entry stays and turns down when its alive key expires (node_timeout).
    await page
      .locator('tr[data-node="node-b"][data-alive="down"]')
      .getByText('down', { exact: true })
      .waitFor({ timeout: 20_000 });
    await page.locator('tr[data-node="node-a"][data-alive="up"]').waitFor();
    // The panel as the README shows it (docs/console/ with MTP_CONSOLE_SCREENSHOTS=1).
    const file =
      process.env.MTP_CONSOLE_SCREENSHOTS === '1'
        ? path.join(REPO, 'docs', 'console', 'fleet-desktop.png')
        : path.join(dir(), 'fleet-desktop.png');
    await page.getByRole('region', { name: /^Fleet/ }).screenshot({ path: file });
    assert.equal(readFileSync(file).subarray(1, 4).toString('latin1'), 'PNG', file);
  });

  it('shows no Fleet panel on a node with no cluster', async () => {
    await context.clearCookies();
    await signIn(page, alone.base);
    await page.getByRole('heading', { name: 'Sessions by listener and protocol' }).waitFor();
    assert.equal(await page.getByRole('region', { name: /^Fleet/ }).count(), 0);
    assert.equal(await page.locator('#fleet-h').count(), 0);
  });

  it("shows a front's backs and the lack of shared state", async () => {
    const certs = await clusterCerts(['front', 'back']);
    const back = await startBack(basicToml(dc.port), certs, 'back');
    const link = linkAddress(back);
    const front = await startConsoleProxy(
      mkdtempSync(path.join(dir(), 'front-')),
      `\n[cluster]\nrole = "front"\nbacks = ["${link}"]\n${certs.tomlFor('front')}\n`,
    );
    try {
      origins.add(front.base);
      await context.clearCookies();
      await signIn(page, front.base);
      const fleet = page.getByRole('region', { name: /^Fleet/ });
      await fleet.getByText('No shared state ([cluster] redis unset).').waitFor();
      await fleet.getByText('role front').waitFor();
      await fleet.locator(`tr[data-back="${link}"]`).getByText('up', { exact: true }).waitFor();
      assert.equal(await fleet.getByRole('table', { name: 'Nodes' }).count(), 0);
    } finally {
      await front.stop();
      await back.stop();
      await certs.remove();
    }
  });
});
