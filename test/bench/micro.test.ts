/** Keeps the per-layer micro-benchmarks from rotting: every layer gives a decode and an encode figure. */
import assert from 'node:assert/strict';
import test from 'node:test';
import { formatMicro, runMicro } from '../../bench/micro/layers.ts';

test('bench/micro/layers.ts measures every layer both ways', () => {
  const rows = runMicro(1);
  const layers = ['tls records', 'obfuscated2 ctr', 'abridged', 'intermediate', 'padded', 'full', 'cbc'];
  for (const layer of layers) {
    for (const direction of ['decode', 'encode'] as const) {
      const row = rows.find((r) => r.layer === layer && r.direction === direction);
      assert.ok(row && row.mbPerSecond > 0, `${layer} ${direction}`);
    }
  }
  assert.match(formatMicro(rows), /\| full \| \d+ \| \d+ \|/);
});

test('bench/micro/handshake.ts measures every handshake step', async () => {
  const { formatHandshakeMicro, runHandshakeMicro } = await import('../../bench/micro/handshake.ts');
  const rows = runHandshakeMicro(1);
  assert.equal(rows.length, 7);
  for (const r of rows) assert.ok(r.usPerCall > 0, r.step);
  assert.match(formatHandshakeMicro(rows), /\| obfuscated2 header \(client\) \| [\d.]+ \|/);
});
