import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { createInitiatorHeader } from '../../src/protocol/obfuscated2.ts';
import { BAD_CLIENT_CLOSE_MIN_MS } from '../../src/runtime/timers.ts';
import type { PolicyGate } from '../../src/session/types.ts';
import type { ClientInfo, ClientSink, Upstream, UpstreamHandle } from '../../src/upstream/types.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { basicToml, startTestProxy, TEST_SECRET, TEST_SECRET_HEX, type TestProxy } from '../helpers/proxy.ts';

interface RawResult {
  received: Buffer;
  closed: Promise<void>;
  socket: net.Socket;
}

/** A plain TCP client that records every byte the proxy sends. */
async function rawConnect(port: number, send?: Buffer): Promise<RawResult> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  const chunks: Buffer[] = [];
  const result: RawResult = {
    received: Buffer.alloc(0),
    socket,
    closed: new Promise<void>((resolve) => {
      socket.on('close', () => {
        result.received = Buffer.concat(chunks);
        resolve();
      });
    }),
  };
  socket.on('data', (c) => chunks.push(c));
  socket.on('error', () => {});
  if (send) socket.write(send);
  return result;
}

interface PolicyCounts {
  admits: number;
  releases: number;
  refuse: boolean;
}

function countingPolicy(): { gate: PolicyGate; counts: PolicyCounts } {
  const counts: PolicyCounts = { admits: 0, releases: 0, refuse: false };
  const gate: PolicyGate = {
    admit: () => {
      counts.admits++;
      if (counts.refuse) return { ok: false, rule: 'test-rule' };
      // Deliberately not idempotent: the session itself must release exactly once.
      return { ok: true, ticket: { release: () => void counts.releases++ } };
    },
    allowFronting: () => true,
  };
  return { gate, counts };
}

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const noTls = {
  listener: 'allowed_protocols = ["classic", "secure"]',
  top: '[timeouts]\nhandshake = "1s"\nidle = "1s"\n',
};

describe('client session: handshake failures', () => {
  let dc: FakeDc;
  let proxy: TestProxy;
  let policy: ReturnType<typeof countingPolicy>;
  const stats = new Stats();

  before(async () => {
    dc = await FakeDc.start();
    policy = countingPolicy();
    proxy = await startTestProxy(basicToml(dc.port, noTls), { policy: policy.gate, stats });
  });
  after(async () => {
    await proxy.stop();
    await dc.stop();
  });

  it('wrong secret, garbage and an HTTP request get zero bytes and a close', async () => {
    const wrong = createInitiatorHeader('intermediate', 2, randomBytes(16)).header;
    const probes = [
      Buffer.concat([wrong, Buffer.from('0800000001020304', 'hex')]),
      randomBytes(200),
      Buffer.from('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n'.padEnd(80, ' ')),
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
    ];
    const results = await Promise.all(probes.map((p) => rawConnect(proxy.port(), p)));
    await Promise.all(results.map((r) => r.closed));
    for (const r of results) assert.equal(r.received.length, 0);
    assert.equal(policy.counts.admits, 0, 'no admission for unidentified clients');
    assert.equal(dc.connections.length, 0);
    const ls = stats.listener('main');
    assert.ok((ls.handshakeFailures.get('MTP_ERR_UNKNOWN_TRANSPORT') ?? 0) >= 2);
    // By stage: the two HTTP requests failed at their first bytes, the other two at the obfuscated2 header.
    assert.equal(ls.handshakeStages.get('first_bytes'), 2);
    assert.equal(ls.handshakeStages.get('obfuscated2'), 2);
  });

  it('failure stages of the silent kind: half a header until the deadline, a connection with no byte', async () => {
    const ls = stats.listener('main');
    const before = {
      obfuscated2: ls.handshakeStages.get('obfuscated2') ?? 0,
      tcp: ls.handshakeStages.get('tcp') ?? 0,
    };
    const half = await rawConnect(proxy.port(), randomBytes(30));
    await half.closed;
    assert.equal(ls.handshakeFailures.get('MTP_ERR_HANDSHAKE_TIMEOUT') !== undefined, true);
    assert.equal(ls.handshakeStages.get('obfuscated2'), before.obfuscated2 + 1);
    const empty = await rawConnect(proxy.port());
    empty.socket.destroy();
    await until(() => (ls.handshakeStages.get('tcp') ?? 0) === before.tcp + 1);
  });

  it('on a fake-TLS listener with nowhere to front to, garbage gets the same delayed silent close', async () => {
    // All protocols allowed (tls too), no cover domain, fronting "sni": a non-TLS probe carries no SNI.
    const p2 = await startTestProxy(basicToml(dc.port, { top: noTls.top }));
    try {
      const sentAt = performance.now();
      const probe = await rawConnect(p2.port(), randomBytes(200));
      await probe.closed;
      assert.equal(probe.received.length, 0);
      assert.equal(p2.stats.listener('main').fronted, 0);
      assert.equal(p2.stats.listener('main').handshakeFailures.get('MTP_ERR_UNKNOWN_TRANSPORT'), 1);
      // A lower bound only (load can make it later, never earlier): not an immediate hang-up.
      assert.ok(performance.now() - sentAt >= BAD_CLIENT_CLOSE_MIN_MS - 20, 'closed after the random pause');
    } finally {
      await p2.stop();
    }
  });

  it('a short HTTP request is refused at once: fronted on a fake-TLS listener, closed on the others', async () => {
    const request = Buffer.from('GET / HTTP/1.0\r\n\r\n');
    let gotRequest: (data: Buffer) => void = () => {};
    const received = new Promise<Buffer>((resolve) => (gotRequest = resolve));
    const site = net.createServer((s) => {
      const chunks: Buffer[] = [];
      s.on('error', () => {});
      s.on('data', (c) => {
        chunks.push(c);
        if (Buffer.concat(chunks).length >= request.length) gotRequest(Buffer.concat(chunks));
      });
    });
    await new Promise<void>((r) => site.listen(0, '127.0.0.1', () => r()));
    const sitePort = (site.address() as net.AddressInfo).port;
    // A handshake deadline far beyond the test: neither answer may wait for it.
    const top = '[timeouts]\nhandshake = "10m"\n';
    const withTls = await startTestProxy(
      basicToml(dc.port, { listener: `tls_domain = "example.com"\nfronting = "127.0.0.1:${sitePort}"`, top }),
    );
    const classic = await startTestProxy(basicToml(dc.port, { listener: noTls.listener, top }));
    try {
      const fronted = await rawConnect(withTls.port(), request);
      assert.deepEqual(await received, request);
      assert.equal(withTls.stats.listener('main').fronted, 1);
      fronted.socket.destroy();

      const refused = await rawConnect(classic.port(), request);
      await refused.closed;
      assert.equal(refused.received.length, 0);
      const failures = classic.stats.listener('main').handshakeFailures;
      assert.equal(failures.get('MTP_ERR_UNKNOWN_TRANSPORT'), 1);
      assert.equal(failures.get('MTP_ERR_HANDSHAKE_TIMEOUT'), undefined);
    } finally {
      await withTls.stop();
      await classic.stop();
      site.close();
    }
  });

  it('a replayed header is refused after the first use', async () => {
    const random = randomBytes(64);
    const hs = createInitiatorHeader('padded', 2, TEST_SECRET, random);
    const first = await connectObfuscated({
      host: '127.0.0.1',
      port: proxy.port(),
      secret: TEST_SECRET,
      transport: 'padded',
      headerRandom: random,
    });
    first.sendFrame(Buffer.alloc(8, 1));
    assert.deepEqual((await first.nextFrame()).payload, Buffer.alloc(8, 1));
    first.close();
    const dcBefore = dc.connections.length;
    const replay = await rawConnect(proxy.port(), hs.header);
    await replay.closed;
    assert.equal(replay.received.length, 0);
    assert.equal(dc.connections.length, dcBefore);
    assert.ok(stats.listener('main').replays >= 1);
  });

  it('a disallowed protocol is refused silently', async () => {
    const p2 = await startTestProxy(
      basicToml(dc.port, { listener: 'allowed_protocols = ["secure"]', top: noTls.top }),
    );
    try {
      const bad = await rawConnect(p2.port(), createInitiatorHeader('abridged', 2, TEST_SECRET).header);
      await bad.closed;
      assert.equal(bad.received.length, 0);
      assert.equal(p2.stats.listener('main').handshakeFailures.get('MTP_ERR_DISABLED_TRANSPORT'), 1);
      const good = await connectObfuscated({
        host: '127.0.0.1',
        port: p2.port(),
        secret: `dd${TEST_SECRET_HEX}`,
      });
      good.sendFrame(Buffer.alloc(12, 2));
      assert.deepEqual((await good.nextFrame()).payload, Buffer.alloc(12, 2));
      good.close();
    } finally {
      await p2.stop();
    }
  });

  it('a TLS-only listener refuses obfuscated2 clients', async () => {
    const p2 = await startTestProxy(
      basicToml(dc.port, { listener: 'allowed_protocols = ["tls"]\nfronting = "off"', top: noTls.top }),
    );
    try {
      const r = await rawConnect(p2.port(), createInitiatorHeader('padded', 2, TEST_SECRET).header);
      await r.closed;
      assert.equal(r.received.length, 0);
      assert.equal(p2.stats.listener('main').handshakeFailures.get('MTP_ERR_TLS_EXPECTED'), 1);
    } finally {
      await p2.stop();
    }
  });

  it('a client that stalls mid-header is closed at the handshake timeout', async () => {
    const r = await rawConnect(proxy.port(), randomBytes(20));
    await r.closed;
    assert.equal(r.received.length, 0);
    assert.ok((stats.listener('main').handshakeFailures.get('MTP_ERR_HANDSHAKE_TIMEOUT') ?? 0) >= 1);
  });

  it('a header and frames in one write, or dribbled byte by byte, are handled the same', async () => {
    for (const mode of ['one-write', 'byte-by-byte'] as const) {
      const hs = createInitiatorHeader('intermediate', 3, TEST_SECRET);
      const frame = Buffer.concat([Buffer.from('0c000000', 'hex'), Buffer.alloc(12, 0x42)]);
      const wire = Buffer.concat([hs.header, hs.encrypt.update(frame)]);
      const socket = net.connect({ host: '127.0.0.1', port: proxy.port() });
      await new Promise((r) => socket.once('connect', r));
      socket.setNoDelay(true);
      const got: Buffer[] = [];
      socket.on('data', (c) => got.push(hs.decrypt.update(c)));
      if (mode === 'one-write') socket.write(wire);
      else
        for (const b of wire) {
          socket.write(Buffer.from([b]));
          await new Promise((r) => setImmediate(r));
        }
      await until(() => Buffer.concat(got).length >= frame.length);
      assert.deepEqual(Buffer.concat(got), frame, mode);
      socket.destroy();
    }
  });

  it('extra secrets are accepted', async () => {
    const extra = 'fedcba9876543210fedcba9876543210';
    const p2 = await startTestProxy(
      basicToml(dc.port, { listener: `secrets = ["${extra}"]`, top: noTls.top }),
    );
    try {
      const c = await connectObfuscated({ host: '127.0.0.1', port: p2.port(), secret: extra });
      c.sendFrame(Buffer.alloc(8, 9));
      assert.deepEqual((await c.nextFrame()).payload, Buffer.alloc(8, 9));
      c.close();
    } finally {
      await p2.stop();
    }
  });

  it('policy refusal closes silently and takes no ticket', async () => {
    policy.counts.refuse = true;
    try {
      const r = await rawConnect(proxy.port(), createInitiatorHeader('padded', 2, TEST_SECRET).header);
      await r.closed;
      assert.equal(r.received.length, 0);
      assert.equal(stats.listener('main').policyRejections.get('test-rule'), 1);
    } finally {
      policy.counts.refuse = false;
    }
  });

  it('idle sessions are closed, and the counters return to zero', async () => {
    const c = await connectObfuscated({ host: '127.0.0.1', port: proxy.port(), secret: TEST_SECRET_HEX });
    c.sendFrame(Buffer.alloc(8, 3));
    await c.nextFrame();
    await c.closed;
    await until(() => stats.listener('main').connectionsActive === 0);
    const ls = stats.listener('main');
    assert.deepEqual(ls.sessionsActive, { abridged: 0, intermediate: 0, padded: 0, tls: 0 });
    assert.equal(policy.counts.releases, policy.counts.admits - 1, 'every admitted session released once');
  });
});

/** An upstream whose behaviour each test scripts. */
class ScriptedUpstream implements Upstream {
  readonly kind = 'middle' as const;
  mode: 'hang' | 'fail' | 'framed' = 'framed';
  sinks: ClientSink[] = [];
  infos: ClientInfo[] = [];
  frames: { payload: Buffer; quickAck: boolean }[] = [];
  closes = 0;
  private resolvers: ((h: UpstreamHandle) => void)[] = [];

  open(client: ClientInfo, sink: ClientSink): Promise<UpstreamHandle> {
    this.infos.push(client);
    this.sinks.push(sink);
    if (this.mode === 'fail')
      return Promise.reject(Object.assign(new Error('no'), { code: 'MTP_ERR_NO_DC' }));
    return new Promise((resolve) => {
      this.resolvers.push(resolve);
      if (this.mode === 'framed') this.release();
    });
  }

  release(): void {
    for (const resolve of this.resolvers.splice(0)) resolve(this.handle());
  }

  handle(): UpstreamHandle {
    return {
      framed: true,
      writeBytes: () => true,
      writeFrame: (payload, quickAck) => {
        this.frames.push({ payload: Buffer.from(payload), quickAck });
        return true;
      },
      pause: () => {},
      resume: () => {},
      close: () => void this.closes++,
    };
  }

  async close(): Promise<void> {}
}

describe('client session: upstream interplay and ticket accounting', () => {
  let proxy: TestProxy;
  let policy: ReturnType<typeof countingPolicy>;
  const upstream = new ScriptedUpstream();

  before(async () => {
    policy = countingPolicy();
    proxy = await startTestProxy(basicToml(1, noTls), { policy: policy.gate, upstream });
  });
  after(async () => {
    await proxy.stop();
  });

  it('framed upstream: client frames decoded (with quick-ack), frames and quick-acks sent back', async () => {
    upstream.mode = 'framed';
    for (const transport of ['abridged', 'intermediate', 'padded'] as const) {
      upstream.frames = [];
      const c = await connectObfuscated({
        host: '127.0.0.1',
        port: proxy.port(),
        secret: transport === 'padded' ? `dd${TEST_SECRET_HEX}` : TEST_SECRET_HEX,
        transport,
        dcId: -3,
      });
      c.sendFrame(Buffer.alloc(16, 1), true);
      c.sendFrame(Buffer.alloc(40, 2));
      await until(() => upstream.frames.length === 2);
      assert.deepEqual(upstream.frames, [
        { payload: Buffer.alloc(16, 1), quickAck: true },
        { payload: Buffer.alloc(40, 2), quickAck: false },
      ]);
      const info = upstream.infos.at(-1)!;
      assert.equal(info.transport, transport);
      assert.equal(info.dcId, -3);
      const sink = upstream.sinks.at(-1)!;
      sink.sendQuickAck(0x123456);
      sink.sendFrame(Buffer.alloc(24, 7));
      const ack = await c.nextFrame();
      assert.equal(ack.quickAck, true);
      assert.equal(ack.payload.readUInt32LE(0), 0x123456);
      assert.deepEqual((await c.nextFrame()).payload, Buffer.alloc(24, 7));
      sink.close('test');
      await c.closed;
    }
  });

  it('an unaligned intermediate frame ends a framed session', async () => {
    upstream.mode = 'framed';
    const c = await connectObfuscated({ host: '127.0.0.1', port: proxy.port(), secret: TEST_SECRET_HEX });
    c.sendPlain(Buffer.from('0500000001020304ff', 'hex'));
    await c.closed;
  });

  it('releases the ticket once when the upstream fails to open', async () => {
    upstream.mode = 'fail';
    const before = { ...policy.counts };
    const r = await rawConnect(proxy.port(), createInitiatorHeader('padded', 2, TEST_SECRET).header);
    await r.closed;
    assert.equal(r.received.length, 0);
    await until(() => policy.counts.releases === before.releases + 1);
    assert.equal(policy.counts.admits, before.admits + 1);
  });

  it('releases the ticket once and closes the late handle when the client leaves during connect', async () => {
    upstream.mode = 'hang';
    const before = { ...policy.counts };
    const closesBefore = upstream.closes;
    const r = await rawConnect(proxy.port(), createInitiatorHeader('padded', 2, TEST_SECRET).header);
    await until(() => policy.counts.admits === before.admits + 1);
    r.socket.destroy();
    await until(() => policy.counts.releases === before.releases + 1);
    upstream.release();
    await until(() => upstream.closes === closesBefore + 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(policy.counts.releases, before.releases + 1);
  });

  it('releases the ticket once when the upstream closes, and once when the client closes', async () => {
    upstream.mode = 'framed';
    const before = { ...policy.counts };
    const a = await connectObfuscated({ host: '127.0.0.1', port: proxy.port(), secret: TEST_SECRET_HEX });
    await until(() => upstream.sinks.length > 0 && policy.counts.admits === before.admits + 1);
    upstream.sinks.at(-1)!.close('gone');
    upstream.sinks.at(-1)!.close('again');
    await a.closed;
    const b = await connectObfuscated({ host: '127.0.0.1', port: proxy.port(), secret: TEST_SECRET_HEX });
    await until(() => policy.counts.admits === before.admits + 2);
    b.sendFrame(Buffer.alloc(8));
    b.close();
    await until(() => policy.counts.releases === before.releases + 2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(policy.counts.releases, before.releases + 2);
  });

  it('releases the ticket once on a bad frame after admission', async () => {
    upstream.mode = 'framed';
    const before = { ...policy.counts };
    const c = await connectObfuscated({
      host: '127.0.0.1',
      port: proxy.port(),
      secret: TEST_SECRET_HEX,
      transport: 'intermediate',
    });
    c.sendPlain(Buffer.from('ffffff7f', 'hex')); // a 2 GiB frame
    await c.closed;
    await until(() => policy.counts.releases === before.releases + 1);
  });
});
