import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { LocalCounterStore } from '../../src/policy/counters.ts';
import { SharedCounterStore } from '../../src/workers/shared-counters.ts';
import { SharedReplayGuard } from '../../src/workers/shared-replay.ts';

describe('SharedReplayGuard', () => {
  it('reports a key the second time, through any view', () => {
    const guard = SharedReplayGuard.create({ enabled: true, maxEntries: 1000, maxAgeMs: 60_000 });
    const other = SharedReplayGuard.attach(guard.buffer, 1);
    const key = randomBytes(48);
    assert.equal(guard.seen(key), false);
    assert.equal(other.seen(Buffer.from(key)), true);
    assert.equal(guard.seen(randomBytes(48)), false);
    assert.equal(other.seen(randomBytes(32)), false);
    assert.equal(guard.size(), 3);
  });

  it('never reports anything when disabled, and can be switched on by a reload', () => {
    const guard = SharedReplayGuard.create({ enabled: false, maxEntries: 100, maxAgeMs: 60_000 });
    const key = randomBytes(48);
    assert.equal(guard.seen(key), false);
    assert.equal(guard.seen(key), false);
    guard.configure(true, 60_000);
    assert.equal(guard.seen(key), false);
    assert.equal(guard.seen(key), true);
  });

  it('keeps at most maxEntries and remembers the most recent half', () => {
    const guard = SharedReplayGuard.create({ enabled: true, maxEntries: 100, maxAgeMs: 3_600_000 });
    const keys = Array.from({ length: 1000 }, () => randomBytes(48));
    for (const k of keys) assert.equal(guard.seen(k), false);
    assert.ok(guard.size() <= 100);
    for (const k of keys.slice(-50)) assert.equal(guard.seen(k), true);
  });

  it('remembers a key for at least half of maxAge and forgets it after maxAge', () => {
    const guard = SharedReplayGuard.create({ enabled: true, maxEntries: 100, maxAgeMs: 1000, now: 0 });
    const key = randomBytes(48);
    const other = randomBytes(48);
    assert.equal(guard.seen(key, 10), false);
    assert.equal(guard.seen(other, 10), false);
    assert.equal(guard.seen(key, 499), true);
    assert.equal(guard.seen(other, 1000), false);
  });

  it('a replay found in the older generation is refreshed into the current one', () => {
    const guard = SharedReplayGuard.create({ enabled: true, maxEntries: 100, maxAgeMs: 200, now: 0 });
    const key = randomBytes(48);
    guard.seen(key, 0);
    assert.equal(guard.seen(key, 110), true); // one rotation: found in the older generation, moved forward
    assert.equal(guard.seen(key, 220), true); // the next rotation would have dropped it without the refresh
  });
});

describe('SharedCounterStore', () => {
  it('holds the limit across views of different workers', () => {
    const main = SharedCounterStore.create({ maxKeys: 64, workers: 2 });
    const w0 = SharedCounterStore.attach(main.buffer, 0);
    const w1 = SharedCounterStore.attach(main.buffer, 1);
    assert.equal(w0.tryAcquire('ip:1.2.3.4', 2), true);
    assert.equal(w1.tryAcquire('ip:1.2.3.4', 2), true);
    assert.equal(w0.tryAcquire('ip:1.2.3.4', 2), false);
    assert.equal(main.get('ip:1.2.3.4'), 2);
    w1.release('ip:1.2.3.4');
    assert.equal(w0.tryAcquire('ip:1.2.3.4', 2), true);
    assert.equal(w0.tryAcquire('ip:5.6.7.8', 0), false);
    assert.equal(main.size, 1);
  });

  it('a stray release does not take another worker’s share', () => {
    const main = SharedCounterStore.create({ maxKeys: 64, workers: 2 });
    const w0 = SharedCounterStore.attach(main.buffer, 0);
    const w1 = SharedCounterStore.attach(main.buffer, 1);
    w0.tryAcquire('k', 5);
    w1.release('k');
    assert.equal(main.get('k'), 1);
  });

  it('gives back everything a dead worker held', () => {
    const main = SharedCounterStore.create({ maxKeys: 64, workers: 2 });
    const w0 = SharedCounterStore.attach(main.buffer, 0);
    const w1 = SharedCounterStore.attach(main.buffer, 1);
    for (let i = 0; i < 40; i++) w0.tryAcquire(`k${i % 10}`, 100);
    for (let i = 0; i < 5; i++) w1.tryAcquire(`k${i}`, 100);
    assert.equal(main.releaseAllOf(0), 40);
    assert.equal(main.total(), 5);
    assert.equal(main.size, 5);
    for (let i = 0; i < 5; i++) assert.equal(main.get(`k${i}`), 1);
  });

  it('fails open and counts it when the table is full', () => {
    const main = SharedCounterStore.create({ maxKeys: 8, workers: 1 });
    const w = SharedCounterStore.attach(main.buffer, 0);
    for (let i = 0; i < 100; i++) assert.equal(w.tryAcquire(`k${i}`, 1), true);
    assert.ok(main.overflows > 0);
  });

  it('behaves like the in-process store for any sequence of operations (tiny table, many collisions)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 11 }), fc.integer({ min: 1, max: 3 })), {
          maxLength: 300,
        }),
        (ops) => {
          const shared = SharedCounterStore.attach(
            SharedCounterStore.create({ maxKeys: 8, workers: 1 }).buffer,
            0,
          );
          const model = new LocalCounterStore();
          for (const [acquire, k, limit] of ops) {
            const key = `client:${k}`;
            if (acquire) assert.equal(shared.tryAcquire(key, limit), model.tryAcquire(key, limit));
            else {
              shared.release(key);
              model.release(key);
            }
            for (let j = 0; j < 12; j++) assert.equal(shared.get(`client:${j}`), model.get(`client:${j}`));
          }
          assert.equal(shared.size, model.size);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('worker threads racing on the same keys never exceed the limit, and replay keys are new exactly once', async () => {
    const counters = SharedCounterStore.create({ maxKeys: 64, workers: 2 });
    const replay = SharedReplayGuard.create({ enabled: true, maxEntries: 100_000, maxAgeMs: 60_000 });
    const run = (column: number) =>
      new Promise<{ breaches: number; acquired: number; fresh: number }>((resolve, reject) => {
        const w = new Worker(new URL('./fixtures/hammer-counters.ts', import.meta.url), {
          workerData: {
            counters: counters.buffer,
            replay: replay.buffer,
            column,
            rounds: 50_000,
            limit: 4,
            keys: 3,
          },
        });
        w.once('message', resolve);
        w.once('error', reject);
      });
    const results = await Promise.all([run(0), run(1)]);
    for (const r of results) {
      assert.equal(r.breaches, 0);
      assert.ok(r.acquired > 0);
    }
    assert.equal(results[0].fresh + results[1].fresh, 2000);
    assert.equal(counters.total(), 0);
    assert.equal(counters.size, 0);
  });
});
