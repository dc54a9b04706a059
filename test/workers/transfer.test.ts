import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Stats } from '../../src/metrics/stats.ts';
import { addSnapshot, snapshotStats, statsFromSnapshot } from '../../src/workers/transfer.ts';

test('worker stats snapshots carry the failure stages and the client-hello fingerprints across', () => {
  const worker = new Stats();
  const l = worker.listener('main');
  l.fail('MTP_ERR_TLS_BAD_DIGEST');
  l.failAt('tcp');
  l.fingerprint('t13d1516h2_8daaf6152771_d8a2da3f94cd');
  l.fingerprint('t13d1516h2_8daaf6152771_d8a2da3f94cd');
  // Through structured clone, as between threads and processes.
  const snap = structuredClone(snapshotStats(worker));
  const copy = statsFromSnapshot(snap);
  assert.deepEqual(Object.fromEntries(copy.listener('main').handshakeStages), { digest: 1, tcp: 1 });
  assert.deepEqual(Object.fromEntries(copy.listener('main').helloFingerprints), {
    t13d1516h2_8daaf6152771_d8a2da3f94cd: 2,
  });
  // Kept for a worker that died: summed into the totals.
  addSnapshot(copy, snap);
  assert.equal(copy.listener('main').helloFingerprints.get('t13d1516h2_8daaf6152771_d8a2da3f94cd'), 4);
  assert.equal(copy.listener('main').handshakeStages.get('digest'), 2);
});
