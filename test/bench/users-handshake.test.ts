/** Keeps bench/users-handshake.ts from rotting: tiny sizes, figures come out (never how good they are). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { measureUserHandshakes } from '../../bench/users-handshake.ts';

test('the users handshake figure runs for every protocol and way', () => {
  const rows = measureUserHandshakes([1, 20], 200);
  assert.equal(rows.length, 2 * 6);
  for (const r of rows) assert.ok(r.cpuUsPerSession > 0, JSON.stringify(r));
});
