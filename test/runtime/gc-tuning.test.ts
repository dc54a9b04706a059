import assert from 'node:assert/strict';
import test from 'node:test';
import { relayAllocated } from '../../src/runtime/gc-tuning.ts';

test('relay allocation accounting runs young collections without disturbing the caller', () => {
  const kept = Buffer.from('still here');
  for (let i = 0; i < 8; i++) relayAllocated(16 * 1024 * 1024);
  relayAllocated(0);
  assert.equal(kept.toString(), 'still here');
});

test('the collector hook does not leave a global gc() behind', async () => {
  relayAllocated(64 * 1024 * 1024);
  const { runInNewContext } = await import('node:vm');
  assert.equal(runInNewContext('typeof gc'), 'undefined');
});
