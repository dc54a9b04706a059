import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  FINGERPRINT_SLOTS,
  handshakeStage,
  ListenerStats,
  OTHER_FINGERPRINT,
  topFingerprints,
} from '../../src/metrics/stats.ts';

test('failures are counted by reason and by stage; the stage follows the code unless given', () => {
  const l = new ListenerStats();
  l.fail('MTP_ERR_TLS_BAD_DIGEST');
  l.fail('MTP_ERR_TLS_STALE_TIMESTAMP');
  l.fail('MTP_ERR_REPLAY');
  l.fail('MTP_ERR_TLS_UNKNOWN_SNI');
  l.fail('MTP_ERR_UNKNOWN_TRANSPORT');
  l.fail('MTP_ERR_UNKNOWN_TRANSPORT', 'first_bytes');
  l.fail('MTP_ERR_POLICY');
  l.fail('MTP_ERR_UPSTREAM');
  l.fail('MTP_ERR_ACCEPT_EMFILE');
  l.failAt('tcp');
  assert.deepEqual(Object.fromEntries(l.handshakeStages), {
    digest: 1,
    timestamp: 1,
    replay: 1,
    sni: 1,
    obfuscated2: 1,
    first_bytes: 1,
    policy: 1,
    upstream: 1,
    tcp: 2,
  });
  assert.equal(l.handshakeFailures.get('MTP_ERR_UNKNOWN_TRANSPORT'), 2);
  assert.equal(handshakeStage('MTP_ERR_TLS_BAD_HELLO'), 'tls_record');
  assert.equal(handshakeStage('MTP_ERR_SOMETHING_NEW'), 'other');
});

test('fingerprints: bounded slots; one-off fingerprints give their slot up; the total is kept', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 2000 }), (draws) => {
      const l = new ListenerStats();
      // A few frequent ones (the apps) among many random ones (a scan).
      for (const d of draws) l.fingerprint(d < 150 ? `app${d % 3}` : `probe${d}`);
      const f = l.helloFingerprints;
      assert.ok(f.size <= FINGERPRINT_SLOTS + 1);
      let total = 0;
      for (const v of f.values()) total += v;
      assert.equal(total, draws.length);
      for (const [k, v] of f)
        if (k.startsWith('app')) assert.equal(v, draws.filter((d) => d < 150 && `app${d % 3}` === k).length);
    }),
    { numRuns: 100 },
  );
});

test('topFingerprints sums sources and keeps the N most frequent plus "other"', () => {
  const a = new Map([
    ['x', 5],
    ['y', 1],
    [OTHER_FINGERPRINT, 2],
  ]);
  const b = new Map([
    ['y', 9],
    ['z', 3],
  ]);
  assert.deepEqual(topFingerprints([a, b], 2), [
    ['y', 10],
    ['x', 5],
    [OTHER_FINGERPRINT, 5],
  ]);
  assert.deepEqual(topFingerprints([new Map()], 2), []);
});
