import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  buildClientHello,
  readServerFlight,
  signClientHello,
  splitHelloRecords,
} from '../../src/client/tls-hello.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { ListenerConfig } from '../../src/config/types.ts';
import { deriveSniSecret } from '../../src/protocol/faketls/sni-secret.ts';
import { forgetCoverProfiles, rememberCoverProfile } from '../../src/cover/profiles.ts';
import { tryFakeTlsHandshake } from '../../src/session/fake-tls-handshake.ts';
import { HELLO_SHAPES, helloFixture } from '../helpers/hello-shapes.ts';

const SECRET_HEX = 'd0d6e111bada5511fcce9584deadbeef';
const secret = Buffer.from(SECRET_HEX, 'hex');
const nowMs = 1_790_000_000_000;
const nowS = nowMs / 1000;

function listener(extra: Record<string, unknown> = {}): ListenerConfig {
  const c = parseConfig({
    listeners: [
      {
        name: 'main',
        host: '127.0.0.1',
        port: 0,
        secret: SECRET_HEX,
        tls_domains: ['example.com', 'cdn.example.org'],
        tls_cert_size: 3000,
        ...extra,
      },
    ],
  });
  return c.listeners[0];
}

function hello(
  o: { domain?: string; key?: Buffer; time?: number; shape?: 'modern' | 'legacy' } = {},
): Buffer {
  return buildClientHello({
    shape: o.shape ?? 'modern',
    secret: o.key ?? secret,
    domain: o.domain ?? 'example.com',
    unixTime: o.time ?? nowS,
  });
}

test('valid modern and legacy hellos: ok with a ServerHello the client accepts', () => {
  const l = listener();
  for (const shape of ['modern', 'legacy'] as const) {
    const h = hello({ shape, domain: 'Example.COM' });
    const r = tryFakeTlsHandshake(h, l, nowMs);
    assert.equal(r.kind, 'ok');
    assert.ok(r.kind === 'ok');
    assert.equal(r.tlsDomain, 'example.com');
    assert.equal(r.consumed, h.length);
    assert.deepEqual(r.secret, secret);
    assert.deepEqual(r.replayKey, h.subarray(11, 43));
    const flight = readServerFlight(r.serverHello, h.subarray(11, 43), secret);
    assert.deepEqual(flight, { kind: 'proxy', length: r.serverHello.length });
    // The fake certificate record has the configured size.
    assert.equal(r.serverHello.readUInt16BE(r.serverHello.length - 3000 - 2), 3000);
  }
});

test('need-more until the (split) hello is complete, then ok; extra bytes not consumed', () => {
  const l = listener();
  const h = hello();
  const wire = Buffer.concat([splitHelloRecords(h, [200, 700]), Buffer.from('140303000101', 'hex')]);
  const helloBytes = wire.length - 6;
  for (let n = 1; n < helloBytes; n += 97)
    assert.equal(tryFakeTlsHandshake(wire.subarray(0, n), l, nowMs).kind, 'need-more');
  const r = tryFakeTlsHandshake(wire, l, nowMs);
  assert.ok(r.kind === 'ok');
  assert.equal(r.consumed, helloBytes);
});

test('failures front: wrong secret, stale or future timestamp, not TLS, malformed', () => {
  const l = listener();
  const cases: [Buffer, string][] = [
    [hello({ key: Buffer.alloc(16, 1) }), 'MTP_ERR_TLS_BAD_DIGEST'],
    [hello({ time: nowS - 121 }), 'MTP_ERR_TLS_STALE_TIMESTAMP'],
    [hello({ time: nowS + 121 }), 'MTP_ERR_TLS_STALE_TIMESTAMP'],
    [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'MTP_ERR_TLS_EXPECTED'],
    [Buffer.from('1603010005020000010000', 'hex'), 'MTP_ERR_TLS_BAD_HELLO'],
  ];
  for (const [bytes, code] of cases) {
    const r = tryFakeTlsHandshake(bytes, l, nowMs);
    assert.equal(r.kind, 'fail');
    assert.ok(r.kind === 'fail');
    assert.equal(r.code, code);
    assert.equal(r.action, 'front');
  }
  // Within the window.
  assert.equal(tryFakeTlsHandshake(hello({ time: nowS - 119 }), l, nowMs).kind, 'ok');
  // Window of zero disables the check.
  assert.equal(tryFakeTlsHandshake(hello({ time: 1 }), { ...l, tlsTimeSkewMs: 0 }, nowMs).kind, 'ok');
});

test('unknown SNI gets the listener action (front / reject with unrecognized_name / drop)', () => {
  for (const action of ['front', 'reject', 'drop'] as const) {
    const l = listener({ unknown_sni: action });
    for (const key of [secret, Buffer.alloc(16, 9)]) {
      const r = tryFakeTlsHandshake(hello({ domain: 'other.example.net', key }), l, nowMs);
      assert.ok(r.kind === 'fail');
      assert.equal(r.code, 'MTP_ERR_TLS_UNKNOWN_SNI');
      assert.equal(r.action, action);
      assert.equal(r.sni, 'other.example.net');
      if (action === 'reject') assert.equal(r.reply?.toString('hex'), '15030300020270');
      else assert.equal(r.reply, undefined);
    }
  }
  // No domain list: any SNI is served.
  const any = listener({ tls_domains: [] });
  assert.equal(tryFakeTlsHandshake(hello({ domain: 'whatever.example' }), any, nowMs).kind, 'ok');
});

test('per-SNI secrets: the derived secret for the hello SNI is accepted, even for a domain not listed', () => {
  const salt = 'my-private-salt-change-me';
  const l = listener({ per_sni_salt: salt });
  const derived = deriveSniSecret(salt, secret, 'alice.example.com');
  assert.equal(derived.toString('hex'), 'af4d5729ce2a0de4a40bbf439ac9d515');
  const r = tryFakeTlsHandshake(hello({ domain: 'alice.example.com', key: derived }), l, nowMs);
  assert.ok(r.kind === 'ok');
  assert.deepEqual(r.secret, derived);
  // A derived secret for another SNI does not pass, nor does the base secret.
  const wrong = tryFakeTlsHandshake(hello({ domain: 'example.com', key: derived }), l, nowMs);
  assert.ok(wrong.kind === 'fail' && wrong.code === 'MTP_ERR_TLS_BAD_DIGEST');
  const base = tryFakeTlsHandshake(hello({ domain: 'example.com' }), l, nowMs);
  assert.ok(base.kind === 'fail' && base.code === 'MTP_ERR_TLS_BAD_DIGEST');
  // A listed domain with its own derived secret.
  const listed = tryFakeTlsHandshake(
    hello({ domain: 'example.com', key: deriveSniSecret(salt, secret, 'example.com') }),
    l,
    nowMs,
  );
  assert.equal(listed.kind, 'ok');
});
test('extra secrets are candidates too', () => {
  const other = Buffer.alloc(16, 0x42);
  const l = { ...listener(), extraSecrets: [other] };
  const r = tryFakeTlsHandshake(hello({ key: other }), l, nowMs);
  assert.ok(r.kind === 'ok');
  assert.deepEqual(r.secret, other);
});

test('never ok for a hello without the right digest (fuzz)', () => {
  const l = listener();
  const base = hello();
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: base.length - 1 }),
      fc.integer({ min: 1, max: 255 }),
      (at, flip) => {
        const b = Buffer.from(base);
        b[at] ^= flip;
        const r = tryFakeTlsHandshake(b, l, nowMs);
        if (r.kind === 'ok') assert.ok(at >= 11 + 28 && at < 11 + 32, `accepted with byte ${at} changed`);
      },
    ),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2500 }), (bytes) => {
      const b = Buffer.from(bytes);
      if (b.length > 0) b[0] = 0x16;
      assert.notEqual(tryFakeTlsHandshake(b, l, nowMs).kind, 'ok');
    }),
    { numRuns: 300 },
  );
});

test('defect 13: "localhost." (trailing dot, any case) gets the flight of "localhost", learned size included', () => {
  forgetCoverProfiles();
  rememberCoverProfile('localhost', {
    certRecordSize: 1500,
    selectsPq: true,
    cipherSuite: null,
    versionsFirst: null,
    source: 'probe',
  });
  try {
    const l = listener({ tls_domains: ['localhost'], tls_cert_size: 'auto' });
    const lengths = new Set<number>();
    for (const name of ['localhost', 'localhost.', 'LOCALHOST.', 'LocalHost']) {
      const r = tryFakeTlsHandshake(hello({ domain: name }), l, nowMs);
      assert.ok(r.kind === 'ok', name);
      assert.equal(r.tlsDomain, 'localhost');
      // The fake certificate record carries the learned size.
      assert.equal(r.serverHello.readUInt16BE(r.serverHello.length - 1500 - 2), 1500, name);
      lengths.add(r.serverHello.length);
    }
    assert.equal(lengths.size, 1);
  } finally {
    forgetCoverProfiles();
  }
});

test('no SNI: served, counted as the first tls_domain (or no_sni_domain); unknown no_sni_domain gets unknown_sni', () => {
  const ios = (key = secret) =>
    helloFixture('ios', { secret: key, domain: 'ignored.example', unixTime: nowS }).record;
  const r = tryFakeTlsHandshake(ios(), listener(), nowMs);
  assert.ok(r.kind === 'ok');
  assert.equal(r.tlsDomain, 'example.com');
  const h = ios();
  const ok = tryFakeTlsHandshake(h, listener({ no_sni_domain: 'CDN.example.org' }), nowMs);
  assert.ok(ok.kind === 'ok');
  assert.equal(ok.tlsDomain, 'cdn.example.org');
  assert.equal(readServerFlight(ok.serverHello, h.subarray(11, 43), secret).kind, 'proxy');
  // A no-SNI domain the listener does not serve: the unknown_sni action, like a hello naming it.
  const other = tryFakeTlsHandshake(
    ios(),
    listener({ no_sni_domain: 'elsewhere.example', unknown_sni: 'drop' }),
    nowMs,
  );
  assert.ok(other.kind === 'fail' && other.code === 'MTP_ERR_TLS_UNKNOWN_SNI' && other.action === 'drop');
  // No domains at all: served, with no domain to count it under.
  const bare = tryFakeTlsHandshake(ios(), listener({ tls_domains: [] }), nowMs);
  assert.ok(bare.kind === 'ok');
  assert.equal(bare.tlsDomain, null);
  // The digest still decides.
  const wrong = tryFakeTlsHandshake(ios(Buffer.alloc(16, 3)), listener(), nowMs);
  assert.ok(wrong.kind === 'fail' && wrong.code === 'MTP_ERR_TLS_BAD_DIGEST' && wrong.action === 'front');
});

test('no SNI with per_sni_salt: only a secret that is not per-SNI can match', () => {
  const salt = 'my-private-salt-change-me';
  const l = listener({ per_sni_salt: salt });
  const derived = deriveSniSecret(salt, secret, 'example.com');
  const withDerived = helloFixture('ios', { secret: derived, domain: 'x', unixTime: nowS }).record;
  const r = tryFakeTlsHandshake(withDerived, l, nowMs);
  assert.ok(r.kind === 'fail' && r.code === 'MTP_ERR_TLS_BAD_DIGEST');
  const withBase = helloFixture('ios', { secret, domain: 'x', unixTime: nowS }).record;
  const ok = tryFakeTlsHandshake(withBase, l, nowMs);
  assert.ok(ok.kind === 'ok');
  assert.deepEqual(ok.secret, secret);
  // With an SNI the base secret still opens nothing.
  const named = tryFakeTlsHandshake(hello({ domain: 'example.com' }), l, nowMs);
  assert.ok(named.kind === 'fail' && named.code === 'MTP_ERR_TLS_BAD_DIGEST');
});

test('every hello shape is accepted, with its JA4 reported; the same hellos with a wrong key are fronted', () => {
  const l = listener();
  for (const shape of HELLO_SHAPES) {
    const f = helloFixture(shape, { secret, domain: 'example.com', unixTime: nowS });
    const r = tryFakeTlsHandshake(f.wire, l, nowMs);
    assert.ok(r.kind === 'ok', `${shape}: ${r.kind === 'fail' ? r.code : r.kind}`);
    assert.equal(r.consumed, f.wire.length);
    assert.equal(r.tlsDomain, 'example.com');
    assert.match(r.fingerprint, /^t13[di]/);
    assert.equal(readServerFlight(r.serverHello, f.random, secret).kind, 'proxy');
    const bad = helloFixture(shape, { secret: Buffer.alloc(16, 5), domain: 'example.com', unixTime: nowS });
    const b = tryFakeTlsHandshake(bad.wire, l, nowMs);
    assert.ok(b.kind === 'fail' && b.code === 'MTP_ERR_TLS_BAD_DIGEST');
    // Counted before the secret check: the failed hello has a fingerprint of the same family.
    assert.equal(b.fingerprint?.slice(0, 10), r.fingerprint.slice(0, 10));
  }
});

test('a session id that is not 32 bytes is fronted', () => {
  const h = hello();
  // Shorten the session id to 31 bytes: drop one byte and fix the three lengths.
  const sidAt = 43;
  const cut = Buffer.concat([h.subarray(0, sidAt), Buffer.from([31]), h.subarray(sidAt + 2)]);
  cut.writeUInt16BE(cut.length - 5, 3);
  cut.writeUIntBE(cut.length - 9, 6, 3);
  signClientHello(cut, secret, nowS);
  const r = tryFakeTlsHandshake(cut, listener(), nowMs);
  assert.ok(r.kind === 'fail' && r.code === 'MTP_ERR_TLS_BAD_HELLO' && r.action === 'front');
});

test('a post-quantum offer whose ML-KEM key is invalid is answered with the X25519 share', () => {
  const h = hello();
  // Overwrite the first bytes of the 1216-byte hybrid key with 0xff (coefficients out of range), re-sign.
  const at = h.indexOf(Buffer.from('11ec04c0', 'hex'));
  assert.ok(at > 0);
  h.fill(0xff, at + 4, at + 4 + 64);
  signClientHello(h, secret, nowS);
  const r = tryFakeTlsHandshake(h, listener(), nowMs);
  assert.ok(r.kind === 'ok');
  const keyShareAt = r.serverHello.indexOf(Buffer.from('00330024001d0020', 'hex'));
  assert.ok(keyShareAt > 0, 'x25519 key_share expected');
});
