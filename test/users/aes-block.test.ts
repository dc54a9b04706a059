import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { aes256EncryptBlock } from '../../src/users/aes-block.ts';

describe('users: one AES-256 block', () => {
  it('matches the FIPS-197 example', () => {
    const key = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
    const out = Buffer.alloc(16);
    aes256EncryptBlock(key, Buffer.from('00112233445566778899aabbccddeeff', 'hex'), 0, out);
    assert.equal(out.toString('hex'), '8ea2b7ca516745bfeafc49904b496089');
  });

  it("matches Node's aes-256-ecb on random keys and blocks", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        (k, b) => {
          const key = Buffer.from(k);
          const block = Buffer.from(b);
          const out = Buffer.alloc(16);
          aes256EncryptBlock(key, block, 0, out);
          const want = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false).update(block);
          assert.equal(out.toString('hex'), want.toString('hex'));
        },
      ),
      { numRuns: 500 },
    );
  });
});
