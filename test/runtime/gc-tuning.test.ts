import assert from 'node:assert/strict';
import test from 'node:test';
import { relayAllocated, startHeapShrinker, tuneGarbageCollector } from '../../src/runtime/gc-tuning.ts';

test('relay allocation accounting runs young collections without disturbing the caller', () => {
  const kept = Buffer.from('still here');
  for (let i = 0; i < 8; i++) relayAllocated(16 * 1024 * 1024);
  relayAllocated(0);
  assert.equal(kept.toString(), 'still here');
});

test('GC tuning is an explicit call, safe to repeat', () => {
  tuneGarbageCollector();
  tuneGarbageCollector();
  const kept = Buffer.alloc(1024, 1);
  relayAllocated(16 * 1024 * 1024);
  assert.equal(kept[1023], 1);
});

test('the collector hook does not leave a global gc() behind', async () => {
  relayAllocated(64 * 1024 * 1024);
  const { runInNewContext } = await import('node:vm');
  assert.equal(runInNewContext('typeof gc'), 'undefined');
});

/** Full (mark-compact) collections seen by a PerformanceObserver while `body` runs. */
async function majorCollections(body: () => void | Promise<void>): Promise<number> {
  const { PerformanceObserver, constants } = await import('node:perf_hooks');
  let majors = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)
        majors++;
  });
  observer.observe({ entryTypes: ['gc'] });
  await body();
  // Entries are delivered asynchronously (setTimeout is mocked in the test below, setImmediate is not).
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  observer.disconnect();
  return majors;
}

test('the heap shrinker collects once a burst of connections is over, and not while they keep coming', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'setTimeout'] });
  let connections = 0;
  const shrinker = startHeapShrinker(() => connections);
  try {
    // The start-up collection.
    assert.ok((await majorCollections(() => t.mock.timers.tick(1000))) >= 1);
    // A burst: many connections in every interval, no collection from the shrinker.
    const during = await majorCollections(() => {
      for (let i = 0; i < 3; i++) {
        connections += 2000;
        t.mock.timers.tick(10_000);
      }
    });
    // Quiet again: one collection.
    const after = await majorCollections(() => t.mock.timers.tick(10_000));
    assert.ok(after >= 1, 'a full collection ran after the burst');
    // Still quiet, nothing new to give back: the shrinker does not collect again.
    const idle = await majorCollections(() => t.mock.timers.tick(30_000));
    assert.ok(idle <= during, 'no repeated collections while idle');
  } finally {
    shrinker.stop();
  }
});
