import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatPolicyKey, PolicyKeyError, parsePolicyKey } from '../../src/config/policy-keys.ts';

test('parsePolicyKey / formatPolicyKey round-trip and reject bad input', () => {
  for (const text of [
    'listener',
    'client_ipv4',
    'client_ipv6',
    'tls_domain',
    'client_ipv4/24',
    'client_ipv6/64',
  ]) {
    assert.equal(formatPolicyKey(parsePolicyKey(text)), text);
  }
  assert.deepEqual(parsePolicyKey('client_ipv4/8'), { kind: 'client_ipv4_subnet', bits: 8 });
  for (const bad of [
    'port_name',
    'client_ipv4/7',
    'client_ipv4/33',
    'client_ipv6/31',
    'client_ipv6/129',
    'tls_domain/3',
    'client_ipv4/x',
    '',
  ]) {
    assert.throws(() => parsePolicyKey(bad), PolicyKeyError, bad);
  }
});
