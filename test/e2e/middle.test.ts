import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fakeTlsHandshake } from '../../src/client/fake-tls-client.ts';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import {
  FLAG_ABRIDGED,
  FLAG_HAS_AD_TAG,
  FLAG_INTERMEDIATE,
  FLAG_NOT_ENCRYPTED,
  FLAG_PAD,
} from '../../src/protocol/middle/rpc.ts';
import type { TransportTag } from '../../src/protocol/obfuscated2.ts';
import {
  encryptedPayload,
  type MiddleSetup,
  startMiddleSetup,
  TEST_AD_TAG,
} from '../helpers/middle-harness.ts';
import { TEST_SECRET } from '../helpers/proxy.ts';

let setup: MiddleSetup;

before(async () => {
  setup = await startMiddleSetup();
});

after(async () => {
  await setup.stop();
});

const transports: TransportTag[] = ['abridged', 'intermediate', 'padded'];
const protocolFlags: Record<TransportTag, number> = {
  abridged: FLAG_ABRIDGED,
  intermediate: FLAG_INTERMEDIATE,
  padded: FLAG_INTERMEDIATE | FLAG_PAD,
};

test('each transport and DC id round-trips through the middle proxy with the ad tag', async () => {
  for (const transport of transports) {
    for (const dcId of [1, 2, 3, 4, 5, -1, -2, -5, 203]) {
      const client = await setup.connect(transport, dcId);
      const payload = encryptedPayload(dcId, 96);
      const before = setup.fake.requests.length;
      client.sendFrame(payload);
      const got = await client.nextFrame();
      assert.deepEqual(got.payload, payload, `${transport} dc ${dcId}`);
      const req = setup.fake.requests[before];
      assert.equal(req.adTag, TEST_AD_TAG);
      assert.equal(req.flags & (FLAG_ABRIDGED | FLAG_INTERMEDIATE | FLAG_PAD), protocolFlags[transport]);
      assert.ok(req.flags & FLAG_HAS_AD_TAG);
      assert.equal(req.flags & FLAG_NOT_ENCRYPTED, 0);
      assert.equal(req.client.ip, '127.0.0.1');
      assert.equal(req.client.port, client.socket.localPort);
      client.close();
    }
  }
  assert.deepEqual(setup.fake.violations, []);
});

test('an unencrypted handshake message is flagged NOT_ENCRYPTED', async () => {
  const client = await setup.connect('padded', 2);
  const reqPq = Buffer.alloc(40);
  reqPq.writeUInt32LE(20, 16);
  const before = setup.fake.requests.length;
  client.sendFrame(reqPq);
  assert.deepEqual((await client.nextFrame()).payload, reqPq);
  assert.ok(setup.fake.requests[before].flags & FLAG_NOT_ENCRYPTED);
  client.close();
});

test('quick ack requests come back as quick acks', async () => {
  const client = await setup.connect('intermediate', 2);
  const payload = encryptedPayload(7, 64);
  client.sendFrame(payload, true);
  const first = await client.nextFrame();
  const second = await client.nextFrame();
  const ack = first.quickAck ? first : second;
  const echo = first.quickAck ? second : first;
  assert.ok(ack.quickAck);
  assert.deepEqual(echo.payload, payload);
  client.close();
});

test('a client closing sends RPC_CLOSE_CONN; RPC_CLOSE_EXT closes only that client', async () => {
  const a = await setup.connect('intermediate', 2);
  const b = await setup.connect('intermediate', 2);
  a.sendFrame(encryptedPayload(1));
  await a.nextFrame();
  b.sendFrame(encryptedPayload(2));
  await b.nextFrame();
  const connB = setup.fake.requests.at(-1)!.connId;
  const closeExt = Buffer.alloc(16);
  closeExt.write('CLOSEEXT', 'latin1');
  a.sendFrame(closeExt);
  await a.closed;
  // b still works on the same link.
  const p = encryptedPayload(3);
  b.sendFrame(p);
  assert.deepEqual((await b.nextFrame()).payload, p);
  b.close();
  for (let i = 0; i < 500 && !setup.fake.closedConns.includes(connB); i++)
    await new Promise((r) => setTimeout(r, 20));
  assert.ok(setup.fake.closedConns.includes(connB));
  assert.deepEqual(setup.fake.violations, []);
});

test('a malformed client frame closes that client only', async () => {
  const bad = await setup.connect('intermediate', 2);
  const good = await setup.connect('intermediate', 2);
  bad.sendFrame(Buffer.alloc(7, 1)); // not a multiple of 4
  await bad.closed;
  const p = encryptedPayload(9);
  good.sendFrame(p);
  assert.deepEqual((await good.nextFrame()).payload, p);
  good.close();
  assert.deepEqual(setup.fake.violations, []);
});

test('Telegram pings are answered with pongs', async () => {
  const client = await setup.connect('intermediate', 2);
  client.sendFrame(encryptedPayload(1));
  await client.nextFrame();
  const ids = setup.fake.ping();
  assert.ok(ids.length > 0);
  for (let i = 0; i < 500 && !ids.every((id) => setup.fake.pongs.includes(id)); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(ids.every((id) => setup.fake.pongs.includes(id)));
  client.close();
});

test('a fake-TLS client goes through the middle proxy with the padded-intermediate flags', async () => {
  const tls = await startMiddleSetup({
    listener:
      'allowed_protocols = ["classic", "secure", "tls"]\ntls_domain = "example.com"\ntls_cert_size = 2900',
  });
  try {
    const client = await connectObfuscated({
      host: '127.0.0.1',
      port: tls.proxy.port(),
      secret: TEST_SECRET,
      transport: 'padded',
      dcId: 2,
      layer: async (socket) =>
        (await fakeTlsHandshake(socket, { secret: TEST_SECRET, domain: 'example.com' })).framing,
    });
    const p = encryptedPayload(42, 256);
    client.sendFrame(p);
    assert.deepEqual((await client.nextFrame()).payload, p);
    const req = tls.fake.requests[0];
    assert.equal(req.flags & (FLAG_ABRIDGED | FLAG_INTERMEDIATE | FLAG_PAD), FLAG_INTERMEDIATE | FLAG_PAD);
    assert.equal(req.adTag, TEST_AD_TAG);
    assert.equal(tls.stats.listener('main').sessionsTotal.tls, 1);
    client.close();
    assert.deepEqual(tls.fake.violations, []);
  } finally {
    await tls.stop();
  }
});
