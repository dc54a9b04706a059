/**
 * Frames that cannot be MTProto (the lengths a prober sent: intermediate 0 and 3, abridged 0, padded 1 and 5)
 * close the session, are counted by reason, and never reach the DC. The real proxy against the fake DC, and
 * against the fake middle proxy (framed sessions).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import type { TransportTag } from '../../src/protocol/obfuscated2.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { encryptedPayload, type MiddleSetup, startMiddleSetup } from '../helpers/middle-harness.ts';
import { basicToml, startTestProxy, TEST_SECRET_HEX, type TestProxy } from '../helpers/proxy.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

const cases: Array<[TransportTag, Buffer, string]> = [
  ['intermediate', hex('00000000'), 'MTP_ERR_FRAME_TOO_SMALL'],
  ['intermediate', hex('03000000 eeeeee'), 'MTP_ERR_FRAME_UNALIGNED'],
  ['abridged', hex('00'), 'MTP_ERR_FRAME_TOO_SMALL'],
  ['padded', hex('01000000 ee'), 'MTP_ERR_FRAME_TOO_SMALL'],
  ['padded', hex('05000000 eeeeeeeeee'), 'MTP_ERR_FRAME_TOO_SMALL'],
];

describe('frames that cannot be MTProto, end to end (direct mode)', () => {
  let dc: FakeDc;
  let proxy: TestProxy;

  before(async () => {
    dc = await FakeDc.start();
    proxy = await startTestProxy(basicToml(dc.port, { top: '' }));
  });
  after(async () => {
    await proxy.stop();
    await dc.stop();
  });

  for (const [transport, wire, reason] of cases) {
    it(`${transport} ${wire.subarray(0, transport === 'abridged' ? 1 : 4).toString('hex')}: closed, counted as ${reason}`, async () => {
      const failures = () => proxy.stats.listener('main').handshakeFailures.get(reason) ?? 0;
      const counted = failures();
      const c = await connectObfuscated({
        host: '127.0.0.1',
        port: proxy.port(),
        secret: transport === 'padded' ? `dd${TEST_SECRET_HEX}` : TEST_SECRET_HEX,
        transport,
      });
      const good = Buffer.alloc(16, 0x11);
      const seen = dc.waitForFrame((_, p) => p.equals(good));
      c.sendFrame(good);
      const conn = await seen;
      assert.deepEqual((await c.nextFrame()).payload, good, 'a real frame is relayed both ways');

      // The bad frame and a good one right behind it, in one write.
      c.sendPlain(Buffer.concat([wire, hex('04000000'), Buffer.alloc(16, 0x22)]));
      await c.closed;
      await new Promise<void>((resolve) =>
        conn.socket.destroyed ? resolve() : conn.socket.once('close', () => resolve()),
      );
      assert.equal(failures(), counted + 1);
      assert.deepEqual(conn.frames, [good], 'nothing after the good frame reached the DC');
    });
  }

  it('frames of any MTProto size still pass', async () => {
    const c = await connectObfuscated({ host: '127.0.0.1', port: proxy.port(), secret: TEST_SECRET_HEX });
    for (const n of [8, 12, 24, 1000]) {
      const p = Buffer.alloc(n, n & 0xff);
      c.sendFrame(p);
      assert.deepEqual((await c.nextFrame()).payload, p);
    }
    c.close();
  });
});

describe('frames that cannot be MTProto, end to end (middle mode)', () => {
  let setup: MiddleSetup;
  before(async () => {
    setup = await startMiddleSetup();
  });
  after(async () => {
    await setup.stop();
  });

  for (const [transport, wire, reason] of cases) {
    it(`${transport} ${wire.subarray(0, transport === 'abridged' ? 1 : 4).toString('hex')}: closed, counted as ${reason}`, async () => {
      const failures = () => setup.stats.listener('main').handshakeFailures.get(reason) ?? 0;
      const counted = failures();
      const c = await setup.connect(transport, 2);
      const good = encryptedPayload(2, 32);
      c.sendFrame(good);
      assert.deepEqual((await c.nextFrame()).payload, good);
      const seen = setup.fake.requests.length;
      c.sendPlain(wire);
      await c.closed;
      assert.equal(failures(), counted + 1);
      assert.equal(setup.fake.requests.length, seen, 'no request for the bad frame reached the middle proxy');
    });
  }
});
