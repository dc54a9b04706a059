/**
 * Hot reload through the admin API on an in-process proxy: secrets, policies, ad tags, log level and
 * listeners apply to new connections while established sessions go on; an invalid file is refused with one
 * line and the running config stays.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AdminClient } from '../../src/admin/client.ts';
import { connectObfuscated, type ObfuscatedConnection } from '../../src/client/obfuscated-client.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { ProxyServer } from '../../src/server/proxy.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { FakeMiddleProxy } from '../helpers/fake-middle-proxy.ts';
import { middleToml, TEST_AD_TAG, writeTelegramFiles } from '../helpers/middle-harness.ts';
import { freePort } from '../helpers/ports.ts';
import { TEST_SECRET_HEX } from '../helpers/proxy.ts';
import { echoedSession, relays } from '../helpers/relay-probe.ts';

const SECRET_B = 'fedcba9876543210fedcba9876543210';
const TOKEN = 'reload-test-token';
const dir = mkdtempSync(join(tmpdir(), 'mtproxy-reload-'));
const file = join(dir, 'mtproxy.toml');
let dc: FakeDc;
let proxy: ProxyServer;
let admin: AdminClient;
let stats: Stats;
const log = logger.child({ test: 'hot-reload' });
log.level = 'silent';

interface Variant {
  secret?: string;
  policies?: string;
  extraListener?: boolean;
  logLevel?: string;
  protocols?: string;
  /** Extra top-level tables ([timeouts], [replay], [metrics]...). */
  tables?: string;
  adminPort?: number;
}

let adminPort = 0;
function toml(v: Variant = {}): string {
  return `
state_dir = "state"
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${v.secret ?? TEST_SECRET_HEX}"
${v.protocols ? `allowed_protocols = ${v.protocols}` : ''}
${
  v.extraListener
    ? `
[[listeners]]
name = "second"
host = "127.0.0.1"
port = 0
secret = "${SECRET_B}"
`
    : ''
}
${v.policies ?? ''}
${v.tables ?? ''}

[admin]
listen = "127.0.0.1:${v.adminPort ?? adminPort}"
token = "${TOKEN}"

[log]
level = "${v.logLevel ?? 'silent'}"

[upstream]
mode = "direct"
[upstream.dc]
2 = ["${dc.address}"]
`;
}

async function reloadWith(v: Variant): Promise<void> {
  writeFileSync(file, toml(v));
  const res = await admin.request<{ ok: boolean; error?: string }>('POST', '/reload');
  assert.equal(res.status, 200, JSON.stringify(res.body));
}

function session(
  secret = TEST_SECRET_HEX,
  listener = 'main',
  headerRandom?: Buffer,
): Promise<ObfuscatedConnection> {
  return echoedSession(proxy.address(listener).port, secret, headerRandom);
}

function works(secret = TEST_SECRET_HEX, listener = 'main', headerRandom?: Buffer): Promise<boolean> {
  return relays(proxy.address(listener).port, secret, headerRandom);
}

async function stillEchoes(c: ObfuscatedConnection): Promise<void> {
  const payload = randomBytes(48);
  c.sendFrame(payload);
  assert.deepEqual((await c.nextFrame(5000)).payload, payload);
}

before(async () => {
  dc = await FakeDc.start();
  adminPort = await freePort();
  writeFileSync(file, toml());
  stats = new Stats();
  proxy = new ProxyServer(await loadConfigFile(file), { log, stats });
  await proxy.start();
  admin = new AdminClient(`http://127.0.0.1:${adminPort}`, TOKEN);
});

after(async () => {
  await proxy.stop(0);
  await dc.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('secret change applies to new connections; an established session goes on', async () => {
  const established = await session();
  await reloadWith({ secret: SECRET_B });
  assert.equal(await works(SECRET_B), true);
  assert.equal(await works(TEST_SECRET_HEX), false);
  await stillEchoes(established);
  await reloadWith({});
  assert.equal(await works(TEST_SECRET_HEX), true);
  await stillEchoes(established);
  established.close();
});

test('policy change applies to new connections', async () => {
  const established = await session();
  await admin.call('POST', '/tables/deny', { value: '127.0.0.1' });
  assert.equal(await works(), true, 'no rule uses the table yet');
  await reloadWith({
    policies: '[[policies]]\nrule = "not_in_table"\nkey = "client_ipv4"\ntable = "deny"\n',
  });
  assert.equal(await works(), false);
  await stillEchoes(established);
  await reloadWith({ policies: '[[policies]]\nrule = "max_connections"\nkeys = ["listener"]\nlimit = 1\n' });
  // The established session was admitted before the rule existed and holds no slot.
  const second = await session();
  assert.equal(await works(), false, 'limit reached');
  second.close();
  established.close();
  await reloadWith({});
});

test('allowed protocols change applies to new connections', async () => {
  const classic = await session();
  await reloadWith({ protocols: '["secure"]' });
  assert.equal(await works(TEST_SECRET_HEX), false, 'classic (plain secret) refused');
  assert.equal(await works(`dd${TEST_SECRET_HEX}`), true, 'secure (dd) accepted');
  await stillEchoes(classic);
  await reloadWith({});
  assert.equal(await works(TEST_SECRET_HEX), true);
  classic.close();
});

test('log level change applies', async () => {
  await reloadWith({ logLevel: 'warn' });
  assert.equal(log.level, 'warn');
  await reloadWith({ logLevel: 'silent' });
  assert.equal(log.level, 'silent');
});

test('a listener added while sessions are open on another', async () => {
  const established = await session();
  await reloadWith({ extraListener: true });
  assert.equal(await works(SECRET_B, 'second'), true);
  await stillEchoes(established);
  await reloadWith({});
  assert.throws(() => proxy.address('second'));
  await stillEchoes(established);
  established.close();
});

test('timeouts apply to new connections', async () => {
  await reloadWith({ tables: '[timeouts]\nhandshake = "200ms"\n' });
  const silentClient = net.connect({ host: '127.0.0.1', port: proxy.address('main').port });
  silentClient.on('error', () => {});
  // The default handshake timeout is 60 s; closed well within the test's time, the new one applies.
  const closed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 10_000);
    silentClient.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  silentClient.destroy();
  assert.ok(closed, 'a client that says nothing is closed after the reloaded handshake timeout');
  await reloadWith({});
});

test('replay protection can be switched off and on again', async () => {
  const random = randomBytes(64);
  const randomAgain = () => Buffer.from(random);
  assert.equal(await works(TEST_SECRET_HEX, 'main', randomAgain()), true);
  assert.equal(await works(TEST_SECRET_HEX, 'main', randomAgain()), false, 'a replayed handshake is refused');
  await reloadWith({ tables: '[replay]\nenabled = false\n' });
  assert.equal(await works(TEST_SECRET_HEX, 'main', randomAgain()), true, 'replays pass with replay off');
  await reloadWith({});
  const fresh = randomBytes(64);
  assert.equal(await works(TEST_SECRET_HEX, 'main', Buffer.from(fresh)), true);
  assert.equal(await works(TEST_SECRET_HEX, 'main', Buffer.from(fresh)), false, 'on again after the reload');
});

test('the metrics endpoint and the admin API follow their listen addresses', async () => {
  const metricsPort = await freePort();
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  await assert.rejects(fetch(metricsUrl), 'metrics are off at first');
  await reloadWith({ tables: `[metrics]\nlisten = "127.0.0.1:${metricsPort}"\n` });
  const scrape = await fetch(metricsUrl);
  assert.equal(scrape.status, 200);
  assert.match(await scrape.text(), /^mtproxy_reloads_total \d+/m);

  const oldAdmin = admin;
  const movedPort = await freePort();
  writeFileSync(file, toml({ adminPort: movedPort }));
  assert.equal((await oldAdmin.request('POST', '/reload')).status, 200);
  admin = new AdminClient(`http://127.0.0.1:${movedPort}`, TOKEN);
  assert.equal((await admin.request('GET', '/health')).status, 200, 'the admin API answers on its new port');
  await assert.rejects(oldAdmin.request('GET', '/health'), 'and no longer on the old one');
  await reloadWith({ adminPort: movedPort });
  await assert.rejects(fetch(metricsUrl), 'metrics off again');
  adminPort = movedPort;
});

test('an invalid config is refused with one line and the running one stays', async () => {
  const before = stats.reloadFailures;
  writeFileSync(file, toml({ secret: 'not-hex' }));
  const res = await admin.request<{ ok: boolean; error: string }>('POST', '/reload');
  assert.equal(res.status, 422);
  assert.equal(res.body.ok, false);
  assert.match(res.body.error, /^listeners\[0\]\.secret: /);
  assert.ok(!res.body.error.includes('\n'));
  assert.equal(stats.reloadFailures, before + 1);
  assert.equal(stats.lastReloadOk, false);
  assert.equal(await works(), true);

  writeFileSync(file, 'this is [not toml');
  const garbled = await admin.request<{ ok: boolean; error: string }>('POST', '/reload');
  assert.equal(garbled.status, 422);
  assert.equal(await works(), true);
  await reloadWith({});
  assert.equal(stats.lastReloadOk, true);
});

test('ad tag change reaches new middle-proxy connections', async () => {
  const mdir = mkdtempSync(join(tmpdir(), 'mtproxy-reload-middle-'));
  const proxySecret = randomBytes(128);
  const fake = await new FakeMiddleProxy({ secret: proxySecret }).start();
  await writeTelegramFiles(mdir, proxySecret, fake.port);
  const mfile = join(mdir, 'mtproxy.toml');
  const OTHER_TAG = '0123456789abcdef0123456789abcdef';
  writeFileSync(mfile, `${middleToml(mdir)}\n[log]\nlevel = "silent"\n`);
  const middle = new ProxyServer(await loadConfigFile(mfile), { log, stats: new Stats() });
  try {
    await middle.start();
    const send = async () => {
      const c = await connectObfuscated({
        host: '127.0.0.1',
        port: middle.address('main').port,
        secret: TEST_SECRET_HEX,
        dcId: 2,
      });
      c.sendFrame(randomBytes(64));
      await c.nextFrame(5000);
      return c;
    };
    const first = await send();
    assert.deepEqual([...fake.adTags], [TEST_AD_TAG]);
    writeFileSync(mfile, `${middleToml(mdir, { adTag: OTHER_TAG })}\n[log]\nlevel = "silent"\n`);
    assert.deepEqual(await middle.reloadFromFile(), { ok: true });
    const second = await send();
    assert.deepEqual([...fake.adTags].sort(), [TEST_AD_TAG, OTHER_TAG].sort());
    first.close();
    second.close();
  } finally {
    await middle.stop(0);
    await fake.stop();
    rmSync(mdir, { recursive: true, force: true });
  }
});
