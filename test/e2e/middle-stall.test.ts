/**
 * The real proxy with its own middle upstream: Telegram's middle proxy stops answering on the link a client
 * uses and refuses new connections. The client is closed within the stall timeout (the app reconnects), and
 * the reconnecting client is served directly through the fake DC.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { FakeMiddleProxy, fakeProxyConfigText } from '../helpers/fake-middle-proxy.ts';
import { encryptedPayload, TEST_AD_TAG } from '../helpers/middle-harness.ts';
import { dcOverridesToml, startTestProxy, TEST_SECRET_HEX } from '../helpers/proxy.ts';

test('a stalled middle proxy: its client is closed, and served directly when it reconnects', async () => {
  const dc = await FakeDc.start();
  const secret = randomBytes(128);
  const fake = await new FakeMiddleProxy({ secret }).start();
  const dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-stall-'));
  await writeFile(path.join(dir, 'proxy-secret'), secret);
  await writeFile(path.join(dir, 'proxy-config.txt'), fakeProxyConfigText(fake.port));
  const proxy = await startTestProxy(`state_dir = ${JSON.stringify(path.join(dir, 'state'))}
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"
ad_tag = "${TEST_AD_TAG}"

[upstream]
mode = "auto"
connect_timeout = "2s"
min_connections_per_dc = 1
stall_timeout = "400ms"

[upstream.dc]
${dcOverridesToml(dc.port)}

[telegram]
proxy_secret = ${JSON.stringify(path.join(dir, 'proxy-secret'))}
proxy_config = ${JSON.stringify(path.join(dir, 'proxy-config.txt'))}
ip_lookup_url = ""
`);
  const connect = () =>
    connectObfuscated({
      host: '127.0.0.1',
      port: proxy.port(),
      secret: TEST_SECRET_HEX,
      transport: 'intermediate',
      dcId: 2,
    });
  try {
    const c = await connect();
    const p = encryptedPayload(1);
    c.sendFrame(p);
    assert.deepEqual((await c.nextFrame()).payload, p);
    assert.equal(fake.requests.at(-1)?.adTag, TEST_AD_TAG, 'served through the middle proxy');
    assert.equal(dc.connections.length, 0);

    fake.stall();
    await fake.stopAccepting();
    c.sendFrame(encryptedPayload(2));
    await c.closed;
    assert.ok(proxy.stats.dc(2).stalledLinks >= 1);

    const again = await connect();
    const q = encryptedPayload(3);
    again.sendFrame(q);
    assert.deepEqual((await again.nextFrame()).payload, q);
    assert.ok(dc.connections.length >= 1, 'served directly through the fake DC');
    assert.ok(proxy.stats.dc(2).middleFallbacks >= 1);
    again.close();
    assert.deepEqual(fake.violations, []);
  } finally {
    await proxy.stop();
    await fake.stop();
    await dc.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
