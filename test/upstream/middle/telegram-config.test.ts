import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/types.ts';
import { Stats } from '../../../src/metrics/stats.ts';
import { TelegramConfigSource, translateLocalIp } from '../../../src/upstream/middle/telegram-config.ts';
import { testLog } from '../../helpers/middle-harness.ts';

/** A local stand-in for core.telegram.org: what each path answers is set per test. */
const routes = new Map<string, { status: number; body: Buffer | string; delayMs?: number }>();
let hits = 0;
const server = http.createServer((req, res) => {
  hits++;
  const r = routes.get(req.url ?? '');
  if (!r) {
    res.writeHead(404).end('not found');
    return;
  }
  const answer = () => res.writeHead(r.status, { 'content-type': 'application/octet-stream' }).end(r.body);
  if (r.delayMs) setTimeout(answer, r.delayMs);
  else answer();
});
let base = '';
let dir = '';

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-tgconfig-'));
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

const SECRET = randomBytes(128);
const CONFIG_A = 'default 2;\nproxy_for 2 127.0.0.1:1111;\nproxy_for -2 127.0.0.1:1112;\n';
const CONFIG_B = 'default 2;\nproxy_for 2 127.0.0.1:2222;\n';

/** Tests stay off the internet: the external IP lookup is off unless `extra` points it at the local server. */
function configFor(stateDir: string, urlBase: string, extra = ''): Config {
  return parseConfig(`state_dir = ${JSON.stringify(stateDir)}
[[listeners]]
name = "main"
port = 0
secret = "0123456789abcdef0123456789abcdef"
[upstream]
mode = "middle"
[telegram]
proxy_secret = "${urlBase}/getProxySecret"
proxy_config = "${urlBase}/getProxyConfig"
refresh_interval = "1h"
http_timeout = "2s"
${extra.includes('ip_lookup_url') ? '' : 'ip_lookup_url = ""'}
${extra}
`);
}

function count(stats: Stats, key: string): number {
  return stats.configFetches.get(key) ?? 0;
}

test('fetches secret and config from URLs, caches them, keeps them when a refresh fails or returns garbage', async () => {
  const stateDir = path.join(dir, 'state-1');
  routes.set('/getProxySecret', { status: 200, body: SECRET });
  routes.set('/getProxyConfig', { status: 200, body: CONFIG_A });
  routes.set('/ip', { status: 200, body: '198.51.100.7\n' });
  const stats = new Stats();
  const config = configFor(stateDir, base, `ip_lookup_url = "${base}/ip"`);
  const source = new TelegramConfigSource(() => config, testLog(), stats);
  let updates = 0;
  source.onUpdate = () => updates++;
  await source.start();
  try {
    assert.deepEqual(source.current?.secret, SECRET);
    assert.deepEqual(source.addressesFor(2), [{ host: '127.0.0.1', port: 1111 }]);
    assert.equal(source.resolveDc(-2), -2);
    assert.equal(source.resolveDc(7), 2, 'unknown DC -> default');
    assert.equal(source.clientIpFor('10.0.0.5'), '198.51.100.7', 'detected external IP');
    assert.equal(count(stats, 'proxy_secret:ok'), 1);
    assert.equal(count(stats, 'proxy_config:ok'), 1);
    assert.equal(count(stats, 'external_ip:ok'), 1);
    assert.ok(existsSync(path.join(stateDir, 'telegram-proxy-secret.bin')));
    assert.ok(existsSync(path.join(stateDir, 'telegram-proxy-config.txt')));

    // Telegram's site fails: everything stays.
    routes.set('/getProxySecret', { status: 500, body: 'oops' });
    routes.set('/getProxyConfig', { status: 503, body: 'oops' });
    await source.refresh();
    assert.deepEqual(source.current?.secret, SECRET);
    assert.deepEqual(source.addressesFor(2), [{ host: '127.0.0.1', port: 1111 }]);
    assert.equal(count(stats, 'proxy_secret:error'), 1);
    assert.equal(count(stats, 'proxy_config:error'), 1);

    // A captive portal answers 200 with HTML: garbage, kept out.
    routes.set('/getProxySecret', {
      status: 200,
      body: '<html><body>Blocked by your provider</body></html>',
    });
    routes.set('/getProxyConfig', { status: 200, body: '<html><body>Blocked</body></html>' });
    await source.refresh();
    assert.deepEqual(source.current?.secret, SECRET);
    assert.deepEqual(source.addressesFor(2), [{ host: '127.0.0.1', port: 1111 }]);
    assert.equal(count(stats, 'proxy_secret:invalid'), 1);
    assert.equal(count(stats, 'proxy_config:invalid'), 1);

    // A good new config replaces the old one.
    const before = updates;
    routes.set('/getProxySecret', { status: 200, body: SECRET });
    routes.set('/getProxyConfig', { status: 200, body: CONFIG_B });
    await source.refresh();
    assert.deepEqual(source.addressesFor(2), [{ host: '127.0.0.1', port: 2222 }]);
    assert.equal(updates, before + 1);
  } finally {
    source.stop();
  }
});

test('starts from the state-folder cache when Telegram cannot be reached', async () => {
  const stateDir = path.join(dir, 'state-2');
  routes.set('/getProxySecret', { status: 200, body: SECRET });
  routes.set('/getProxyConfig', { status: 200, body: CONFIG_A });
  const first = new TelegramConfigSource(() => configFor(stateDir, base), testLog(), new Stats());
  await first.start();
  first.stop();

  // Nothing listens on this address: every fetch fails, the cache carries the start.
  const closedPort = await new Promise<number>((resolve) => {
    const s = http.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
  const stats = new Stats();
  const offline = new TelegramConfigSource(
    () => configFor(stateDir, `http://127.0.0.1:${closedPort}`),
    testLog(),
    stats,
  );
  await offline.start();
  offline.stop();
  assert.deepEqual(offline.current?.secret, SECRET);
  assert.deepEqual(offline.addressesFor(2), [{ host: '127.0.0.1', port: 1111 }]);
  assert.equal(count(stats, 'cache:ok'), 1);
  assert.equal(count(stats, 'proxy_config:error'), 1);

  // Without a cache there is nothing to start with.
  const empty = new TelegramConfigSource(
    () => configFor(path.join(dir, 'state-empty'), `http://127.0.0.1:${closedPort}`),
    testLog(),
    new Stats(),
  );
  await assert.rejects(empty.start(), /no Telegram proxy config/);
});

test('refreshes on its interval', async () => {
  routes.set('/getProxySecret', { status: 200, body: SECRET });
  routes.set('/getProxyConfig', { status: 200, body: CONFIG_A });
  const config = configFor(path.join(dir, 'state-3'), base);
  config.telegram.refreshIntervalMs = 50;
  const source = new TelegramConfigSource(() => config, testLog(), new Stats());
  await source.start();
  routes.set('/getProxyConfig', { status: 200, body: CONFIG_B });
  for (let i = 0; i < 500 && source.addressesFor(2)[0].port !== 2222; i++)
    await new Promise((r) => setTimeout(r, 20));
  source.stop();
  assert.equal(source.addressesFor(2)[0].port, 2222);
  assert.ok(hits > 4);
});

test('a reload that shortens the refresh interval applies at once, not after the old interval', async () => {
  routes.set('/getProxySecret', { status: 200, body: SECRET });
  routes.set('/getProxyConfig', { status: 200, body: CONFIG_A });
  const config = configFor(path.join(dir, 'state-4'), base);
  const source = new TelegramConfigSource(() => config, testLog(), new Stats());
  await source.start();
  const before = hits;
  config.telegram.refreshIntervalMs = 50;
  source.followInterval();
  for (let i = 0; i < 500 && hits < before + 4; i++) await new Promise((r) => setTimeout(r, 20));
  source.stop();
  assert.ok(hits >= before + 4, `refreshed on the new interval (${hits - before} fetches)`);
});

test('stop() while a scheduled refresh is in flight ends the refreshing for good', async () => {
  routes.set('/getProxySecret', { status: 200, body: SECRET });
  routes.set('/getProxyConfig', { status: 200, body: CONFIG_A });
  const config = configFor(path.join(dir, 'state-5'), base);
  const source = new TelegramConfigSource(() => config, testLog(), new Stats());
  await source.start();
  // The next scheduled refresh hangs on the secret until it has been stopped.
  routes.set('/getProxySecret', { status: 200, body: SECRET, delayMs: 200 });
  const started = hits;
  config.telegram.refreshIntervalMs = 20;
  source.followInterval();
  for (let i = 0; i < 500 && hits === started; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(hits > started, 'a scheduled refresh started');
  source.stop();
  await source.refresh(); // the one in flight
  const after = hits;
  await new Promise((r) => setTimeout(r, 200)); // ten intervals: a timer left armed would have fired
  assert.equal(hits, after, 'no refresh after stop()');
});

test('external IP: configured, NAT form, detected, local', () => {
  assert.equal(translateLocalIp('10.0.0.5', '203.0.113.1', null), '203.0.113.1');
  assert.equal(translateLocalIp('10.0.0.5', '10.0.0.5:203.0.113.1', null), '203.0.113.1');
  assert.equal(translateLocalIp('::ffff:10.0.0.5', '10.0.0.5:203.0.113.1', null), '203.0.113.1');
  assert.equal(
    translateLocalIp('10.0.0.6', '10.0.0.5:203.0.113.1', null),
    '10.0.0.6',
    'other local address: as is',
  );
  assert.equal(translateLocalIp('10.0.0.5', null, '198.51.100.2'), '198.51.100.2');
  assert.equal(translateLocalIp('10.0.0.5', null, null), '10.0.0.5');
});
