import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { createReplayGuard, ReplayCache } from '../../src/session/replay-cache.ts';

const key = (i: number): Buffer => {
  const b = Buffer.alloc(48);
  b.writeUInt32LE(i, 0);
  return b;
};

describe('replay cache', () => {
  it('remembers a key: second sighting is a replay', () => {
    const c = new ReplayCache({ maxEntries: 10, maxAgeMs: 60_000 });
    const k = randomBytes(48);
    assert.equal(c.seen(k), false);
    assert.equal(c.seen(Buffer.from(k)), true);
    assert.equal(c.seen(randomBytes(48)), false);
  });

  it('keeps at most maxEntries keys, forgetting the oldest', () => {
    const c = new ReplayCache({ maxEntries: 3000, maxAgeMs: 60_000 });
    for (let i = 0; i < 5000; i++) assert.equal(c.seen(key(i)), false);
    assert.ok(c.size <= 3000);
    assert.equal(c.seen(key(4999)), true);
    assert.equal(c.seen(key(2500)), true);
    assert.equal(c.seen(key(0)), false, 'the oldest key was evicted');
  });

  it('forgets keys older than maxAge', () => {
    let now = 1_000_000;
    const c = new ReplayCache({ maxEntries: 100, maxAgeMs: 1000, now: () => now });
    c.seen(key(1));
    now += 500;
    c.seen(key(2));
    now += 600;
    assert.equal(c.seen(key(1)), false, 'expired');
    assert.equal(c.seen(key(2)), true, 'still young');
  });

  it('a replayed key is refreshed and survives its first entry being evicted', () => {
    let now = 0;
    const c = new ReplayCache({ maxEntries: 3, maxAgeMs: 1000, now: () => now });
    c.seen(key(1));
    now = 900;
    assert.equal(c.seen(key(1)), true);
    now = 1500;
    assert.equal(c.seen(key(1)), true, 'refreshed at 900, so still remembered at 1500');
  });

  it('configure() shrinks at once and keeps working', () => {
    const c = new ReplayCache({ maxEntries: 100, maxAgeMs: 60_000 });
    for (let i = 0; i < 100; i++) c.seen(key(i));
    c.configure(10, 60_000);
    assert.ok(c.size <= 10);
    assert.equal(c.seen(key(99)), true);
    assert.equal(c.seen(key(0)), false);
  });

  it('a disabled guard never reports a replay', () => {
    const g = createReplayGuard({ enabled: false, maxEntries: 10, maxAgeMs: 1000 });
    const k = randomBytes(48);
    assert.equal(g.seen(k), false);
    assert.equal(g.seen(k), false);
  });
});
