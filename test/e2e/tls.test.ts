/**
 * ee (fake-TLS) clients through the proxy to a fake DC, and every way a connection can fail the fake-TLS
 * handshake ending at a real HTTPS site on loopback (or the configured unknown-SNI action).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { FakeTlsFraming, FakeTlsHandshakeError, fakeTlsHandshake } from '../../src/client/fake-tls-client.ts';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import {
  buildClientHello,
  helloRandom,
  readServerFlight,
  splitHelloRecords,
} from '../../src/client/tls-hello.ts';
import { createFrameCodec } from '../../src/protocol/framing/codec.ts';
import { createInitiatorHeader } from '../../src/protocol/obfuscated2.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { fixtureRoundTrip } from '../helpers/fake-tls-session.ts';
import { HELLO_SHAPES, helloFixture } from '../helpers/hello-shapes.ts';
import { APP_ORACLES, checkTls13Answer } from '../protocol/faketls/oracles/index.ts';
import { randomSegments } from '../helpers/tls-hello.ts';
import { type HttpsSite, SITE_DOMAIN, startHttpsSite } from '../helpers/https-site.ts';
import { basicToml, startTestProxy, TEST_SECRET, type TestProxy } from '../helpers/proxy.ts';

let dc: FakeDc;
let site: HttpsSite;
let proxy: TestProxy;

function listenerToml(name: string, extra: string): string {
  return `
[[listeners]]
name = "${name}"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET.toString('hex')}"
allowed_protocols = ["tls"]
tls_domain = "${SITE_DOMAIN}"
tls_cert_size = 2900
${extra}
`;
}

before(async () => {
  dc = await FakeDc.start();
  site = await startHttpsSite();
  const toml = basicToml(dc.port, {
    listener: `allowed_protocols = ["tls"]\ntls_domain = "${SITE_DOMAIN}"\ntls_cert_size = 2900\nfronting = "127.0.0.1:${site.port}"`,
  });
  // Extra listeners for the unknown-SNI actions, appended after the [upstream.dc] table.
  const [head, upstream] = toml.split('[upstream]');
  proxy = await startTestProxy(
    `${head}${listenerToml('reject', `unknown_sni = "reject"\nfronting = "127.0.0.1:${site.port}"`)}${listenerToml(
      'drop',
      `unknown_sni = "drop"\nfronting = "127.0.0.1:${site.port}"`,
    )}[upstream]${upstream}`,
  );
});

after(async () => {
  await proxy?.stop();
  await site?.stop();
  await dc?.stop();
});

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** A full ee session: handshake, obfuscated2 header with padded framing inside TLS, one frame echoed. */
async function eeRoundTrip(
  opts: { shape?: 'modern' | 'legacy'; domain?: string; size?: number } = {},
): Promise<void> {
  const socket = await connect(proxy.port());
  try {
    const { framing, leftover } = await fakeTlsHandshake(socket, {
      secret: TEST_SECRET,
      domain: opts.domain ?? SITE_DOMAIN,
      shape: opts.shape,
    });
    assert.equal(leftover.length, 0);
    const init = createInitiatorHeader('padded', 2, TEST_SECRET);
    const codec = createFrameCodec('padded', { fromServer: true });
    const payload = randomBytes(opts.size ?? 64);
    const echoed = new Promise<Buffer>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        framing.unwrap(chunk, (bytes) => codec.decode(init.decrypt.update(bytes), (frame) => resolve(frame)));
      });
      socket.once('close', () => reject(new Error('closed before the echo')));
    });
    socket.write(framing.wrap(Buffer.concat([init.header, init.encrypt.update(codec.encode(payload))])));
    assert.deepEqual(await echoed, payload);
  } finally {
    socket.destroy();
  }
}

/** Send raw bytes, collect everything until the server closes (or `ms` passes). */
async function exchange(port: number, bytes: Buffer, ms = 3000): Promise<{ data: Buffer; closed: boolean }> {
  const socket = await connect(port);
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => done(false), ms);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.once('close', () => done(true));
    socket.write(bytes);
  });
}

async function expectFronted(hello: Buffer, secret = TEST_SECRET): Promise<void> {
  const before = proxy.stats.listener('main').fronted;
  const { data } = await exchange(proxy.port(), hello, 800);
  const flight = readServerFlight(data, helloRandom(hello), secret);
  assert.equal(flight.kind, 'fronted', `expected the real site's answer, got ${flight.kind}`);
  assert.equal(proxy.stats.listener('main').fronted, before + 1);
}

test('ee client (modern ~1.7 KB hello) through the proxy to the fake DC', async () => {
  await eeRoundTrip();
  assert.ok(proxy.stats.listener('main').sessionsTotal.tls >= 1);
});

test('ee client with the legacy 517-byte hello, and a payload spanning several records', async () => {
  await eeRoundTrip({ shape: 'legacy', size: 40_000 });
});

test('the shared client with an ee link secret (every hello shape)', async () => {
  const link = `ee${TEST_SECRET.toString('hex')}${Buffer.from(SITE_DOMAIN).toString('hex')}`;
  for (const tlsShape of ['modern', 'darwin', 'legacy'] as const) {
    const conn = await connectObfuscated({ host: '127.0.0.1', port: proxy.port(), secret: link, tlsShape });
    try {
      const payload = randomBytes(128);
      conn.sendFrame(payload);
      assert.deepEqual((await conn.nextFrame()).payload, payload);
    } finally {
      conn.close();
    }
  }
});

test('a hello split over several TLS records and many TCP segments, then a full session', async () => {
  const socket = await connect(proxy.port());
  socket.setNoDelay(true);
  try {
    const hello = buildClientHello({
      shape: 'modern',
      secret: TEST_SECRET,
      domain: SITE_DOMAIN,
      unixTime: Math.floor(Date.now() / 1000),
    });
    const wire = splitHelloRecords(hello, [90, 400, 700]);
    let answer = Buffer.alloc(0);
    socket.on('data', (c: Buffer) => {
      answer = Buffer.concat([answer, c]);
    });
    for (const segment of randomSegments(wire, 200)) {
      socket.write(segment);
      await new Promise((r) => setTimeout(r, 1));
    }
    for (
      let i = 0;
      i < 200 && readServerFlight(answer, helloRandom(hello), TEST_SECRET).kind === 'need-more';
      i++
    ) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(readServerFlight(answer, helloRandom(hello), TEST_SECRET).kind, 'proxy');
    socket.removeAllListeners('data');
    const framing = new FakeTlsFraming();
    const init = createInitiatorHeader('padded', 2, TEST_SECRET);
    const codec = createFrameCodec('padded', { fromServer: true });
    const payload = randomBytes(256);
    const echoed = new Promise<Buffer>((resolve) => {
      socket.on('data', (chunk: Buffer) =>
        framing.unwrap(chunk, (bytes) => codec.decode(init.decrypt.update(bytes), (frame) => resolve(frame))),
      );
    });
    socket.write(framing.wrap(Buffer.concat([init.header, init.encrypt.update(codec.encode(payload))])));
    assert.deepEqual(await echoed, payload);
  } finally {
    socket.destroy();
  }
});

test('wrong digest is fronted to the real site', async () => {
  await expectFronted(
    buildClientHello({
      shape: 'modern',
      secret: randomBytes(16),
      domain: SITE_DOMAIN,
      unixTime: Date.now() / 1000,
    }),
  );
});

test('stale timestamp is fronted', async () => {
  await expectFronted(
    buildClientHello({
      shape: 'modern',
      secret: TEST_SECRET,
      domain: SITE_DOMAIN,
      unixTime: Date.now() / 1000 - 3600,
    }),
  );
});

test('a replayed hello is fronted', async () => {
  const hello = buildClientHello({
    shape: 'modern',
    secret: TEST_SECRET,
    domain: SITE_DOMAIN,
    unixTime: Date.now() / 1000,
  });
  const first = await exchange(proxy.port(), hello, 500);
  assert.equal(readServerFlight(first.data, helloRandom(hello), TEST_SECRET).kind, 'proxy');
  await expectFronted(hello);
});

test('unknown SNI: front (default), reject with unrecognized_name, drop', async () => {
  const unknown = (): Buffer =>
    buildClientHello({
      shape: 'modern',
      secret: TEST_SECRET,
      domain: 'not-served.example',
      unixTime: Date.now() / 1000,
    });
  await expectFronted(unknown());
  const rejected = await exchange(proxy.port('reject'), unknown());
  assert.equal(rejected.data.toString('hex'), '15030300020270');
  assert.ok(rejected.closed);
  const dropped = await exchange(proxy.port('drop'), unknown());
  assert.equal(dropped.data.length, 0);
  assert.ok(dropped.closed);
});

test('the client helper reports fronting and alerts', async () => {
  const socket = await connect(proxy.port());
  await assert.rejects(
    fakeTlsHandshake(socket, { secret: randomBytes(16), domain: SITE_DOMAIN }),
    (e: unknown) => e instanceof FakeTlsHandshakeError && e.reason === 'fronted',
  );
  socket.destroy();
  const s2 = await connect(proxy.port('reject'));
  await assert.rejects(
    fakeTlsHandshake(s2, { secret: TEST_SECRET, domain: 'nope.example' }),
    (e: unknown) => e instanceof FakeTlsHandshakeError && e.reason === 'alert' && e.alert === 112,
  );
  s2.destroy();
});

test('not TLS at all is fronted too', async () => {
  const before = proxy.stats.listener('main').fronted;
  const { closed } = await exchange(
    proxy.port(),
    Buffer.from('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n'),
    1500,
  );
  // Node's TLS server drops a plain-HTTP client without a word; what matters is that it got the bytes.
  assert.ok(closed);
  assert.equal(proxy.stats.listener('main').fronted, before + 1);
});

test('every app and browser hello shape round-trips through the proxy (iOS without SNI, Android in two segments)', async () => {
  const before = proxy.stats.listener('main').sessionsTotal.tls;
  for (const shape of HELLO_SHAPES) {
    const f = helloFixture(shape, {
      secret: TEST_SECRET,
      domain: SITE_DOMAIN,
      unixTime: Math.floor(Date.now() / 1000),
    });
    if (shape === 'android') assert.equal(f.segments.length, 2);
    if (shape === 'ios') assert.equal(f.sni, null);
    const flight = await fixtureRoundTrip(proxy.port(), f, TEST_SECRET);
    // The real proxy's answer, judged as each app judges it.
    for (const oracle of APP_ORACLES) {
      const v = oracle.judge([flight], f.random, TEST_SECRET);
      assert.ok(v.ok, `${oracle.app} refused the answer to ${shape}: ${v.ok ? '' : v.reason}`);
    }
    checkTls13Answer(flight, f.record);
  }
  assert.equal(proxy.stats.listener('main').sessionsTotal.tls, before + HELLO_SHAPES.length);
  // Their fingerprints were counted.
  assert.ok(
    (proxy.stats.listener('main').helloFingerprints.get('t13d1516h2_8daaf6152771_d8a2da3f94cd') ?? 0) >= 1,
  );
});

test('handshake failures are counted by stage (tcp, first bytes, digest, timestamp, replay, sni)', async () => {
  const stages = (): Map<string, number> => new Map(proxy.stats.listener('main').handshakeStages);
  const before = stages();
  const grew = (stage: string): number => (stages().get(stage) ?? 0) - (before.get(stage) ?? 0);
  const now = Date.now() / 1000;
  const hello = (o: { secret?: Buffer; domain?: string; time?: number } = {}): Buffer =>
    buildClientHello({
      shape: 'modern',
      secret: o.secret ?? TEST_SECRET,
      domain: o.domain ?? SITE_DOMAIN,
      unixTime: o.time ?? now,
    });
  await exchange(proxy.port(), hello({ secret: randomBytes(16) }), 500);
  await exchange(proxy.port(), hello({ time: now - 3600 }), 500);
  await exchange(proxy.port(), hello({ domain: 'not-served.example' }), 500);
  await exchange(proxy.port(), Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 500);
  const replayed = hello();
  await exchange(proxy.port(), replayed, 300);
  await exchange(proxy.port(), replayed, 500);
  // Connected and gone without a byte.
  const bare = await connect(proxy.port());
  bare.destroy();
  for (let i = 0; i < 100 && grew('tcp') < 1; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(grew('digest'), 1);
  assert.equal(grew('timestamp'), 1);
  assert.equal(grew('sni'), 1);
  assert.equal(grew('first_bytes'), 1);
  assert.equal(grew('replay'), 1);
  assert.ok(grew('tcp') >= 1);
});
