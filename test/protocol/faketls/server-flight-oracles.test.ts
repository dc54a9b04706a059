/**
 * The proxy's answer to every hello shape, judged the way each official app judges it (oracles/), and
 * checked for consistency with the hello as a TLS 1.3 parser would (the post-quantum answer included).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../../../src/config/load.ts';
import type { ListenerConfig } from '../../../src/config/types.ts';
import type { CoverProfile } from '../../../src/cover/flight.ts';
import { forgetCoverProfiles, rememberCoverProfile } from '../../../src/cover/profiles.ts';
import { encodeAppData } from '../../../src/protocol/faketls/records.ts';
import { tryFakeTlsHandshake } from '../../../src/session/fake-tls-handshake.ts';
import { HELLO_SHAPES, helloFixture } from '../../helpers/hello-shapes.ts';
import { APP_ORACLES, checkTls13Answer } from './oracles/index.ts';

const SECRET_HEX = '0123456789abcdef0123456789abcdef';
const secret = Buffer.from(SECRET_HEX, 'hex');
const nowMs = 1_790_000_000_000;
const DOMAIN = 'cover.example';

function listener(extra: Record<string, unknown> = {}): ListenerConfig {
  return parseConfig({
    listeners: [{ host: '127.0.0.1', port: 0, secret: SECRET_HEX, tls_domain: DOMAIN, ...extra }],
  }).listeners[0];
}

function profile(selectsPq: boolean | null, certRecordSize = 3500): CoverProfile {
  return { certRecordSize, selectsPq, cipherSuite: null, versionsFirst: null, source: 'probe' };
}

function answer(shape: (typeof HELLO_SHAPES)[number], l: ListenerConfig) {
  const f = helloFixture(shape, { secret, domain: DOMAIN, unixTime: nowMs / 1000 });
  const r = tryFakeTlsHandshake(f.wire, l, nowMs);
  assert.ok(r.kind === 'ok', `${shape}: ${r.kind === 'fail' ? r.code : r.kind}`);
  return { f, flight: r.serverHello };
}

test('every hello shape × every cover profile: each app accepts the flight, and it is a consistent TLS 1.3 answer', () => {
  try {
    for (const cover of [profile(true), profile(false), profile(null)]) {
      forgetCoverProfiles();
      if (cover.selectsPq !== null) rememberCoverProfile(DOMAIN, cover);
      for (const shape of HELLO_SHAPES) {
        const { f, flight } = answer(shape, listener());
        // What the relay sends next: application-data records.
        const after = encodeAppData(Buffer.alloc(40_000, 1));
        for (const oracle of APP_ORACLES) {
          const v = oracle.judge([flight], f.random, secret, after);
          assert.ok(v.ok, `${oracle.app} refused the answer to ${shape}: ${v.ok ? '' : v.reason}`);
          assert.equal(v.ok && v.flightLength, flight.length);
        }
        const facts = checkTls13Answer(flight, f.record);
        // The post-quantum offer gets a real hybrid share unless the cover is known to answer classic.
        if (cover.selectsPq === false) assert.equal(facts.group, 0x001d, shape);
        else assert.equal(facts.group, f.offersPq ? 0x11ec : 0x001d, shape);
        if (facts.group === 0x11ec) assert.equal(facts.keyShareLength, 1088 + 32);
      }
    }
  } finally {
    forgetCoverProfiles();
  }
});

test('the flight reaches the apps however TCP cuts it (every oracle, any split)', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...HELLO_SHAPES),
      fc.array(fc.integer({ min: 1, max: 6000 }), { maxLength: 12 }),
      (shape, cuts) => {
        const { f, flight } = answer(shape, listener({ tls_cert_size: 4000 }));
        const points = [...new Set(cuts.map((c) => c % flight.length))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const p of points) {
          chunks.push(flight.subarray(prev, p));
          prev = p;
        }
        chunks.push(flight.subarray(prev));
        // The official apps read on until the flight is complete; the Desktop fork decides on its first read.
        for (const oracle of APP_ORACLES) {
          if (oracle.app === 'desktop-fork') continue;
          assert.ok(oracle.judge(chunks, f.random, secret).ok, oracle.app);
        }
      },
    ),
    { numRuns: 40 },
  );
});

test('the fake certificate record never exceeds what iOS reads (10 KiB), whatever size is asked for', () => {
  for (const size of [10_240, 12_000, 16_384]) {
    const { f, flight } = answer('ios', listener({ tls_cert_size: size }));
    const facts = checkTls13Answer(flight, f.record);
    assert.equal(facts.certRecordLength, 10_240);
    for (const oracle of APP_ORACLES) assert.ok(oracle.judge([flight], f.random, secret).ok, oracle.app);
  }
  // A learned profile over 10 KiB is clamped too.
  try {
    rememberCoverProfile(DOMAIN, profile(true, 14_000));
    const { f, flight } = answer('android', listener());
    assert.equal(checkTls13Answer(flight, f.record).certRecordLength, 10_240);
  } finally {
    forgetCoverProfiles();
  }
});

test('the oracles do refuse what the apps refuse (controls)', () => {
  const { f, flight } = answer('android', listener({ tls_cert_size: 3000 }));
  for (const oracle of APP_ORACLES) {
    // Another secret's digest.
    assert.ok(!oracle.judge([flight], f.random, Buffer.alloc(16, 9)).ok, oracle.app);
    // A second Handshake record before ChangeCipherSpec.
    const helloEnd = 5 + flight.readUInt16BE(3);
    const extra = Buffer.concat([
      flight.subarray(0, helloEnd),
      Buffer.from('1603030001ff', 'hex'),
      flight.subarray(helloEnd),
    ]);
    assert.ok(!oracle.judge([extra], f.random, secret).ok, oracle.app);
  }
  // iOS alone refuses a first application-data record over 10 KiB.
  const big = Buffer.from(flight);
  const appLengthAt = 5 + flight.readUInt16BE(3) + 9;
  const padded = Buffer.concat([big, Buffer.alloc(11_000 - 3000)]);
  padded.writeUInt16BE(11_000, appLengthAt);
  const ios = APP_ORACLES.find((o) => o.app === 'ios')!;
  assert.ok(!ios.judge([padded], f.random, secret).ok);
  // Android hashes everything read: data glued to the flight in the same read breaks its check.
  const android = APP_ORACLES.find((o) => o.app === 'android')!;
  assert.ok(!android.judge([Buffer.concat([flight, encodeAppData(Buffer.alloc(8))])], f.random, secret).ok);
  assert.ok(android.judge([flight, encodeAppData(Buffer.alloc(8))], f.random, secret).ok);
});
