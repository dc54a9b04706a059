import assert from 'node:assert/strict';
import { decapsulate, generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  HYBRID_SERVER_SHARE_LENGTH,
  mlKem768Ciphertext,
  serverKeyShare,
} from '../../../src/protocol/faketls/key-share.ts';

test('X25519MLKEM768: the ciphertext is a real encapsulation the client decapsulates', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ml-kem-768');
  const ek = publicKey.export({ format: 'raw-public' }) as Buffer;
  const clientShare = Buffer.concat([ek, Buffer.alloc(32, 9)]);
  const share = serverKeyShare(0x11ec, clientShare);
  assert.ok(share !== null);
  assert.equal(share.length, HYBRID_SERVER_SHARE_LENGTH);
  // Decapsulation with the client's key gives a 32-byte secret (ML-KEM never fails; this proves the format).
  const secret = decapsulate(privateKey, share.subarray(0, 1088));
  assert.equal(secret.length, 32);
  // Two answers never repeat (fresh randomness each time).
  assert.notDeepEqual(serverKeyShare(0x11ec, clientShare), share);
});

test('a share that is not a valid ML-KEM key gives null (the caller answers with the classic group)', () => {
  assert.equal(mlKem768Ciphertext(Buffer.alloc(1184, 0xff)), null);
  assert.equal(serverKeyShare(0x11ec, Buffer.alloc(100)), null);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 1300 }), (bytes) => {
      const r = serverKeyShare(0x11ec, Buffer.from(bytes));
      assert.ok(r === null || r.length === HYBRID_SERVER_SHARE_LENGTH);
    }),
    { numRuns: 50 },
  );
  assert.equal(serverKeyShare(0x001d, Buffer.alloc(32))?.length, 32);
  assert.equal(serverKeyShare(0x0017, Buffer.alloc(65))?.length, 65);
});
