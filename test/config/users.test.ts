import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isValidUserName, parseExpires, QUOTA_PERIODS } from '../../src/config/users.ts';

test('user names: 1 to 64 of letters, digits and _ . @ -', () => {
  for (const ok of ['alice', 'a', 'bob.smith@example', 'x_y-z', 'A'.repeat(64)])
    assert.ok(isValidUserName(ok), ok);
  for (const bad of ['', 'A'.repeat(65), 'with space', 'slash/name', 'ünï', 'tab\t']) {
    assert.ok(!isValidUserName(bad), JSON.stringify(bad));
  }
});

test('expiry: RFC 3339 times, a date alone meaning midnight UTC, TOML dates; anything else is null', () => {
  assert.equal(parseExpires('2027-01-31'), Date.UTC(2027, 0, 31));
  assert.equal(parseExpires('2027-01-31T12:30:00Z'), Date.UTC(2027, 0, 31, 12, 30));
  assert.equal(parseExpires('2027-01-31T12:30:00+02:00'), Date.UTC(2027, 0, 31, 10, 30));
  assert.equal(parseExpires(' 2027-01-31 '), Date.UTC(2027, 0, 31));
  assert.equal(parseExpires(new Date(Date.UTC(2027, 5, 1))), Date.UTC(2027, 5, 1));
  for (const bad of ['2027-13-01', '31.01.2027', '2027-01-31T12:30', 'tomorrow', '', 20270131, null]) {
    assert.equal(parseExpires(bad), null, String(bad));
  }
  assert.equal(parseExpires(new Date(Number.NaN)), null);
});

test('the quota period names', () => {
  assert.deepEqual(QUOTA_PERIODS, ['total', 'daily', 'weekly', 'monthly']);
});
