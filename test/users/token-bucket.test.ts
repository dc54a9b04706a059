import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TokenBucket } from '../../src/users/token-bucket.ts';

function manualClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('users: token bucket', () => {
  it('lets a burst through, then asks for the time the debt takes to refill', () => {
    const clock = manualClock();
    const b = new TokenBucket(1000, 1000, clock);
    assert.equal(b.take(1000), 0);
    assert.equal(b.take(500), 500);
    clock.advance(500);
    assert.equal(b.waitMs(), 0);
  });

  it('rate 0 is unlimited', () => {
    const b = new TokenBucket(0, 1, manualClock());
    assert.equal(b.take(1e12), 0);
  });

  it('over any run, what passed is at most burst + rate x time plus one chunk', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 0, max: 5000 })), {
          maxLength: 200,
        }),
        (rate, burst, steps) => {
          const clock = manualClock();
          const b = new TokenBucket(rate, burst, clock);
          let passed = 0;
          let elapsed = 0;
          let largest = 0;
          for (const [n, gap] of steps) {
            clock.advance(gap);
            elapsed += gap;
            // A well-behaved sender waits as told before sending more.
            const wait = b.waitMs();
            clock.advance(wait);
            elapsed += wait;
            b.take(n);
            passed += n;
            largest = Math.max(largest, n);
            assert.ok(passed <= Math.max(1, burst) + (rate * elapsed) / 1000 + largest + 1);
          }
        },
      ),
    );
  });

  it('tokens never exceed the burst, however long it stays idle', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e6 }), fc.integer({ min: 0, max: 1e9 }), (rate, idle) => {
        const clock = manualClock();
        const b = new TokenBucket(rate, 5000, clock);
        clock.advance(idle);
        assert.ok(b.tokens <= 5000);
      }),
    );
  });
});
