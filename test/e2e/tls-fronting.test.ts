/**
 * Domain fronting seen from outside: curl and openssl s_client through the proxy port get the cover site's
 * certificate and page; the fronting target receives the client's bytes unchanged (after an optional PROXY
 * header); `sni` mode goes to the SNI's host; the proxy never fronts to itself. Also the certificate-size
 * probe against the loopback site.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { buildClientHello } from '../../src/client/tls-hello.ts';
import type { ListenerConfig } from '../../src/config/types.ts';
import { probeCoverDomain } from '../../src/cover/cert-probe.ts';
import { startCertProbes } from '../../src/cover/probe-schedule.ts';
import { coverProfile, forgetCoverProfiles, rememberCoverProfile } from '../../src/cover/profiles.ts';
import { logger } from '../../src/log.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import {
  hasCommand,
  type HttpsSite,
  type RecordingSite,
  SITE_DOMAIN,
  SITE_PAGE,
  startHttpsSite,
  startRecordingSite,
} from '../helpers/https-site.ts';
import { basicToml, startTestProxy, TEST_SECRET, type TestProxy } from '../helpers/proxy.ts';

const run = promisify(execFile);

let dc: FakeDc;
let site: HttpsSite;
let recorder: RecordingSite;
let proxy: TestProxy;
let main: ListenerConfig;

before(async () => {
  dc = await FakeDc.start();
  site = await startHttpsSite();
  recorder = await startRecordingSite();
  proxy = await startTestProxy(
    basicToml(dc.port, {
      listener: `allowed_protocols = ["tls"]\ntls_domains = ["${SITE_DOMAIN}", "localhost"]\ntls_cert_size = 2900\nfronting = "127.0.0.1:${site.port}"`,
    }),
  );
  main = proxy.config.listeners[0];
});

after(async () => {
  await proxy?.stop();
  await recorder?.stop();
  await site?.stop();
  await dc?.stop();
});

/** The listeners read their config object live, so a test can re-point fronting. */
function setListener(patch: Partial<ListenerConfig>): void {
  Object.assign(main, patch);
}

function restore(): void {
  setListener({
    fronting: { kind: 'fixed', host: '127.0.0.1', port: site.port },
    frontingProxyProtocol: 'off',
  });
}

test('curl -k through the proxy port gets the cover site page', { skip: !hasCommand('curl') }, async () => {
  restore();
  const port = proxy.port();
  const { stdout } = await run(
    'curl',
    [
      '-sk',
      '--max-time',
      '10',
      '--resolve',
      `${SITE_DOMAIN}:${port}:127.0.0.1`,
      `https://${SITE_DOMAIN}:${port}/`,
    ],
    { timeout: 15_000 },
  );
  assert.equal(stdout, SITE_PAGE);
  assert.ok(site.requests >= 1);
});

test('openssl s_client through the proxy port sees the cover site certificate', {
  skip: !hasCommand('openssl'),
}, async () => {
  restore();
  const child = execFile(
    'openssl',
    ['s_client', '-connect', `127.0.0.1:${proxy.port()}`, '-servername', SITE_DOMAIN, '-showcerts'],
    { timeout: 15_000 },
  );
  child.stdin?.end();
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await new Promise<void>((resolve) => child.once('close', () => resolve()));
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)?.[0];
  assert.ok(pem, 'no certificate in the s_client output');
  const seen = new X509Certificate(pem);
  const real = new X509Certificate(site.cert);
  assert.equal(seen.fingerprint256, real.fingerprint256);
});

test('the fronting target gets every byte the client sent, with a PROXY v1 or v2 header first', async () => {
  for (const version of ['off', 'v1', 'v2'] as const) {
    setListener({
      fronting: { kind: 'fixed', host: '127.0.0.1', port: recorder.port },
      frontingProxyProtocol: version,
    });
    const hello = buildClientHello({
      shape: 'modern',
      secret: Buffer.alloc(16, 7),
      domain: SITE_DOMAIN,
      unixTime: 1,
    });
    const more = Buffer.from('after the hello');
    const index = recorder.received.length;
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port() });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    const v1 = `PROXY TCP4 127.0.0.1 127.0.0.1 ${socket.localPort} ${proxy.port()}\r\n`;
    const headerLength = version === 'off' ? 0 : version === 'v1' ? v1.length : 28;
    // The hello in small TCP segments, then more bytes once fronted.
    for (let i = 0; i < hello.length; i += 300) socket.write(hello.subarray(i, i + 300));
    await recorder.waitForBytes(index, headerLength + hello.length);
    socket.write(more);
    const all = await recorder.waitForBytes(index, headerLength + hello.length + more.length);
    socket.destroy();
    let body = all;
    if (version === 'v1') {
      assert.equal(all.subarray(0, v1.length).toString(), v1);
      body = all.subarray(v1.length);
    } else if (version === 'v2') {
      assert.equal(all.subarray(0, 12).toString('hex'), '0d0a0d0a000d0a515549540a');
      assert.equal(all[13], 0x11);
      body = all.subarray(28);
    }
    assert.deepEqual(body, Buffer.concat([hello, more]));
  }
  restore();
});

test("sni mode goes to the SNI's host on the configured port", async () => {
  setListener({ fronting: { kind: 'sni', port: recorder.port } });
  const index = recorder.received.length;
  const hello = buildClientHello({
    shape: 'legacy',
    secret: Buffer.alloc(16, 1),
    domain: 'localhost',
    unixTime: 1,
  });
  const socket = net.connect({ host: '127.0.0.1', port: proxy.port() });
  socket.on('error', () => {});
  socket.write(hello);
  const got = await recorder.waitForBytes(index, hello.length);
  socket.destroy();
  assert.deepEqual(got, hello);
  restore();
});

test('never fronts to itself', async () => {
  setListener({ fronting: { kind: 'fixed', host: '127.0.0.1', port: proxy.port() } });
  const before = proxy.stats.listener('main').fronted;
  const hello = buildClientHello({
    shape: 'modern',
    secret: Buffer.alloc(16, 3),
    domain: SITE_DOMAIN,
    unixTime: 1,
  });
  const closed = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port() });
    socket.on('error', () => {});
    socket.once('close', () => resolve(true));
    setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 3000);
    socket.write(hello);
  });
  assert.ok(closed, 'the looping connection was not closed');
  // Exactly one fronting attempt: the proxy did not connect to itself.
  assert.equal(proxy.stats.listener('main').fronted, before + 1);
  restore();
});

test('certificate size probe learns the cover site flight size', async () => {
  forgetCoverProfiles();
  const profile = await probeCoverDomain({ host: '127.0.0.1', port: site.port }, SITE_DOMAIN, 3000);
  assert.ok(profile, 'probe failed');
  assert.equal(profile.source, 'probe');
  // A self-signed P-256 certificate plus EncryptedExtensions/CertificateVerify/Finished.
  assert.ok(profile.certRecordSize > 300 && profile.certRecordSize < 4000, String(profile.certRecordSize));
  // Unreachable: null, and a stable random size stands in.
  assert.equal(await probeCoverDomain({ host: '127.0.0.1', port: recorder.port }, SITE_DOMAIN, 1000), null);
  const drawn = coverProfile('unreachable.example');
  assert.equal(drawn.source, 'random');
  assert.ok(drawn.certRecordSize >= 2500 && drawn.certRecordSize <= 4500);
  assert.equal(coverProfile('unreachable.example').certRecordSize, drawn.certRecordSize);

  forgetCoverProfiles();
  const config = {
    ...proxy.config,
    listeners: [{ ...main, tlsCertSize: 'auto' as const, tlsDomains: [SITE_DOMAIN] }],
  };
  const log = logger.child({});
  log.level = 'silent';
  const probes = startCertProbes(() => config, log, { timeoutMs: 3000 });
  await probes.refresh();
  probes.stop();
  assert.equal(coverProfile(SITE_DOMAIN).source, 'probe');
  forgetCoverProfiles();
});

/** Records of a server flight: [type, payload] until the bytes run out. */
function records(flight: Buffer): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let pos = 0; pos + 5 <= flight.length; ) {
    const len = flight.readUInt16BE(pos + 3);
    out.push([flight[pos], flight.subarray(pos + 5, pos + 5 + len)]);
    pos += 5 + len;
  }
  return out;
}

/** Send a hello, collect the answer until the server goes quiet. */
async function flightFrom(port: number, hello: Buffer): Promise<Buffer> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve) => {
    let quiet: NodeJS.Timeout | null = null;
    const done = setTimeout(resolve, 3000);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (quiet) clearTimeout(quiet);
      quiet = setTimeout(() => {
        clearTimeout(done);
        resolve();
      }, 300);
    });
    socket.write(hello);
  });
  socket.destroy();
  return Buffer.concat(chunks);
}

test('with tls_cert_size = "auto" the fake flight has the shape of the cover site flight', async () => {
  restore();
  forgetCoverProfiles();
  const profile = await probeCoverDomain({ host: '127.0.0.1', port: site.port }, SITE_DOMAIN, 3000);
  assert.ok(profile);
  rememberCoverProfile(SITE_DOMAIN, profile);
  setListener({ tlsCertSize: 'auto' });
  try {
    const real = records(
      await flightFrom(
        site.port,
        buildClientHello({ shape: 'modern', secret: Buffer.alloc(16), domain: SITE_DOMAIN, unixTime: 1 }),
      ),
    );
    const fake = records(
      await flightFrom(
        proxy.port(),
        buildClientHello({
          shape: 'modern',
          secret: TEST_SECRET,
          domain: SITE_DOMAIN,
          unixTime: Math.floor(Date.now() / 1000),
        }),
      ),
    );
    assert.equal(fake.length, 3);
    assert.deepEqual(
      fake.map(([t]) => t),
      [0x16, 0x14, 0x17],
    );
    // Same ServerHello size and bytes outside random/session id/key share (cipher, extension order, PQ group).
    const [realHello, fakeHello] = [real[0][1], fake[0][1]];
    assert.equal(fakeHello.length, realHello.length);
    const suiteAt = 4 + 2 + 32 + 1 + 32;
    assert.equal(fakeHello.readUInt16BE(suiteAt), realHello.readUInt16BE(suiteAt));
    assert.deepEqual(fakeHello.subarray(suiteAt, suiteAt + 11), realHello.subarray(suiteAt, suiteAt + 11));
    assert.equal(fakeHello.readUInt16BE(suiteAt + 3 + 2 + 6 + 4), 0x11ec);
    // The encrypted flight: one record about as long as all of the site's records together.
    const realFlight = real.filter(([t]) => t === 0x17).reduce((n, [, p]) => n + p.length, 0);
    // (An ECDSA signature's DER length varies by a byte or two between handshakes.)
    assert.ok(Math.abs(fake[2][1].length - realFlight) <= 8, `${fake[2][1].length} vs ${realFlight}`);
  } finally {
    setListener({ tlsCertSize: 2900 });
    forgetCoverProfiles();
  }
});
