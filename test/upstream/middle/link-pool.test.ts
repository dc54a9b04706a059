import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parseConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/types.ts';
import { Stats } from '../../../src/metrics/stats.ts';
import { MiddleUpstream } from '../../../src/upstream/middle/middle-upstream.ts';
import { FakeMiddleProxy } from '../../helpers/fake-middle-proxy.ts';
import {
  encryptedPayload,
  type MiddleSetupOptions,
  middleToml,
  recordingSink,
  testLog,
  until,
  upstreamClientInfo,
  withMiddleSetup,
  writeTelegramFiles,
} from '../../helpers/middle-harness.ts';

/** A MiddleUpstream on its own, no proxy in front, for tests that control Telegram's side before it starts. */
function upstreamAlone(toml: string): { config: Config; stats: Stats; upstream: MiddleUpstream } {
  const config = parseConfig(toml);
  const stats = new Stats();
  return { config, stats, upstream: new MiddleUpstream(() => config, testLog(), stats) };
}

/** The fake middle proxy sees the proxy's connections come from 203.0.113.7; `externalIp` is what we claim. */
function behindNat(externalIp: string): MiddleSetupOptions {
  return { fake: { clientPublicIp: '203.0.113.7' }, telegram: `external_ip = "${externalIp}"` };
}

test('NAT: the external IP in "local:public" form is used for the keys and the proxy address', () =>
  withMiddleSetup(behindNat('127.0.0.1:203.0.113.7'), async (setup) => {
    const c = await setup.connect('intermediate', 2);
    const p = encryptedPayload(1);
    c.sendFrame(p);
    assert.deepEqual((await c.nextFrame()).payload, p);
    assert.equal(setup.fake.requests[0].proxy.ip, '203.0.113.7');
    c.close();
    assert.deepEqual(setup.fake.violations, []);
  }));

test('a wrong external IP makes the handshake fail: the client is refused, nothing crashes', () =>
  withMiddleSetup(behindNat('198.51.100.1'), async (setup) => {
    const c = await setup.connect('intermediate', 2);
    c.sendFrame(encryptedPayload(1));
    await until(() => setup.fake.violations.length > 0, 'the fake to reject the handshake');
    assert.equal(setup.fake.handshakes, 0);
    c.close();
  }));

for (const kind of ['crc', 'seq', 'length'] as const) {
  test(`a peer frame with a bad ${kind} closes that link and its clients; the pool reconnects`, () =>
    withMiddleSetup({ minConnections: 1 }, async (setup) => {
      const c = await setup.connect('intermediate', 2);
      const p = encryptedPayload(1);
      c.sendFrame(p);
      await c.nextFrame();
      setup.fake.sendBroken(kind);
      await c.closed;
      const code = {
        crc: 'MTP_ERR_RPC_BAD_CRC',
        seq: 'MTP_ERR_RPC_BAD_SEQ',
        length: 'MTP_ERR_RPC_BAD_FRAME',
      }[kind];
      assert.equal(setup.stats.dc(2).errors.get(code), 1);
      await until(() => setup.fake.handshakes === 2, 'a replacement link');
      const d = await setup.connect('intermediate', 2);
      d.sendFrame(p);
      assert.deepEqual((await d.nextFrame()).payload, p);
      d.close();
    }));
}

test('the pool keeps its minimum open and reconnects with backoff until Telegram is reachable', async () => {
  // Reserve a port, start with nothing listening on it.
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-pool-'));
  const fake = new FakeMiddleProxy({ secret: Buffer.alloc(128, 5) });
  await writeTelegramFiles(dir, fake.secret, port);
  const { config, stats, upstream } = upstreamAlone(middleToml(dir, { minConnections: 2 }));
  try {
    await upstream.start();
    const info = upstreamClientInfo(config.listeners[0], { remotePort: 40000, localPort: 1443 });
    const rec = recordingSink();
    const opening = upstream.open(info, rec.sink);
    await until(() => stats.dc(2).connectErrors >= 2, 'failed connects');
    await fake.start(port);
    const handle = await opening;
    await until(() => fake.handshakes === 2, 'the minimum of two links');
    const p = encryptedPayload(5);
    assert.equal(handle.writeFrame(p, false), true);
    await until(() => rec.frames.length === 1, 'the echo');
    assert.deepEqual(rec.frames[0], p);
    assert.equal(upstream.pool(2)!.status().ready, 2);
    handle.close();
    await until(() => fake.closedConns.length === 1, 'RPC_CLOSE_CONN');
    assert.deepEqual(fake.violations, []);
  } finally {
    await upstream.close();
    await fake.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unknown DC without a default is refused with MTP_ERR_NO_DC', () =>
  withMiddleSetup({}, async (setup) => {
    const info = upstreamClientInfo(setup.config.listeners[0], { transport: 'abridged', dcId: 99 });
    // The fake's config has "default 2": DC 99 lands on DC 2.
    const h = await setup.upstream.open(info, recordingSink().sink);
    h.close();
    setup.upstream.source.current!.v4.defaultDc = null;
    setup.config.upstream.defaultDc = 77;
    await assert.rejects(setup.upstream.open(info, recordingSink().sink), { code: 'MTP_ERR_NO_DC' });
  }));

test('a nonce answer followed by a padding word is tolerated', () =>
  withMiddleSetup({ fake: { padNonceAnswer: true } }, async (setup) => {
    const c = await setup.connect('abridged', 2);
    const p = encryptedPayload(3);
    c.sendFrame(p);
    assert.deepEqual((await c.nextFrame()).payload, p);
    c.close();
    assert.deepEqual(setup.fake.violations, []);
  }));

test('a peer answering garbage to the nonce fails the link without crashing anything', async () => {
  let answered = 0;
  const garbage = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => {
      answered++;
      s.write(randomBytes(200));
    });
  });
  await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
  const dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-garbage-'));
  await writeTelegramFiles(dir, randomBytes(128), (garbage.address() as net.AddressInfo).port);
  const { config, stats, upstream } = upstreamAlone(middleToml(dir, { minConnections: 1 }));
  try {
    await upstream.start();
    const rec = recordingSink();
    const opening = upstream.open(upstreamClientInfo(config.listeners[0]), rec.sink);
    opening.catch(() => {});
    await until(() => answered >= 2 && stats.dc(2).errors.size > 0, 'failed handshakes');
    assert.equal(stats.dc(2).linksActive, 0);
  } finally {
    await upstream.close();
    await new Promise<void>((resolve) => garbage.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  }
});

test('IPv6 middle proxies (prefer_ipv6): the link derives its keys with the IPv6 addresses', async () => {
  const fake = await new FakeMiddleProxy({ secret: Buffer.alloc(128, 9) }).start(0, '::1');
  const dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-v6-'));
  // The IPv4 list points nowhere useful; the IPv6 list at the fake.
  await writeTelegramFiles(dir, fake.secret, 1);
  await writeFile(path.join(dir, 'proxy-config-v6.txt'), `default 2;\nproxy_for 2 [::1]:${fake.port};\n`);
  const { config, upstream } = upstreamAlone(
    middleToml(dir, {
      upstream: 'prefer_ipv6 = true',
      telegram: `proxy_config_v6 = ${JSON.stringify(path.join(dir, 'proxy-config-v6.txt'))}`,
    }),
  );
  try {
    await upstream.start();
    const rec = recordingSink();
    const handle = await upstream.open(
      upstreamClientInfo(config.listeners[0], {
        transport: 'abridged',
        remoteAddress: '2001:db8::7',
        remotePort: 5555,
        localAddress: '::1',
        localPort: 443,
      }),
      rec.sink,
    );
    const p = encryptedPayload(8);
    handle.writeFrame(p, false);
    await until(() => rec.frames.length === 1, 'the echo');
    assert.deepEqual(rec.frames[0], p);
    assert.deepEqual(fake.requests[0].client, { ip: '2001:db8:0:0:0:0:0:7', port: 5555 });
    assert.equal(fake.requests[0].proxy.ip, '0:0:0:0:0:0:0:1');
    handle.close();
    assert.deepEqual(fake.violations, []);
  } finally {
    await upstream.close();
    await fake.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('mode "middle" without an ad tag leaves the tag block out', () =>
  withMiddleSetup({ adTag: null }, async (setup) => {
    const c = await setup.connect('abridged', 2);
    const p = encryptedPayload(4);
    c.sendFrame(p);
    assert.deepEqual((await c.nextFrame()).payload, p);
    assert.equal(setup.fake.requests[0].adTag, null);
    assert.equal(setup.fake.requests[0].flags & 0x8, 0);
    c.close();
    assert.deepEqual(setup.fake.violations, []);
  }));

test('a cached proxy secret from an earlier run is not used while the fresh one is being read', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-pool-'));
  const fake = await new FakeMiddleProxy({ secret: Buffer.alloc(128, 7) }).start();
  await writeTelegramFiles(dir, fake.secret, fake.port);
  // What an earlier run left in the state folder: another secret (Telegram rotated it since).
  await mkdir(path.join(dir, 'state'), { recursive: true });
  await writeFile(path.join(dir, 'state', 'telegram-proxy-secret.bin'), Buffer.alloc(128, 9));
  await writeFile(
    path.join(dir, 'state', 'telegram-proxy-config.txt'),
    `default 2;\nproxy_for 2 127.0.0.1:${fake.port};\n`,
  );
  // The fresh secret comes from a slow URL, so a client arrives while only the cached copy is loaded.
  const slow = createServer((_req, res) => {
    setTimeout(() => res.end(fake.secret), 300);
  });
  await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
  const secretUrl = `http://127.0.0.1:${(slow.address() as net.AddressInfo).port}/secret`;
  const toml = middleToml(dir, { minConnections: 1 }).replace(
    /proxy_secret = .*/,
    `proxy_secret = ${JSON.stringify(secretUrl)}`,
  );
  const { config, upstream } = upstreamAlone(toml);
  try {
    // As the proxy does: start in the background, the first client right behind it.
    void upstream.start().catch(() => {});
    await until(() => upstream.source.current !== null, 'the cached config');
    const info = upstreamClientInfo(config.listeners[0], { remotePort: 40000, localPort: 1443 });
    const rec = recordingSink();
    const handle = await upstream.open(info, rec.sink);
    const p = encryptedPayload(3);
    assert.equal(handle.writeFrame(p, false), true);
    await until(() => rec.frames.length === 1, 'the echo');
    assert.deepEqual(fake.violations, []);
    handle.close();
  } finally {
    await upstream.close();
    await fake.stop();
    slow.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a client held back by a full link is told to resume only after its write call returned', () =>
  withMiddleSetup({ minConnections: 1 }, async (setup) => {
    const info = upstreamClientInfo(setup.config.listeners[0]);
    const rec = recordingSink();
    // As a session does: every packet of one read goes in, and only then is the client paused if any was
    // refused. A resume arriving while the packets are going in would be lost and the client stall.
    let writing = false;
    let paused = false;
    let resumedWhileWriting = 0;
    let pauses = 0;
    const reads = 96;
    const perRead = 12; // 12 x 16 KiB: more than one batch, so the link flushes while packets go in
    let readsDone = 0;
    const payload = encryptedPayload(7, 16 * 1024);
    const pump = (): void => {
      while (readsDone < reads) {
        let accepting = true;
        writing = true;
        for (let i = 0; i < perRead; i++) if (!handle.writeFrame(payload, false)) accepting = false;
        writing = false;
        readsDone++;
        if (!accepting) {
          paused = true;
          pauses++;
          return;
        }
      }
    };
    rec.sink.resumeClient = () => {
      if (writing) resumedWhileWriting++;
      else if (paused) {
        paused = false;
        pump();
      }
    };
    const handle = await setup.upstream.open(info, rec.sink);
    pump();
    await until(() => rec.frames.length === reads * perRead, 'every echo');
    assert.equal(resumedWhileWriting, 0);
    assert.ok(pauses > 0, 'the link held the client back at least once');
    assert.ok(rec.frames.every((f) => f.equals(payload)));
    handle.close();
    assert.deepEqual(setup.fake.violations, []);
  }));
