/**
 * The admin API's /users end to end: a real proxy with its admin API and a fake DC on loopback. Users are
 * created, changed, disabled, deleted live; bad input is refused field by field; links and QR codes come out.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inflateSync } from 'node:zlib';
import { parseConfig } from '../../src/config/load.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { ProxyServer } from '../../src/server/proxy.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { TEST_SECRET_HEX } from '../helpers/proxy.ts';
import { echoedSession, relays } from '../helpers/relay-probe.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';

const TOKEN = 'users-api-token-0123456789';
const FILED = 'f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1';

describe('users: admin API end to end', () => {
  const dir = suiteTempDir('mtp-users-api-');
  let dc: FakeDc;
  let proxy: ProxyServer;
  let base = '';
  let port = 0;

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const type = res.headers.get('content-type') ?? '';
    const data = type.includes('json') ? await res.json() : Buffer.from(await res.arrayBuffer());
    // biome-ignore lint/suspicious/noExplicitAny: JSON answers are read field by field in the assertions
    return { status: res.status, data: data as Record<string, any> };
  };

  before(async () => {
    dc = await FakeDc.start({ keepFrames: 10 });
    const toml = `state_dir = "${dir()}"
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"
tls_domain = "example.com"

[[users]]
name = "filed"
secret = "${FILED}"

[upstream]
mode = "direct"
[upstream.dc]
2 = ["127.0.0.1:${dc.port}"]

[admin]
listen = "127.0.0.1:0"
token = "${TOKEN}"

[log]
level = "silent"
`;
    const log = logger.child({ test: true });
    log.level = 'silent';
    proxy = new ProxyServer(parseConfig(toml, { file: join(dir(), 'mtproxy.toml') }), {
      log,
      stats: new Stats(),
    });
    await proxy.start();
    base = `http://127.0.0.1:${proxy.operations!.adminAddress()!.port}`;
    port = proxy.address('main').port;
  });

  after(async () => {
    await proxy.stop(0);
    await dc.stop();
  });

  it('refuses bad input with one message per field', async () => {
    const { status, data } = await api('POST', '/users', {
      name: 'bad name',
      quota: 'lots',
      quota_period: 'yearly',
      max_ips: -1,
      expires: 'tomorrow',
      secret: 'xyz',
      rate: {},
      bogus: 1,
    });
    assert.equal(status, 400);
    assert.deepEqual(Object.keys(data.errors).sort(), [
      'bogus',
      'expires',
      'max_ips',
      'name',
      'quota',
      'quota_period',
      'rate',
      'secret',
    ]);
    assert.match(data.errors.quota, /50GB/);
    // The other fields, each wrong in its own way: one message each.
    const rest = await api('POST', '/users', {
      name: 'ok-name',
      listeners: 'main',
      max_connections: 1.5,
      quota_reset_day: 32,
      enabled: 'yes',
      ad_tag: 'zz',
      note: 5,
      tls_domains: ['not a domain'],
    });
    assert.equal(rest.status, 400);
    assert.deepEqual(Object.keys(rest.data.errors).sort(), [
      'ad_tag',
      'enabled',
      'listeners',
      'max_connections',
      'note',
      'quota_reset_day',
      'tls_domains',
    ]);
    for (const message of Object.values(rest.data.errors)) assert.match(String(message), /^expected /);
    assert.equal((await api('GET', '/users/ok-name')).status, 404, 'nothing created');
    // A body that is not an object at all.
    const notObject = await api('POST', '/users', [1, 2]);
    assert.equal(notObject.status, 400);
    assert.ok(notObject.data.errors.body);
    const missing = await api('POST', '/users', {});
    assert.equal(missing.status, 400);
    assert.match(missing.data.errors.name, /required/);
    const taken = await api('POST', '/users', { name: 'filed' });
    assert.match(taken.data.errors.name, /exists/);
    const dup = await api('POST', '/users', { name: 'x', secret: FILED, listeners: ['nope'] });
    assert.match(dup.data.errors.secret, /filed/);
    assert.match(dup.data.errors.listeners, /nope/);
    const listenerSecret = await api('POST', '/users', { name: 'x', secret: TEST_SECRET_HEX });
    assert.match(listenerSecret.data.errors.secret, /listener "main"/);
  });

  it('creates a user live (secret generated) whose secret works at once', async () => {
    const { status, data } = await api('POST', '/users', {
      name: 'alice',
      quota: '50GB',
      quota_period: 'monthly',
      max_ips: 3,
      expires: '2099-06-01',
      note: 'customer 1',
    });
    assert.equal(status, 201);
    assert.match(data.secret, /^[0-9a-f]{32}$/);
    assert.equal(data.quota, 50e9);
    assert.equal(data.expires, '2099-06-01T00:00:00.000Z');
    assert.equal(data.source, 'api');
    const c = await echoedSession(port, data.secret);
    const one = await api('GET', '/users/alice');
    assert.equal(one.data.usage.sessions_active, 1);
    c.close();
  });

  it('disable ends the sessions at once, enable lets them in again', async () => {
    const secret = (await api('GET', '/users/alice')).data.secret;
    const c = await echoedSession(port, secret);
    assert.equal((await api('POST', '/users/alice/disable')).data.enabled, false);
    await c.closed;
    assert.equal(await relays(port, secret), false);
    await api('POST', '/users/alice/enable');
    assert.equal(await relays(port, secret), true);
  });

  it('PATCH changes fields and checks them', async () => {
    const bad = await api('PATCH', '/users/alice', { max_connections: 'many', name: 'bob' });
    assert.equal(bad.status, 400);
    assert.deepEqual(Object.keys(bad.data.errors).sort(), ['max_connections', 'name']);
    const ok = await api('PATCH', '/users/alice', { max_connections: 4, rate: '2MB' });
    assert.equal(ok.data.max_connections, 4);
    assert.equal(ok.data.rate, 2e6);
  });

  it('a new secret (the shared link) ends the sessions on the old one at once; the new one works', async () => {
    const old = (await api('GET', '/users/alice')).data.secret as string;
    const c = await echoedSession(port, old);
    const fresh = 'ab'.repeat(16);
    const changed = await api('PATCH', '/users/alice', { secret: fresh });
    assert.equal(changed.data.secret, fresh);
    await c.closed;
    assert.equal(await relays(port, old), false);
    assert.equal(await relays(port, fresh), true);
    // Another user's secret is refused.
    const taken = await api('PATCH', '/users/alice', { secret: FILED });
    assert.equal(taken.status, 400);
    assert.match(taken.data.errors.secret, /filed/);
  });

  it('links per protocol and domain, QR codes as SVG and PNG', async () => {
    const { data } = await api('GET', '/users/alice/links');
    const protocols = data.links.map((l: { protocol: string }) => l.protocol);
    assert.deepEqual(protocols, ['classic', 'secure', 'tls']);
    for (const l of data.links) {
      assert.ok(l.tg.startsWith('tg://proxy?server='));
      assert.ok(l.https.startsWith('https://t.me/proxy?server='));
    }
    assert.match(data.links[2].secret, /^ee[0-9a-f]{32}/);
    const svg = await api('GET', '/users/alice/qr.svg?link=2');
    assert.equal(svg.status, 200);
    assert.match(svg.data.toString(), /<svg/);
    const png = (await api('GET', '/users/alice/qr.png')).data as unknown as Buffer;
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
    const width = png.readUInt32BE(16);
    assert.ok(width > 100);
    // IDAT: one filter byte and `width` grey bytes per row.
    const idatLength = png.readUInt32BE(33);
    const pixels = inflateSync(png.subarray(41, 41 + idatLength));
    assert.equal(pixels.length, (width + 1) * width);
    assert.equal((await api('GET', '/users/alice/qr.png?link=9')).status, 404);
  });

  it('usage history, reset, and top users in the status', async () => {
    proxy.users.flush();
    const usage = await api('GET', '/users/alice/usage');
    assert.equal(usage.status, 200);
    assert.ok(usage.data.periods.length >= 1);
    assert.ok(usage.data.current.bytes > 0);
    const status = await api('GET', '/status');
    assert.equal(status.data.users.by_traffic[0].name, 'alice');
    // By connections now: an open session counts.
    const secret = (await api('GET', '/users/alice')).data.secret as string;
    const c = await echoedSession(port, secret);
    const top = await api('GET', '/users/top?limit=1');
    assert.deepEqual(top.data.by_connections, [{ name: 'alice', sessions_active: 1 }]);
    assert.equal(top.data.by_traffic.length, 1);
    c.close();
    const reset = await api('POST', '/users/alice/reset');
    assert.equal(reset.data.usage.bytes, 0);
  });

  it("a user's own cover domain goes into its links and its fake-TLS link works", async () => {
    const { status, data } = await api('POST', '/users', { name: 'own', tls_domains: ['own.example.net'] });
    assert.equal(status, 201, JSON.stringify(data));
    const links = (await api('GET', '/users/own/links')).data.links as Array<{
      domain: string | null;
      secret: string;
    }>;
    const tls = links.find((l) => l.domain === 'own.example.net');
    assert.ok(tls, JSON.stringify(links));
    const c = await echoedSession(port, tls.secret);
    assert.equal(proxy.users.get('own')!.leases.size, 1);
    c.close();
    await api('DELETE', '/users/own');
  });

  it('a file user cannot be deleted or changed through the API; an API user can be deleted', async () => {
    assert.equal((await api('DELETE', '/users/filed')).status, 409);
    assert.equal((await api('PATCH', '/users/filed', { note: 'x' })).status, 409);
    const secret = (await api('GET', '/users/alice')).data.secret;
    const c = await echoedSession(port, secret);
    assert.equal((await api('DELETE', '/users/alice')).status, 200);
    await c.closed;
    assert.equal(await relays(port, secret), false);
    assert.equal((await api('GET', '/users/alice')).status, 404);
    const list = await api('GET', '/users');
    assert.deepEqual(
      list.data.users.map((u: { name: string }) => u.name),
      ['filed'],
    );
  });
});
