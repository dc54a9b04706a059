import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { connectObfuscated, type ObfuscatedConnection } from '../../src/client/obfuscated-client.ts';
import { parseConfig } from '../../src/config/load.ts';
import { Stats } from '../../src/metrics/stats.ts';
import type { TransportTag } from '../../src/protocol/obfuscated2.ts';
import { ProxyServer } from '../../src/server/proxy.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { FakeMiddleProxy } from '../helpers/fake-middle-proxy.ts';
import { encryptedPayload, TEST_AD_TAG, testLog, writeTelegramFiles } from '../helpers/middle-harness.ts';
import { dcOverridesToml, TEST_SECRET_HEX } from '../helpers/proxy.ts';

const NEW_TAG = '00112233445566778899aabbccddeeff';

/** A fake middle proxy and a fake DC (one per mode), with Telegram's files for the fake in a fresh folder. */
async function startFakes(folderPrefix: string) {
  const dir = await mkdtemp(path.join(tmpdir(), folderPrefix));
  const fake = await new FakeMiddleProxy({ secret: randomBytes(128) }).start();
  const dc = await FakeDc.start();
  await writeTelegramFiles(dir, fake.secret, fake.port);
  const stop = async (): Promise<void> => {
    await fake.stop();
    await dc.stop();
    await rm(dir, { recursive: true, force: true });
  };
  return { dir, fake, dc, stop };
}

function listenerToml(name: string, adTag: string | null): string {
  return `[[listeners]]
name = "${name}"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"
${adTag ? `ad_tag = "${adTag}"` : ''}
`;
}

/** Upstream mode "auto" for `listeners`: the fake DC for direct mode, Telegram's files from `telegramDir`. */
function autoModeToml(dir: string, dcPort: number, listeners: string[], telegramDir = dir): string {
  return `state_dir = ${JSON.stringify(path.join(dir, 'state'))}
${listeners.join('\n')}
[upstream]
mode = "auto"
connect_timeout = "2s"
min_connections_per_dc = 1

[upstream.dc]
${dcOverridesToml(dcPort)}

[telegram]
proxy_secret = ${JSON.stringify(path.join(telegramDir, 'proxy-secret'))}
proxy_config = ${JSON.stringify(path.join(telegramDir, 'proxy-config.txt'))}
ip_lookup_url = ""
`;
}

function connectTo(
  proxy: ProxyServer,
  listener: string,
  transport: TransportTag,
  dcId: number,
): Promise<ObfuscatedConnection> {
  return connectObfuscated({
    host: '127.0.0.1',
    port: proxy.address(listener).port,
    secret: TEST_SECRET_HEX,
    transport,
    dcId,
  });
}

test('the server picks middle mode for a listener with an ad tag under mode "auto", direct otherwise', async () => {
  const fakes = await startFakes('mtproxy-middle-server-');
  const { dir, fake, dc } = fakes;
  const toml = autoModeToml(dir, dc.port, [listenerToml('promo', TEST_AD_TAG), listenerToml('plain', null)]);
  const config = parseConfig(toml);
  const proxy = new ProxyServer(config, { log: testLog(), stats: new Stats(), operations: false });
  await proxy.start();
  try {
    const promo = await connectTo(proxy, 'promo', 'abridged', 4);
    const p = encryptedPayload(1, 128);
    promo.sendFrame(p);
    assert.deepEqual((await promo.nextFrame()).payload, p);
    assert.equal(fake.requests.length, 1);
    assert.equal(fake.requests[0].adTag, TEST_AD_TAG);
    promo.close();

    const plain = await connectTo(proxy, 'plain', 'intermediate', 2);
    const q = encryptedPayload(2, 64);
    plain.sendFrame(q);
    assert.deepEqual((await plain.nextFrame()).payload, q);
    assert.equal(fake.requests.length, 1, 'the untagged listener did not use the middle proxy');
    assert.ok(dc.connections.length >= 1, 'it went to the DC directly');
    plain.close();

    // A reload changing the ad tag applies to new connections.
    const retagged = parseConfig(toml.replace(TEST_AD_TAG, NEW_TAG));
    await proxy.applyConfig(retagged);
    const again = await connectTo(proxy, 'promo', 'padded', 2);
    again.sendFrame(p);
    assert.deepEqual((await again.nextFrame()).payload, p);
    assert.equal(fake.requests.at(-1)!.adTag, NEW_TAG);
    again.close();
    assert.deepEqual(fake.violations, []);
  } finally {
    await proxy.stop(0);
    await fakes.stop();
  }
});

test('a reload that turns on middle mode loads Telegram config from the new config, not the one it replaces', async () => {
  const fakes = await startFakes('mtproxy-middle-reload-');
  const { dir, fake, dc } = fakes;
  const plain = listenerToml('plain', null);
  // Direct only, with Telegram sources that do not exist: nothing reads them while no listener is in middle mode.
  const before = parseConfig(autoModeToml(dir, dc.port, [plain], path.join(dir, 'nowhere')));
  const after = parseConfig(autoModeToml(dir, dc.port, [plain, listenerToml('promo', TEST_AD_TAG)]));
  const proxy = new ProxyServer(before, { log: testLog(), stats: new Stats(), operations: false });
  await proxy.start();
  try {
    await proxy.applyConfig(after);
    const middle = proxy.upstreamStatus().middle as { telegramConfig: unknown } | null;
    assert.ok(middle?.telegramConfig, 'Telegram config loaded during the reload');
    const promo = await connectTo(proxy, 'promo', 'intermediate', 2);
    const p = encryptedPayload(1, 64);
    promo.sendFrame(p);
    assert.deepEqual((await promo.nextFrame()).payload, p);
    promo.close();
    assert.deepEqual(fake.violations, []);
  } finally {
    await proxy.stop(0);
    await fakes.stop();
  }
});
