import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseHostPort } from '../../src/config/schema.ts';
import { formatHostPort } from '../../src/runtime/host-port.ts';

test('formatHostPort brackets an IPv6 host and round-trips through the config parser', () => {
  assert.equal(formatHostPort({ host: '127.0.0.1', port: 443 }), '127.0.0.1:443');
  assert.equal(formatHostPort({ host: '::1', port: 8443 }), '[::1]:8443');
  assert.equal(formatHostPort({ host: 'example.test', port: 80 }), 'example.test:80');
  for (const a of [
    { host: '127.0.0.1', port: 443 },
    { host: '::1', port: 8443 },
  ]) {
    assert.deepEqual(parseHostPort(formatHostPort(a)), a);
  }
});
