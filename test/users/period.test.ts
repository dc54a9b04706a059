import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { QUOTA_PERIODS } from '../../src/config/users.ts';
import { periodAt } from '../../src/users/period.ts';

const local = (y: number, m: number, d: number, h = 0) => new Date(y, m - 1, d, h).getTime();

describe('users: quota periods', () => {
  it('daily starts at local midnight', () => {
    const p = periodAt(local(2026, 12, 7, 15), 'daily');
    assert.equal(p.start, local(2026, 12, 7));
    assert.equal(p.end, local(2026, 12, 8));
    assert.equal(p.key, '2026-12-07');
  });

  it('weekly starts on the reset day (1 = Monday, 7 = Sunday)', () => {
    // 2026-12-07 is a Monday.
    assert.equal(periodAt(local(2026, 12, 9), 'weekly', 1).start, local(2026, 12, 7));
    assert.equal(periodAt(local(2026, 12, 9), 'weekly', 7).start, local(2026, 12, 6));
    assert.equal(periodAt(local(2026, 12, 6), 'weekly', 1).start, local(2026, 11, 30));
  });

  it('monthly starts on the reset day, the last day of shorter months', () => {
    const p = periodAt(local(2026, 12, 7), 'monthly', 15);
    assert.equal(p.start, local(2026, 11, 15));
    assert.equal(p.end, local(2026, 12, 15));
    const feb = periodAt(local(2027, 3, 1), 'monthly', 31);
    assert.equal(feb.start, local(2027, 2, 28));
    assert.equal(feb.end, local(2027, 3, 31));
    assert.equal(periodAt(local(2026, 1, 1), 'monthly', 1).key, '2026-01-01');
  });

  it('total never ends', () => {
    assert.equal(periodAt(Date.now(), 'total').end, Number.POSITIVE_INFINITY);
  });

  it('every instant lies in its period, and the next period starts where it ends', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: local(2000, 1, 1), max: local(2100, 1, 1) }),
        fc.constantFrom(...QUOTA_PERIODS.filter((p) => p !== 'total')),
        fc.integer({ min: 1, max: 31 }),
        (at, period, day) => {
          const p = periodAt(at, period, day);
          assert.ok(p.start <= at && at < p.end);
          const next = periodAt(p.end, period, day);
          assert.equal(next.start, p.end);
          assert.notEqual(next.key, p.key);
        },
      ),
    );
  });
});
