import assert from 'node:assert/strict';
import test from 'node:test';
import { fillRandom } from '../../src/protocol/random-pool.ts';

test('fillRandom writes only the asked range and never hands out the same bytes twice', () => {
  const target = Buffer.alloc(100, 0xaa);
  fillRandom(target, 10, 90);
  assert.equal(
    target.subarray(0, 10).every((b) => b === 0xaa),
    true,
  );
  assert.equal(
    target.subarray(90).every((b) => b === 0xaa),
    true,
  );
  assert.notDeepEqual(target.subarray(10, 90), Buffer.alloc(80, 0xaa));
  // Across pool refills (64 KiB): consecutive draws differ.
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const b = Buffer.alloc(1000);
    fillRandom(b);
    const hex = b.toString('hex');
    assert.equal(seen.has(hex), false);
    seen.add(hex);
  }
  const big = Buffer.alloc(200 * 1024);
  fillRandom(big);
  assert.notDeepEqual(big.subarray(0, 64 * 1024), big.subarray(64 * 1024, 128 * 1024));
});
