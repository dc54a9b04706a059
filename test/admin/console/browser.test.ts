/**
 * The console in a real browser: headless Chromium (Debian's package) driven by playwright-core against a
 * real proxy with a fake DC. Signs in, creates a user, sees its QR code, watches its usage bar move while a
 * test client relays data, disables it and sees its session end, edits a table, signs out. No request
 * leaves loopback. Screenshots of the main pages at phone and desktop sizes are taken on the way; they are
 * written to docs/console/ when MTP_CONSOLE_SCREENSHOTS=1 (the README shows those), else to a temp folder.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { connectObfuscated, type ObfuscatedConnection } from '../../../src/client/obfuscated-client.ts';
import { CONSOLE_TOKEN, type ConsoleProxy, startConsoleProxy } from '../../helpers/console.ts';
import { suiteTempDir } from '../../helpers/temp-dir.ts';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

function shotsDir(): string {
  if (process.env.MTP_CONSOLE_SCREENSHOTS === '1') {
    const dir = path.join(REPO, 'docs', 'console');
    mkdirSync(dir, { recursive: true });
    return dir;
  }
  return mkdtempSync(path.join(tmpdir(), 'mtp-console-shots-'));
}

/** Wait until alice's usage bar says at least `bytes` (read from the page as it updates itself). */
async function usageAtLeast(page: Page, bytes: number): Promise<void> {
  const bar = page.getByRole('progressbar', { name: 'Usage of alice' });
  const deadline = Date.now() + 20_000;
  let seen = 0;
  while (Date.now() < deadline) {
    seen = Number(await bar.getAttribute('aria-valuenow'));
    if (seen >= bytes) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`the usage bar shows ${seen} bytes, not ${bytes}`);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]);
}

describe('console: in Chromium', { skip: !existsSync(CHROMIUM) && `${CHROMIUM} is not installed` }, () => {
  const dir = suiteTempDir('mtp-console-browser-');
  let p: ConsoleProxy;
  let context: BrowserContext;
  let page: Page;
  let profile = '';
  let shots = '';
  const outside: string[] = [];
  const pageErrors: string[] = [];
  let client: ObfuscatedConnection | null = null;

  const admin = async (method: string, p2: string, body?: unknown) => {
    const res = await fetch(`${p.base}${p2}`, {
      method,
      headers: { authorization: `Bearer ${CONSOLE_TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    // biome-ignore lint/suspicious/noExplicitAny: JSON read field by field
    return (await res.json()) as any;
  };

  const shoot = async (name: string) => {
    for (const [size, viewport] of [
      ['desktop', DESKTOP],
      ['phone', PHONE],
    ] as const) {
      await page.setViewportSize(viewport);
      // Charts follow their container's width; give them a frame to redraw.
      await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
      const file = path.join(shots, `${name}-${size}.png`);
      await page.screenshot({ path: file, fullPage: true });
      const png = readFileSync(file);
      assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG', file);
    }
    await page.setViewportSize(DESKTOP);
  };

  before(async () => {
    p = await startConsoleProxy(dir());
    shots = shotsDir();
    profile = mkdtempSync(path.join(tmpdir(), 'mtp-console-profile-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: DESKTOP,
    });
    // Everything the page asks for must come from the proxy itself.
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.origin === p.base) return route.continue();
      outside.push(url.href);
      return route.abort();
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('dialog', (d) => void d.accept());
  });

  after(async () => {
    client?.close();
    await context?.close();
    rmSync(profile, { recursive: true, force: true });
    await p?.stop();
    if (process.env.MTP_CONSOLE_SCREENSHOTS !== '1') rmSync(shots, { recursive: true, force: true });
  });

  it('sends an unsigned visitor to the sign-in page, refuses a wrong token, signs in with the right one', async () => {
    await page.goto(`${p.base}/console/`);
    assert.equal(new URL(page.url()).pathname, '/console/sign-in');
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByLabel('Admin token').press('Enter');
    await page.getByRole('alert').filter({ hasText: 'wrong token' }).waitFor();
    await shoot('sign-in');
    await page.getByLabel('Admin token').fill(CONSOLE_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${p.base}/console/`);
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    await page.locator('.tile', { hasText: 'Version' }).getByText('0.1.0').waitFor();
    const cookies = await context.cookies(`${p.base}/console/`);
    const session = cookies.find((c) => c.name === 'mtp_console');
    assert.ok(session, 'session cookie set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(session.path, '/console');
    assert.ok(session.expires > Date.now() / 1000, 'the cookie has an expiry');
    assert.equal(await page.evaluate('document.cookie'), '', 'the page script cannot read the cookie');
  });

  it('is usable with the keyboard alone', async () => {
    const focused = () => page.evaluate('document.activeElement?.textContent?.trim() ?? ""');
    let text = '';
    for (let i = 0; i < 12 && text !== 'Users'; i++) {
      await page.keyboard.press('Tab');
      text = String(await focused());
    }
    assert.equal(text, 'Users', 'the Users link is reached with Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: /^Users/, level: 1 }).waitFor();
    for (let i = 0; i < 12 && text !== 'New user'; i++) {
      await page.keyboard.press('Tab');
      text = String(await focused());
    }
    assert.equal(text, 'New user');
    await page.keyboard.press('Enter');
    await page.locator('#new-name').waitFor();
    await page.keyboard.press('Tab');
    await page.keyboard.type('keyboard-user');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: /^keyboard-user/, level: 1 }).waitFor();
    assert.equal((await admin('DELETE', '/users/keyboard-user')).deleted, true);
  });

  it('creates a user and shows its links with QR codes', async () => {
    await page.getByRole('link', { name: 'Users', exact: true }).click();
    await page.getByRole('heading', { name: /^Users/, level: 1 }).waitFor();
    await page.locator('tr[data-user="filed"]').waitFor();
    await page.getByRole('button', { name: 'New user' }).click();
    await page.locator('#new-name').fill('bad name');
    await page.locator('#new-quota').fill('lots');
    await page.getByRole('button', { name: 'Create user' }).click();
    // The admin API's own messages, one per field.
    await page.locator('#new-name-error').waitFor();
    await page.locator('#new-quota-error').getByText('50GB').waitFor();
    await page.locator('#new-name').fill('alice');
    await page.locator('#new-quota').fill('20MB');
    await page.locator('#new-note').fill('phone of Alice');
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.waitForURL(/#\/users\/alice$/);
    await page.getByRole('heading', { name: /^alice/, level: 1 }).waitFor();
    const qr = page.getByRole('img', { name: /QR code of the main · tls/ }).first();
    await qr.waitFor();
    await page.waitForFunction(
      (el) => {
        const img = el as unknown as { complete: boolean; naturalWidth: number };
        return img.complete && img.naturalWidth > 100;
      },
      await qr.elementHandle(),
    );
    const user = await admin('GET', '/users/alice');
    assert.equal(user.quota, 20_000_000);
    assert.equal(user.note, 'phone of Alice');
    const links = await page.locator('.link-card .mono a').allTextContents();
    const apiLinks = (await admin('GET', '/users/alice/links')).links.map((l: { https: string }) => l.https);
    assert.deepEqual(links, apiLinks);
  });

  it('moves the usage bar while a client relays data', async () => {
    const { secret } = await admin('GET', '/users/alice');
    client = await connectObfuscated({ host: '127.0.0.1', port: p.port, secret, dcId: 2 });
    const frame = Buffer.alloc(60_000, 7);
    await page.getByRole('link', { name: 'Users', exact: true }).click();
    const bar = page.getByRole('progressbar', { name: 'Usage of alice' });
    await bar.waitFor();
    assert.equal(await bar.getAttribute('aria-valuenow'), '0');
    for (let i = 0; i < 20; i++) {
      client.sendFrame(frame);
      await client.nextFrame(5000);
    }
    // Both directions count: at least 20 frames each way.
    await usageAtLeast(page, 2_400_000);
    await page.locator('tr[data-user="alice"] td.num', { hasText: '1' }).waitFor();
    for (let i = 0; i < 10; i++) {
      client.sendFrame(frame);
      await client.nextFrame(5000);
    }
    await usageAtLeast(page, 3_600_000);
    // The search and the sort.
    await page.getByLabel('Search').fill('alice');
    assert.equal(await page.locator('tbody tr[data-user]').count(), 1);
    await page.getByLabel('Search').fill('');
    await page.getByLabel('Sort by').selectOption('usage');
    assert.equal(await page.locator('tbody tr[data-user]').first().getAttribute('data-user'), 'alice');
    await page.locator('.tile', { hasText: 'Relayed' }).count();
    await shoot('users');
  });

  it('disables the user and its open session ends; edits it on its page', async () => {
    assert.ok(client);
    await page.locator('tr[data-user="alice"]').getByRole('button', { name: 'Disable alice' }).click();
    await withTimeout(client.closed, 10_000, 'the disabled user’s session ending');
    await page.locator('tr[data-user="alice"] .pill', { hasText: 'disabled' }).waitFor();
    assert.equal((await admin('GET', '/users/alice')).enabled, false);
    await page.locator('tr[data-user="alice"]').getByRole('button', { name: 'Enable alice' }).waitFor();
    // The user's page, with its usage history.
    await page.getByRole('link', { name: 'alice' }).click();
    await page.getByRole('heading', { name: 'Usage history' }).waitFor();
    await page.locator('[aria-label="Usage of alice by period"] canvas').waitFor();
    await page.locator('dl div', { hasText: 'Sessions now' }).locator('dd', { hasText: /^0$/ }).waitFor();
    await shoot('user');
    // Edit it on its page: the form shows sizes as written, and saves through PATCH /users/alice.
    assert.equal(await page.locator('#edit-quota').inputValue(), '20MB');
    await page.locator('#edit-quota').fill('50GB');
    await page.locator('#edit-max_ips').fill('3');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('status').getByText('Saved.').waitFor();
    const edited = await admin('GET', '/users/alice');
    assert.equal(edited.quota, 50_000_000_000);
    assert.equal(edited.max_ips, 3);
  });

  it('shows the overview with live traffic and the listeners with their QR codes', async () => {
    await page.getByRole('link', { name: 'Overview', exact: true }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    await page.locator('[aria-label="Traffic over the last hour"] canvas').waitFor();
    await page.locator('tr[data-dc="2"]').waitFor();
    await page.getByRole('button', { name: 'Reload config' }).click();
    await page.getByRole('status').getByText('Config reloaded.').waitFor();
    await page.getByText(/^Last reload applied at/).waitFor();
    await shoot('overview');
    await page.getByRole('link', { name: 'Listeners', exact: true }).click();
    await page.locator('section[data-listener="main"] img').first().waitFor();
    const count = await page.locator('section[data-listener="main"] .link-card').count();
    assert.equal(count, (await admin('GET', '/links')).links.length);
    await shoot('listeners');
  });

  it('edits a policy table', async () => {
    await page.getByRole('link', { name: 'Tables', exact: true }).click();
    const blocked = page.locator('section[data-table="blocked"]');
    await blocked.waitFor();
    await blocked.getByLabel('Add a value to blocked').fill('203.0.113.7');
    await blocked.getByRole('button', { name: 'Add' }).click();
    await blocked.getByText('key client_ipv4 · 1 value').waitFor();
    assert.deepEqual((await admin('GET', '/tables/blocked')).values, ['203.0.113.7']);
    await blocked.getByLabel('Add a value to blocked').fill('2001:db8::1');
    await blocked.getByRole('button', { name: 'Add' }).click();
    await blocked.getByRole('alert').getByText(/IPv4/).waitFor();
    await blocked.getByLabel('Add a value to blocked').fill('198.51.100.9');
    await blocked.getByLabel('Add a value to blocked').press('Enter');
    await blocked.getByText('2 values').waitFor();
    await blocked.getByRole('button', { name: 'Show values' }).click();
    await blocked.getByRole('button', { name: 'Remove 203.0.113.7' }).click();
    await blocked.getByText('1 value').waitFor();
    assert.deepEqual((await admin('GET', '/tables/blocked')).values, ['198.51.100.9']);
    await page.getByLabel('Table', { exact: true }).fill('customers');
    await page.getByLabel('First value').fill('shop.example.com');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.locator('section[data-table="customers"]').waitFor();
    await shoot('tables');
  });

  it('deletes a user from the list', async () => {
    await admin('POST', '/users', { name: 'bob' });
    await page.getByRole('link', { name: 'Users', exact: true }).click();
    await page.locator('tr[data-user="bob"]').getByRole('button', { name: 'Delete bob' }).click();
    await page.getByRole('status').getByText('User bob deleted.').waitFor();
    await page.locator('tr[data-user="bob"]').waitFor({ state: 'detached' });
    const names = (await admin('GET', '/users')).users.map((u: { name: string }) => u.name);
    assert.deepEqual(names, ['alice', 'filed']);
  });

  it('signs out: back to the sign-in page, and the console is closed again', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${p.base}/console/sign-in`);
    assert.equal(
      (await context.cookies(`${p.base}/console/`)).find((c) => c.name === 'mtp_console'),
      undefined,
    );
    await page.goto(`${p.base}/console/#/users`);
    assert.equal(new URL(page.url()).pathname, '/console/sign-in');
    const api = await page.evaluate("fetch('/console/api/users').then((r) => r.status)");
    assert.equal(api, 401);
    assert.deepEqual(outside, [], 'no request left the proxy');
    assert.deepEqual(pageErrors, [], 'no script error');
  });
});
