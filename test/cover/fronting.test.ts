import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import type { Config, ListenerConfig } from '../../src/config/types.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { frontConnection, frontingDestination, loopsBack } from '../../src/cover/fronting.ts';
import type { PolicyGate, SessionEnv } from '../../src/session/types.ts';
import { type RecordingSite, startRecordingSite } from '../helpers/https-site.ts';

const SECRET = 'd0d6e111bada5511fcce9584deadbeef';

function config(listener: Record<string, unknown>, top: Record<string, unknown> = {}): Config {
  return parseConfig({ ...top, listeners: [{ name: 'main', port: 8443, secret: SECRET, ...listener }] });
}

test('frontingDestination: off, fixed, served SNI, unknown SNI, no domain list', () => {
  const l = (o: Record<string, unknown>): ListenerConfig => config(o).listeners[0];
  assert.equal(frontingDestination(l({ fronting: 'off', tls_domain: 'a.example' }), 'a.example'), null);
  assert.deepEqual(
    frontingDestination(l({ fronting: '10.0.0.1:8443', tls_domain: 'a.example' }), 'x.example'),
    {
      host: '10.0.0.1',
      port: 8443,
      untrusted: false,
    },
  );
  const sni = l({ fronting: 'sni', tls_domains: ['a.example', 'b.example'] });
  assert.deepEqual(frontingDestination(sni, 'B.Example.'), {
    host: 'b.example',
    port: 443,
    untrusted: false,
  });
  // A prober's SNI does not choose where we connect.
  assert.deepEqual(frontingDestination(sni, 'internal.corp'), {
    host: 'a.example',
    port: 443,
    untrusted: false,
  });
  assert.deepEqual(frontingDestination(sni, null), { host: 'a.example', port: 443, untrusted: false });
  const open = l({ fronting: 'sni' });
  assert.deepEqual(frontingDestination(open, 'x.example'), { host: 'x.example', port: 443, untrusted: true });
  assert.equal(frontingDestination(open, null), null);
});

test('loopsBack: own listeners (wildcard and exact, mapped IPv4) and the accepting socket', () => {
  const wildcard = config({ host: '0.0.0.0' });
  assert.ok(loopsBack('127.0.0.1', 8443, wildcard, {}));
  assert.ok(loopsBack('::1', 8443, wildcard, {}));
  assert.ok(!loopsBack('127.0.0.1', 443, wildcard, {}));
  assert.ok(!loopsBack('192.0.2.10', 8443, wildcard, {}));
  const exact = config({ host: '127.0.0.1' });
  assert.ok(loopsBack('::ffff:127.0.0.1', 8443, exact, {}));
  assert.ok(!loopsBack('127.0.0.2', 8443, exact, {}));
  assert.ok(loopsBack('0.0.0.0', 8443, exact, {}));
  assert.ok(loopsBack('127.0.0.1', 5555, exact, { address: '127.0.0.1', port: 5555 }));
});

let site: RecordingSite;
before(async () => {
  site = await startRecordingSite();
});
after(async () => {
  await site?.stop();
});

function env(c: Config, policy?: Partial<PolicyGate>): SessionEnv {
  const log = logger.child({});
  log.level = 'silent';
  return {
    config: () => c,
    listener: () => c.listeners[0],
    upstream: () => {
      throw new Error('no upstream in fronting tests');
    },
    replay: { seen: () => false },
    policy: {
      admit: () => ({ ok: true, ticket: { release() {} } }),
      allowFronting: () => true,
      ...policy,
    },
    stats: new Stats(),
    log,
  };
}

/** A server whose accepted sockets go straight to frontConnection; returns what the client saw. */
async function throughFronting(
  e: SessionEnv,
  alreadyRead: Buffer,
  thenSend: Buffer,
  waitMs = 1500,
): Promise<{ closed: boolean; data: Buffer }> {
  const server = net.createServer((socket) => {
    socket.pause();
    frontConnection(socket, alreadyRead, e.listener(), null, e);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  try {
    return await new Promise((resolve) => {
      const chunks: Buffer[] = [];
      const s = net.connect({ host: '127.0.0.1', port }, () => s.write(thenSend));
      s.on('error', () => {});
      s.on('data', (c: Buffer) => chunks.push(c));
      const timer = setTimeout(() => {
        s.destroy();
        resolve({ closed: false, data: Buffer.concat(chunks) });
      }, waitMs);
      s.once('close', () => {
        clearTimeout(timer);
        resolve({ closed: true, data: Buffer.concat(chunks) });
      });
    });
  } finally {
    server.close();
  }
}

test('policy may refuse fronting: closed, not counted', async () => {
  const c = config({ fronting: `127.0.0.1:${site.port}` });
  const e = env(c, { allowFronting: () => false });
  // A refused connection is hung up after the failed-client pause (at most 2.5 s).
  const r = await throughFronting(e, Buffer.from('hello'), Buffer.alloc(0), 4000);
  assert.ok(r.closed);
  assert.equal(r.data.length, 0);
  assert.equal(e.stats.listener('main').fronted, 0);
});

test('an unreachable target: no byte of reply, closed after the failed-client pause', async () => {
  const closedPort = await new Promise<number>((r) => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => r(port));
    });
  });
  const e = env(config({ fronting: `127.0.0.1:${closedPort}` }));
  const r = await throughFronting(e, Buffer.from('hello'), Buffer.from('more'), 4000);
  assert.ok(r.closed);
  assert.equal(r.data.length, 0);
});

test('splices both ways and counts; closes once the byte cap is passed', async () => {
  const c = config({ fronting: `127.0.0.1:${site.port}` }, { buffers: { fronting_max_bytes: 4096 } });
  const e = env(c);
  const index = site.received.length;
  const small = await throughFronting(e, Buffer.from('already read '), Buffer.from('and more'));
  assert.match(small.data.toString(), /^HTTP\/1\.1 400/);
  assert.equal((await site.waitForBytes(index, 21)).toString(), 'already read and more');
  assert.equal(e.stats.listener('main').fronted, 1);
  assert.equal(e.stats.listener('main').frontedBytesFromClient, 21);
  assert.equal(e.stats.listener('main').frontedBytesToClient, small.data.length);
  assert.equal(e.stats.listener('main').frontingCutOff, 0);
  const big = await throughFronting(e, Buffer.alloc(100), Buffer.alloc(64 * 1024));
  assert.ok(big.closed, 'an over-cap fronted connection stays open');
  assert.equal(e.stats.listener('main').frontingCutOff, 1);
});

test('a fronted connection is closed at timeouts.fronting and counted as cut off', async () => {
  const silent = net.createServer((s) => s.on('error', () => {}));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  const target = (silent.address() as net.AddressInfo).port;
  const c = config({ fronting: `127.0.0.1:${target}` }, { timeouts: { fronting: '200ms' } });
  const e = env(c);
  const server = net.createServer((socket) => {
    socket.pause();
    frontConnection(socket, Buffer.from('hello'), e.listener(), null, e);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const client = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
    client.on('error', () => {});
    await once(client, 'close');
    const s = e.stats.listener('main');
    assert.equal(s.fronted, 1);
    assert.equal(s.frontingCutOff, 1);
    assert.equal(s.frontedBytesFromClient, 5);
  } finally {
    server.close();
    silent.close();
  }
});
