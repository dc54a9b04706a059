import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated, type ObfuscatedConnection } from '../../src/client/obfuscated-client.ts';
import type { TransportTag } from '../../src/protocol/obfuscated2.ts';
import { parseConfig } from '../../src/config/load.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { basicToml, startTestProxy, TEST_SECRET_HEX, type TestProxy } from '../helpers/proxy.ts';

const transports: TransportTag[] = ['abridged', 'intermediate', 'padded'];

function secretFor(t: TransportTag): string {
  return t === 'padded' ? `dd${TEST_SECRET_HEX}` : TEST_SECRET_HEX;
}

/** Payload of `n` bytes (a multiple of 4, as MTProto packets are) with recognisable content. */
function payload(n: number, seed: number): Buffer {
  const b = randomBytes(n);
  if (n >= 4) b.writeUInt32LE(seed >>> 0, 0);
  return b;
}

/** A client of `p`'s default listener on 127.0.0.1 with the plain test secret. */
function connectWithTestSecret(
  p: TestProxy,
  options: { transport?: TransportTag; dcId?: number },
): Promise<ObfuscatedConnection> {
  return connectObfuscated({ host: '127.0.0.1', port: p.port(), secret: TEST_SECRET_HEX, ...options });
}

describe('direct mode end to end', () => {
  let dc: FakeDc;
  let proxy: TestProxy;
  const open: ObfuscatedConnection[] = [];

  const connect = async (transport: TransportTag, dcId: number): Promise<ObfuscatedConnection> => {
    const c = await connectObfuscated({
      host: '127.0.0.1',
      port: proxy.port(),
      secret: secretFor(transport),
      transport,
      dcId,
    });
    open.push(c);
    return c;
  };

  before(async () => {
    dc = await FakeDc.start({ keepFrames: 50 });
    proxy = await startTestProxy(basicToml(dc.port, { top: '' }));
  });

  after(async () => {
    for (const c of open) c.close();
    await proxy.stop();
    await dc.stop();
  });

  it('each transport x DC id (1..5, media, unknown) relays both ways', async () => {
    const dcIds = [1, 2, 3, 4, 5, -1, -2, -5, 203, 7, 0];
    await Promise.all(
      transports.flatMap((t) =>
        dcIds.map(async (id) => {
          const c = await connect(t, id);
          // The smallest frame an MTProto client can send carries 8 bytes (an auth_key_id).
          const sizes = [8, 64, 1024, 65_536];
          const sent = sizes.map((n, i) => payload(n, id * 100 + i));
          for (const p of sent) c.sendFrame(p);
          for (const p of sent) assert.deepEqual((await c.nextFrame()).payload, p);
          c.close();
        }),
      ),
    );
    // The DC saw each transport and the expected DC id in our header: the client's own id when the DC is
    // known, the default DC (2) when it is not.
    for (const t of transports) {
      for (const id of [1, 2, 3, 4, 5, -1, -2, -5, 203]) {
        assert.ok(
          dc.connections.some((c) => c.transport === t && c.dcId === id),
          `${t} dc ${id}`,
        );
      }
      assert.ok(!dc.connections.some((c) => c.dcId === 7 || c.dcId === 0), 'unknown ids fall back to DC 2');
    }
    assert.equal(dc.rejected.length, 0);
  });

  it('carries frames up to 1 MiB in both directions', async () => {
    for (const t of transports) {
      const c = await connect(t, 2);
      const big = payload(1024 * 1024 - 4, 1);
      const mid = payload(300_000, 2);
      c.sendFrame(big);
      c.sendFrame(mid);
      assert.deepEqual((await c.nextFrame(15_000)).payload, big);
      assert.deepEqual((await c.nextFrame(15_000)).payload, mid);
      c.close();
    }
  });

  it('many packets in flight, interleaved both ways, stay in order', async () => {
    const c = await connect('padded', -2);
    const frames = Array.from({ length: 300 }, (_, i) => payload(8 + (i % 50) * 4, i));
    const received: Buffer[] = [];
    const done = new Promise<void>((resolve) => {
      c.onFrame = (f) => {
        received.push(f.payload);
        if (received.length === frames.length) resolve();
      };
    });
    for (let i = 0; i < frames.length; i++) {
      c.sendFrame(frames[i]);
      if (i % 20 === 0) await new Promise((r) => setImmediate(r));
    }
    await done;
    assert.deepEqual(received, frames);
    c.close();
  });

  it('serves 100 parallel clients', async () => {
    const clients = await Promise.all(
      Array.from({ length: 100 }, (_, i) => connect(transports[i % 3], (i % 5) + 1)),
    );
    await Promise.all(
      clients.map(async (c, i) => {
        const p = payload(256, i);
        c.sendFrame(p);
        assert.deepEqual((await c.nextFrame()).payload, p);
      }),
    );
    for (const c of clients) c.close();
  });

  it('a half-closing client still gets its answer', async () => {
    const c = await connect('intermediate', 2);
    const p = payload(128, 5);
    c.sendFrame(p);
    c.end();
    assert.deepEqual((await c.nextFrame()).payload, p);
    await c.closed;
  });

  it('a wrong-secret client never reaches the DC', async () => {
    const before = dc.connections.length;
    const c = await connectObfuscated({
      host: '127.0.0.1',
      port: proxy.port(),
      secret: 'ffffffffffffffffffffffffffffffff',
      transport: 'intermediate',
      dcId: 2,
    });
    c.sendFrame(payload(16, 1));
    await c.closed;
    assert.equal(c.bytesReceived, 0);
    assert.equal(dc.connections.length, before);
  });

  it('a client that stops reading stalls its DC instead of being buffered without bound', async () => {
    const total = 48 * 1024 * 1024;
    const frameSize = 64 * 1024;
    let written = 0;
    let waitingForDrain = false;
    let lastProgress = Date.now();
    const floodDc = await FakeDc.start({
      keepFrames: 1,
      onFrame: (conn) => {
        const chunk = Buffer.alloc(frameSize, 0x5a);
        const pump = (): void => {
          waitingForDrain = false;
          while (written < total) {
            written += frameSize;
            lastProgress = Date.now();
            if (!conn.send(chunk)) {
              waitingForDrain = true;
              conn.socket.once('drain', pump);
              return;
            }
          }
        };
        pump();
      },
    });
    const p2 = await startTestProxy(basicToml(floodDc.port));
    try {
      const c = await connectWithTestSecret(p2, { transport: 'intermediate' });
      let received = 0;
      c.onFrame = (f) => {
        received += f.payload.length;
      };
      c.socket.pause();
      c.sendFrame(Buffer.from('flood...'));
      // Wait until the DC has been blocked for a while: the proxy stopped reading it.
      while (!(waitingForDrain && Date.now() - lastProgress > 500)) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(written < total, `DC wrote ${written} bytes: the proxy kept reading a stalled client's DC`);
      c.socket.resume();
      while (received < total) await new Promise((r) => setTimeout(r, 20));
      assert.equal(received, total);
      c.close();
    } finally {
      await p2.stop();
      await floodDc.stop();
    }
  });

  it('a DC that stops reading stalls its client instead of being buffered without bound', async () => {
    const stallingDc = await FakeDc.start({
      keepFrames: 1,
      // After the first frame the DC stops reading: everything else must stay in the client's socket.
      onFrame: (conn) => conn.socket.pause(),
    });
    const p2 = await startTestProxy(basicToml(stallingDc.port));
    try {
      const c = await connectWithTestSecret(p2, { transport: 'intermediate' });
      c.sendFrame(Buffer.alloc(16));
      await stallingDc.waitForConnection();
      const chunk = Buffer.alloc(64 * 1024, 1);
      const limit = 64 * 1024 * 1024;
      let sent = 0;
      // Write until our own socket reports a backlog that stops moving: the proxy stopped reading us.
      let lastBacklog = -1;
      let stableRounds = 0;
      while (sent < limit && stableRounds < 10) {
        while (c.socket.writableLength < 4 * 1024 * 1024 && sent < limit) {
          c.sendFrame(chunk);
          sent += chunk.length;
        }
        await new Promise((r) => setTimeout(r, 50));
        const backlog = c.socket.writableLength;
        stableRounds = backlog === lastBacklog ? stableRounds + 1 : 0;
        lastBacklog = backlog;
      }
      assert.ok(sent < limit, `sent ${sent} bytes into a DC that reads nothing`);
      assert.ok(c.socket.writableLength > 0);
      c.close();
    } finally {
      await p2.stop();
      await stallingDc.stop();
    }
  });

  it('IPv6 both sides: a listener on ::1 and a DC reached over IPv6 with prefer_ipv6', async () => {
    const dc6 = await FakeDc.start({ host: '::1' });
    const p2 = await startTestProxy(`
[[listeners]]
name = "v6"
host = "::1"
port = 0
secret = "${TEST_SECRET_HEX}"

[upstream]
prefer_ipv6 = true

[upstream.dc]
4 = ["127.0.0.1:${dc.port}", "[::1]:${dc6.port}"]
`);
    try {
      const c = await connectObfuscated({
        host: '::1',
        port: p2.port('v6'),
        secret: TEST_SECRET_HEX,
        dcId: 4,
      });
      const p = payload(64, 6);
      c.sendFrame(p);
      assert.deepEqual((await c.nextFrame()).payload, p);
      assert.equal(dc6.connections.length, 1, 'the IPv6 address was tried first');
      assert.equal(dc6.connections[0].dcId, 4);
      c.close();
    } finally {
      await p2.stop();
      await dc6.stop();
    }
  });

  it('a reload that moves a DC sends new sessions to the new address; open ones keep theirs', async () => {
    const dcB = await FakeDc.start();
    const p2 = await startTestProxy(basicToml(dc.port));
    try {
      const old = await connectWithTestSecret(p2, { dcId: 5 });
      old.sendFrame(payload(8, 1));
      await old.nextFrame();
      const next = parseConfig(
        basicToml(dc.port).replace(`5 = ["127.0.0.1:${dc.port}"]`, `5 = ["127.0.0.1:${dcB.port}"]`),
      );
      next.listeners[0].port = p2.port();
      await p2.proxy.applyConfig(next);
      const fresh = await connectWithTestSecret(p2, { dcId: 5 });
      const p = payload(32, 2);
      fresh.sendFrame(p);
      assert.deepEqual((await fresh.nextFrame()).payload, p);
      assert.equal(dcB.connections.length, 1);
      const q = payload(32, 3);
      old.sendFrame(q);
      assert.deepEqual((await old.nextFrame()).payload, q, 'the established session still works');
      assert.equal(dcB.connections.length, 1);
      old.close();
      fresh.close();
    } finally {
      await p2.stop();
      await dcB.stop();
    }
  });
});
