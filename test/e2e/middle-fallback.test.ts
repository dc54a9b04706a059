/**
 * The real proxy in middle mode with Telegram's middle proxies down (the listed port refuses): clients are served
 * directly through the fake DC, per upstream.middle_fallback for a listener with an ad tag.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { fakeProxyConfigText } from '../helpers/fake-middle-proxy.ts';
import { encryptedPayload, TEST_AD_TAG } from '../helpers/middle-harness.ts';
import { dcOverridesToml, startTestProxy, TEST_SECRET_HEX, type TestProxy } from '../helpers/proxy.ts';

/** A loopback port nothing listens on (bound once, then released). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('middle proxies down: fallback to direct', () => {
  let dc: FakeDc;
  let dir: string;
  const proxies: TestProxy[] = [];

  before(async () => {
    dc = await FakeDc.start();
    dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-fallback-'));
    await writeFile(path.join(dir, 'proxy-secret'), randomBytes(128));
    await writeFile(path.join(dir, 'proxy-config.txt'), fakeProxyConfigText(await closedPort()));
  });

  after(async () => {
    for (const p of proxies) await p.stop();
    await dc.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function start(mode: string, adTag: string | null, fallback: string | null): Promise<TestProxy> {
    const p = await startTestProxy(`state_dir = ${JSON.stringify(path.join(dir, `state-${proxies.length}`))}
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"
${adTag ? `ad_tag = "${adTag}"` : ''}

[upstream]
mode = "${mode}"
connect_timeout = "2s"
min_connections_per_dc = 1
${fallback ? `middle_fallback = "${fallback}"` : ''}

[upstream.dc]
${dcOverridesToml(dc.port)}

[telegram]
proxy_secret = ${JSON.stringify(path.join(dir, 'proxy-secret'))}
proxy_config = ${JSON.stringify(path.join(dir, 'proxy-config.txt'))}
ip_lookup_url = ""
`);
    proxies.push(p);
    return p;
  }

  const connect = (p: TestProxy) =>
    connectObfuscated({
      host: '127.0.0.1',
      port: p.port(),
      secret: TEST_SECRET_HEX,
      transport: 'intermediate',
      dcId: 2,
    });

  for (const mode of ['auto', 'middle']) {
    it(`${mode} mode, ad tag, default middle_fallback: the client is served directly, counted`, async () => {
      const p = await start(mode, TEST_AD_TAG, null);
      const before = dc.connections.length;
      for (let i = 0; i < 2; i++) {
        const c = await connect(p);
        const payload = encryptedPayload(i);
        c.sendFrame(payload);
        assert.deepEqual((await c.nextFrame()).payload, payload);
        c.close();
      }
      assert.ok(dc.connections.length >= before + 2, 'the fake DC carried them');
      assert.ok(p.stats.dc(2).middleFallbacks >= 2);
    });
  }

  it('middle mode without an ad tag falls back even with middle_fallback = "none"', async () => {
    const p = await start('middle', null, 'none');
    const c = await connect(p);
    const payload = encryptedPayload(7);
    c.sendFrame(payload);
    assert.deepEqual((await c.nextFrame()).payload, payload);
    c.close();
    assert.ok(p.stats.dc(2).middleFallbacks >= 1);
  });

  it('an ad tag with middle_fallback = "none": the client is closed, not served directly', async () => {
    const p = await start('auto', TEST_AD_TAG, 'none');
    const before = dc.connections.length;
    const c = await connect(p);
    c.sendFrame(encryptedPayload(9));
    await c.closed;
    assert.equal(dc.connections.length, before, 'nothing went to the DC');
    assert.equal(p.stats.dc(2).middleFallbacks, 0);
  });
});
