import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it, mock } from 'node:test';
import { parseConfig } from '../../../src/config/load.ts';
import type { Config, UpstreamConfig } from '../../../src/config/types.ts';
import { logger } from '../../../src/log.ts';
import { Stats } from '../../../src/metrics/stats.ts';
import { DEFAULT_DC_ADDRESSES, resolveDc } from '../../../src/upstream/direct/dc-addresses.ts';
import {
  connectTcp,
  DC_KEEPALIVE_SWEEP_MS,
  type DirectLink,
  DirectUpstream,
} from '../../../src/upstream/direct/direct-upstream.ts';
import type { ClientInfo, ClientSink } from '../../../src/upstream/types.ts';
import { FakeDc } from '../../helpers/fake-dc.ts';

/** One listener, and the [upstream] table with `upstreamToml` in it followed by [upstream.dc] with `dcToml`. */
function configWith(dcToml: string, upstreamToml = ''): Config {
  return parseConfig(`
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "0123456789abcdef0123456789abcdef"
[upstream]
${upstreamToml}
[upstream.dc]
${dcToml}
`);
}

function upstreamConfig(dcToml: string, extra = ''): UpstreamConfig {
  return configWith(dcToml, `mode = "direct"\n${extra}`).upstream;
}

const silent = logger.child({}, { level: 'silent' });

describe('DC address resolution', () => {
  it('uses the built-in table for DCs 1..5 and their media ids, IPv4 first by default', () => {
    const cfg = upstreamConfig('');
    for (const id of [1, 2, 3, 4, 5]) {
      const r = resolveDc(id, cfg)!;
      assert.equal(r.dcId, id);
      assert.equal(r.fallback, false);
      assert.equal(r.addresses[0].host, DEFAULT_DC_ADDRESSES.get(id)!.ipv4[0]);
      assert.equal(r.addresses[0].port, 443);
      assert.ok(net.isIPv6(r.addresses.at(-1)!.host));
      const media = resolveDc(-id, cfg)!;
      assert.equal(media.dcId, -id, 'the media id is kept in our header');
      assert.deepEqual(media.addresses, r.addresses);
    }
    assert.equal(resolveDc(2, cfg)!.addresses[0].host, '149.154.167.51');
  });

  it('knows the CDN DC 203 from the built-in table (its public address, never contacted by tests)', () => {
    const r = resolveDc(203, upstreamConfig(''))!;
    assert.equal(r.fallback, false);
    assert.equal(r.dcId, 203);
    assert.deepEqual(r.addresses[0], { host: '91.105.192.100', port: 443 });
  });

  it('a DC id the config adds under [upstream.dc] is served from there, not from the default DC', () => {
    const cfg = upstreamConfig('250 = ["127.0.0.1:1250"]\n-250 = "127.0.0.1:2250"');
    assert.deepEqual(resolveDc(250, cfg), {
      dcId: 250,
      addresses: [{ host: '127.0.0.1', port: 1250 }],
      fallback: false,
    });
    assert.equal(resolveDc(-250, cfg)!.addresses[0].port, 2250);
    assert.equal(resolveDc(251, cfg)!.fallback, true, 'ids the config does not add still go to default_dc');
  });

  it('prefers IPv6 when asked', () => {
    const cfg = upstreamConfig('', 'prefer_ipv6 = true');
    assert.ok(net.isIPv6(resolveDc(4, cfg)!.addresses[0].host));
  });

  it('falls back to the default DC for unknown ids', () => {
    const cfg = upstreamConfig('');
    for (const id of [0, 6, 100, -203, 10002]) {
      const r = resolveDc(id, cfg)!;
      assert.equal(r.fallback, true, String(id));
      assert.equal(r.dcId, 2);
    }
    const other = upstreamConfig('', 'default_dc = 4');
    assert.equal(resolveDc(99, other)!.dcId, 4);
  });

  it('overrides win, signed: -2 has its own entry, -3 borrows 3', () => {
    const cfg = upstreamConfig(
      '2 = ["127.0.0.1:1002"]\n-2 = ["127.0.0.1:2002"]\n3 = ["127.0.0.1:1003", "[::1]:1003"]\n9 = ["127.0.0.1:1009"]',
    );
    assert.deepEqual(resolveDc(2, cfg)!.addresses, [{ host: '127.0.0.1', port: 1002 }]);
    assert.deepEqual(resolveDc(-2, cfg)!.addresses, [{ host: '127.0.0.1', port: 2002 }]);
    assert.equal(resolveDc(-3, cfg)!.addresses[0].port, 1003);
    assert.equal(resolveDc(-3, cfg)!.dcId, -3);
    assert.equal(resolveDc(9, cfg)!.dcId, 9, 'an override makes an id known');
    assert.equal(resolveDc(77, cfg)!.addresses[0].port, 1002, 'fallback uses the default DC override');
  });
});

describe('DirectUpstream', () => {
  let dc: FakeDc;
  let closedPort: number;

  before(async () => {
    dc = await FakeDc.start();
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    closedPort = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
  });
  after(() => dc.stop());

  const client = (dcId: number): ClientInfo => ({
    listener: configWith('').listeners[0],
    transport: 'intermediate',
    dcId,
    remoteAddress: '127.0.0.1',
    remotePort: 1,
    localAddress: '127.0.0.1',
    localPort: 2,
    tlsDomain: null,
  });

  const sink = (): ClientSink & { bytes: Buffer[]; closed: string[] } => {
    const s = {
      bytes: [] as Buffer[],
      closed: [] as string[],
      sendBytes: (b: Buffer) => {
        s.bytes.push(Buffer.from(b));
        return true;
      },
      sendFrame: () => true,
      sendQuickAck: () => {},
      resumeClient: () => {},
      close: (r: string) => void s.closed.push(r),
    };
    return s;
  };

  /** A DirectUpstream on `cfg` and one link to DC `dcId` opened through it, with the sink it delivers to. */
  async function openLink(cfg: Config, dcId: number, stats = new Stats()) {
    const up = new DirectUpstream(() => cfg, silent, stats);
    const s = sink();
    const h = await up.open(client(dcId), s);
    return { up, s, h };
  }

  /** An intermediate frame with `payload`. */
  const frameOf = (payload: Buffer): Buffer => {
    const frame = Buffer.alloc(4 + payload.length);
    frame.writeUInt32LE(payload.length, 0);
    payload.copy(frame, 4);
    return frame;
  };

  async function receive(s: { bytes: Buffer[] }, length: number): Promise<Buffer> {
    for (let i = 0; i < 1000 && Buffer.concat(s.bytes).length < length; i++)
      await new Promise((r) => setTimeout(r, 10));
    return Buffer.concat(s.bytes);
  }

  it('retries the next address after a refused connect and counts it', async () => {
    const stats = new Stats();
    const cfg = configWith(`3 = ["127.0.0.1:${closedPort}", "127.0.0.1:${dc.port}"]`, 'connect_retries = 1');
    const { up, s, h } = await openLink(cfg, 3, stats);
    assert.equal(h.framed, false);
    assert.equal(stats.dc(3).connectErrors, 1);
    assert.equal(stats.dc(3).connects, 1);
    // Plain intermediate transport bytes go through as they are: a 4-byte frame comes back echoed.
    h.writeBytes(Buffer.from('0400000001020304', 'hex'));
    const conn = await dc.waitForConnection((c) => c.dcId === 3);
    assert.equal(conn.transport, 'intermediate');
    while (Buffer.concat(s.bytes).length < 8) await new Promise((r) => setTimeout(r, 10));
    assert.equal(Buffer.concat(s.bytes).toString('hex'), '0400000001020304');
    h.close();
    h.close();
    await up.close();
    assert.equal(stats.dc(3).linksActive, 0);
  });

  it('rejects with MTP_ERR_UPSTREAM_CONNECT when every attempt fails', async () => {
    const cfg = configWith(`2 = ["127.0.0.1:${closedPort}"]`, 'connect_retries = 2');
    const stats = new Stats();
    const up = new DirectUpstream(() => cfg, silent, stats);
    await assert.rejects(
      up.open(client(2), sink()),
      (e: { code?: string }) => e.code === 'MTP_ERR_UPSTREAM_CONNECT',
    );
    assert.equal(stats.dc(2).connectErrors, 3);
  });

  it('turns TCP keep-alive on for a link that lives through two sweeps, not for short ones', async () => {
    const cfg = configWith(`4 = ["127.0.0.1:${dc.port}"]`);
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const up = new DirectUpstream(() => cfg, silent, new Stats());
      const long = (await up.open(client(4), sink())) as DirectLink;
      const short = (await up.open(client(4), sink())) as DirectLink;
      assert.equal(long.keepAlive, false);
      mock.timers.tick(DC_KEEPALIVE_SWEEP_MS);
      assert.equal(long.keepAlive, false);
      short.close();
      const late = (await up.open(client(4), sink())) as DirectLink;
      mock.timers.tick(DC_KEEPALIVE_SWEEP_MS);
      assert.equal(long.keepAlive, true);
      assert.equal(short.keepAlive, false);
      assert.equal(late.keepAlive, false);
      mock.timers.tick(DC_KEEPALIVE_SWEEP_MS);
      assert.equal(late.keepAlive, true);
      await up.close();
    } finally {
      mock.timers.reset();
    }
  });

  it('tells the session when the DC closes', async () => {
    const { s } = await openLink(configWith(`5 = ["127.0.0.1:${dc.port}"]`), 5);
    const conn = await dc.waitForConnection((c) => c.dcId === 5);
    conn.socket.destroy();
    while (s.closed.length === 0) await new Promise((r) => setTimeout(r, 10));
    assert.equal(s.closed.length, 1);
  });
  it('sends its header together with the first bytes for the DC', async () => {
    const stats = new Stats();
    const { h: handle } = await openLink(configWith(`1 = ["127.0.0.1:${dc.port}"]`), 1, stats);
    const payload = Buffer.from('first frame after the header');
    const frame = frameOf(payload);
    assert.equal(handle.writeBytes(frame), true);
    const conn = await dc.waitForConnection((c) => c.dcId === 1);
    while (conn.frames.length === 0) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(conn.frames[0], payload);
    assert.equal(stats.dc(1).bytesToDc, 64 + frame.length);
    handle.close();
  });

  it('links reading at once each get their own DC answers, large ones over many reads', async () => {
    const cfg = configWith(`4 = ["127.0.0.1:${dc.port}"]`);
    const up = new DirectUpstream(() => cfg, silent, new Stats());
    const sinks = [sink(), sink(), sink()];
    const handles = await Promise.all(sinks.map((s) => up.open(client(4), s)));
    // Past the size of one read, so every answer arrives in several reads interleaved with the others'.
    const frames = [0x11, 0x22, 0x33].map((fill, i) => frameOf(Buffer.alloc(200_000 + 4 * i, fill)));
    for (const [i, h] of handles.entries()) h.writeBytes(frames[i]);
    const got = await Promise.all(sinks.map((s, i) => receive(s, frames[i].length)));
    for (const [i, bytes] of got.entries())
      assert.ok(bytes.equals(frames[i]), `link ${i} got its own answer`);
    await up.close();
  });

  it('a paused link delivers nothing until resumed', async () => {
    const { up, s, h } = await openLink(configWith(`4 = ["127.0.0.1:${dc.port}"]`), 4);
    h.pause();
    const frame = frameOf(Buffer.from('held while paused'));
    h.writeBytes(frame);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(s.bytes.length, 0);
    h.resume();
    assert.ok((await receive(s, frame.length)).equals(frame));
    await up.close();
  });

  it('nothing reaches the session after the link is closed', async () => {
    const { s, h } = await openLink(configWith(`4 = ["127.0.0.1:${dc.port}"]`), 4);
    h.writeBytes(frameOf(Buffer.alloc(100_000, 1)));
    h.close();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(s.bytes.length, 0);
    assert.deepEqual(s.closed, []);
  });

  it('the DC addresses of a reloaded configuration apply to the next link', async () => {
    let cfg = configWith(`4 = ["127.0.0.1:${closedPort}"]`);
    const up = new DirectUpstream(() => cfg, silent, new Stats());
    await assert.rejects(up.open(client(4), sink()));
    await assert.rejects(up.open(client(4), sink()), 'the same settings give the same route');
    cfg = configWith(`4 = ["127.0.0.1:${dc.port}"]`);
    const h = await up.open(client(4), sink());
    h.close();
    await up.close();
  });

  it('connectTcp: refused and timed-out connects reject, and later socket events are harmless', async () => {
    await assert.rejects(connectTcp({ host: '127.0.0.1', port: closedPort }, 2000), { code: 'ECONNREFUSED' });
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      // The deadline passes before the connect (started on a later tick) can complete.
      const connecting = connectTcp({ host: '127.0.0.1', port: dc.port }, 2000);
      mock.timers.tick(2000);
      await assert.rejects(connecting, { code: 'MTP_ERR_UPSTREAM_TIMEOUT' });
    } finally {
      mock.timers.reset();
    }
    const socket = await connectTcp({ host: '127.0.0.1', port: dc.port }, 2000);
    assert.equal(socket.listenerCount('connect'), 0);
    assert.equal(socket.listenerCount('error'), 0);
    socket.destroy();
  });
});
