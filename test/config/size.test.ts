import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatSize, parseSize } from '../../src/config/size.ts';

describe('users: sizes', () => {
  it('reads bytes and unit forms', () => {
    assert.equal(parseSize('50GB'), 50e9);
    assert.equal(parseSize('2MB'), 2e6);
    assert.equal(parseSize('1.5MiB'), 1.5 * 1024 * 1024);
    assert.equal(parseSize('10kb'), 10_000);
    assert.equal(parseSize(1234), 1234);
    assert.equal(parseSize('1234'), 1234);
  });

  it('refuses what is not a size', () => {
    for (const v of ['', 'GB', '5XB', '-1', -1, 1.5, 'ten', null, true]) assert.equal(parseSize(v), null);
  });

  it('formatSize reads back close to the value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e15 }), (n) => {
        const back = parseSize(formatSize(n))!;
        assert.ok(Math.abs(back - n) <= Math.max(1, n * 0.01));
      }),
    );
  });
});
