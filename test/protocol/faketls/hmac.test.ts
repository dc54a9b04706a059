import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { HMAC_PAD_LENGTH, hmacSha256Padded } from '../../../src/protocol/faketls/hmac.ts';

function padded(message: Uint8Array): Buffer {
  const b = Buffer.alloc(HMAC_PAD_LENGTH + message.length, 0xee);
  Buffer.from(message).copy(b, HMAC_PAD_LENGTH);
  return b;
}

test('equals HMAC-SHA256 for any key and message, and writes only the pad room', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 100 }),
      fc.uint8Array({ minLength: 0, maxLength: 5000 }),
      (key, message) => {
        const secret = Buffer.from(key);
        const input = padded(message);
        const want = createHmac('sha256', secret).update(message).digest();
        assert.deepEqual(hmacSha256Padded(secret, input), want);
        assert.deepEqual(input.subarray(HMAC_PAD_LENGTH), Buffer.from(message));
        // Twice with the same secret object: the cached pads give the same answer.
        assert.deepEqual(hmacSha256Padded(secret, padded(message)), want);
      },
    ),
  );
});

test('RFC 4231 test case 2', () => {
  const digest = hmacSha256Padded(Buffer.from('Jefe'), padded(Buffer.from('what do ya want for nothing?')));
  assert.equal(digest.toString('hex'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
});

test('digests of different secrets over one buffer do not mix', () => {
  const a = Buffer.alloc(16, 1);
  const b = Buffer.alloc(16, 2);
  const input = padded(Buffer.from('one hello, two candidate secrets'));
  const first = hmacSha256Padded(a, input);
  const second = hmacSha256Padded(b, input);
  assert.deepEqual(first, createHmac('sha256', a).update(input.subarray(HMAC_PAD_LENGTH)).digest());
  assert.deepEqual(second, createHmac('sha256', b).update(input.subarray(HMAC_PAD_LENGTH)).digest());
});
