import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatPolicyKey, PolicyKeyError } from '../../src/config/policy-keys.ts';
import type { PolicyKey } from '../../src/config/types.ts';
import { canonicalTableValue, keyValue, parsePeer } from '../../src/policy/keys.ts';
import type { PolicySubject } from '../../src/session/types.ts';

function value(key: PolicyKey, remoteAddress: string, tlsDomain: string | null = null): string | null {
  const subject: PolicySubject = { listener: 'main', remoteAddress, tlsDomain };
  return keyValue(key, subject, parsePeer(remoteAddress));
}

test('listener and tls_domain keys', () => {
  assert.equal(value({ kind: 'listener' }, '1.2.3.4'), 'main');
  assert.equal(value({ kind: 'tls_domain' }, '1.2.3.4', 'Example.COM'), 'example.com');
  assert.equal(
    value({ kind: 'tls_domain' }, '1.2.3.4', null),
    null,
    'non-TLS connection: key does not apply',
  );
});

test('client_ipv4 / client_ipv6 apply only to their family; mapped IPv4 counts as IPv4', () => {
  assert.equal(value({ kind: 'client_ipv4' }, '203.0.113.7'), '203.0.113.7');
  assert.equal(value({ kind: 'client_ipv4' }, '::ffff:203.0.113.7'), '203.0.113.7');
  assert.equal(value({ kind: 'client_ipv6' }, '::ffff:203.0.113.7'), null);
  assert.equal(value({ kind: 'client_ipv4' }, '2001:db8::1'), null);
  assert.equal(value({ kind: 'client_ipv6' }, '2001:DB8:0:0::1'), '2001:db8::1');
  assert.equal(value({ kind: 'client_ipv6' }, '::1'), '::1');
  assert.equal(value({ kind: 'client_ipv4' }, 'not-an-address'), null);
  assert.equal(value({ kind: 'client_ipv4' }, ''), null);
});

test('IPv4 subnets /8../32', () => {
  assert.equal(value({ kind: 'client_ipv4_subnet', bits: 24 }, '10.1.2.3'), '10.1.2.0/24');
  assert.equal(value({ kind: 'client_ipv4_subnet', bits: 20 }, '10.1.255.3'), '10.1.240.0/20');
  assert.equal(value({ kind: 'client_ipv4_subnet', bits: 8 }, '10.1.2.3'), '10.0.0.0/8');
  assert.equal(value({ kind: 'client_ipv4_subnet', bits: 32 }, '10.1.2.3'), '10.1.2.3/32');
  assert.equal(value({ kind: 'client_ipv4_subnet', bits: 24 }, '::ffff:10.1.2.3'), '10.1.2.0/24');
  assert.equal(value({ kind: 'client_ipv4_subnet', bits: 24 }, '2001:db8::1'), null);
  assert.equal(value({ kind: 'client_ipv4_subnet', bits: 4 }, '10.1.2.3'), null, 'out-of-range mask');
});

test('IPv6 subnets /32../128', () => {
  assert.equal(value({ kind: 'client_ipv6_subnet', bits: 64 }, '2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(value({ kind: 'client_ipv6_subnet', bits: 48 }, '2001:db8:1:2::9'), '2001:db8:1::/48');
  assert.equal(value({ kind: 'client_ipv6_subnet', bits: 36 }, '2001:db8:ffff::1'), '2001:db8:f000::/36');
  assert.equal(value({ kind: 'client_ipv6_subnet', bits: 128 }, '::1'), '::1/128');
  assert.equal(value({ kind: 'client_ipv6_subnet', bits: 64 }, '::ffff:10.1.2.3'), null);
  assert.equal(value({ kind: 'client_ipv6_subnet', bits: 64 }, '10.1.2.3'), null);
});

test('canonical table values match what the hot path computes', () => {
  const cases: Array<[PolicyKey, string, string]> = [
    [{ kind: 'client_ipv4' }, ' 203.0.113.7 ', '203.0.113.7'],
    [{ kind: 'client_ipv4' }, '::ffff:203.0.113.7', '203.0.113.7'],
    [{ kind: 'client_ipv6' }, '2001:DB8::0:1', '2001:db8::1'],
    [{ kind: 'client_ipv4_subnet', bits: 24 }, '10.1.2.3', '10.1.2.0/24'],
    [{ kind: 'client_ipv4_subnet', bits: 24 }, '10.1.2.0/24', '10.1.2.0/24'],
    [{ kind: 'client_ipv6_subnet', bits: 64 }, '2001:db8:1:2::7', '2001:db8:1:2::/64'],
    [{ kind: 'tls_domain' }, 'Google.COM', 'google.com'],
    [{ kind: 'listener' }, 'main', 'main'],
  ];
  for (const [key, input, expected] of cases) {
    assert.equal(canonicalTableValue(input, key), expected, `${formatPolicyKey(key)} ${input}`);
    if (key.kind !== 'tls_domain' && key.kind !== 'listener') {
      assert.equal(value(key, input.trim().split('/')[0]), expected);
    }
  }
  assert.equal(canonicalTableValue('1.2.3.4', null), '1.2.3.4');
  assert.equal(canonicalTableValue('10.9.8.7/16', null), '10.9.0.0/16');
  assert.equal(canonicalTableValue('Example.org', null), 'example.org');
});

test('canonical table values refuse input of the wrong kind', () => {
  const bad: Array<[PolicyKey | null, string]> = [
    [{ kind: 'client_ipv4' }, '2001:db8::1'],
    [{ kind: 'client_ipv4' }, '10.0.0.0/8'],
    [{ kind: 'client_ipv4' }, '10'],
    [{ kind: 'client_ipv4' }, 'example.com'],
    [{ kind: 'client_ipv6' }, '1.2.3.4'],
    [{ kind: 'client_ipv4_subnet', bits: 24 }, '10.0.0.0/16'],
    [{ kind: 'client_ipv6_subnet', bits: 64 }, '10.0.0.1'],
    [{ kind: 'tls_domain' }, 'not a domain'],
    [{ kind: 'listener' }, 'a b'],
    [null, ''],
    [null, '1.2.3.4/40'],
    [null, 'white space'],
  ];
  for (const [key, input] of bad) {
    assert.throws(
      () => canonicalTableValue(input, key),
      PolicyKeyError,
      `${key ? formatPolicyKey(key) : '-'} ${input}`,
    );
  }
});
