import assert from 'node:assert/strict';
import { createPublicKey, decapsulate, generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  HYBRID_SERVER_SHARE_LENGTH,
  isMlKem768EncapsulationKey,
  mlKem768Ciphertext,
  pooledX25519Keys,
  serverKeyShare,
  X25519_POOL_KEYS,
  X25519_QUIET_MS,
  x25519PublicKey,
} from '../../../src/protocol/faketls/key-share.ts';

// Curve25519: y^2 = x^3 + 486662 x^2 + x over p = 2^255 - 19.
const P = 2n ** 255n - 19n;

function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

/** An X25519 public key as a real one is on the wire: below 2^255, and the x of a point on the curve. */
function looksLikeX25519Key(key: Buffer): boolean {
  if (key.length !== 32 || (key[31]! & 0x80) !== 0) return false;
  const x = BigInt(`0x${Buffer.from(key).reverse().toString('hex')}`);
  if (x >= P) return false;
  const rhs = (((x * x * x) % P) + ((486662n * x * x) % P) + x) % P;
  return rhs === 0n || modPow(rhs, (P - 1n) / 2n, P) === 1n;
}

test('X25519MLKEM768: a ciphertext of the form the client decapsulates, then an X25519 key', () => {
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

test('the X25519 half is a real key, on the curve, never sent twice, also once the pool runs dry', async () => {
  const seen = new Set<string>();
  // More than the pool holds, taken without a pause: made on the spot (the pool fills only in quiet spells).
  for (let i = 0; i < X25519_POOL_KEYS + 64; i++) {
    const key = x25519PublicKey();
    assert.ok(looksLikeX25519Key(key), key.toString('hex'));
    seen.add(key.toString('hex'));
  }
  assert.equal(seen.size, X25519_POOL_KEYS + 64);
  const { publicKey } = generateKeyPairSync('ml-kem-768');
  const clientShare = Buffer.concat([publicKey.export({ format: 'raw-public' }) as Buffer, Buffer.alloc(32, 9)]);
  for (let i = 0; i < 64; i++) {
    const share = serverKeyShare(0x11ec, clientShare)!;
    const x = share.subarray(1088);
    assert.ok(looksLikeX25519Key(x));
    assert.ok(!seen.has(x.toString('hex')));
    seen.add(x.toString('hex'));
  }
  // The pool refills itself once no key was taken for a while.
  for (let i = 0; i < 400 && pooledX25519Keys() < X25519_POOL_KEYS; i++)
    await new Promise((r) => setTimeout(r, X25519_QUIET_MS / 10));
  assert.equal(pooledX25519Keys(), X25519_POOL_KEYS);
  for (let i = 0; i < 64; i++) {
    const key = x25519PublicKey();
    assert.ok(looksLikeX25519Key(key));
    assert.ok(!seen.has(key.toString('hex')));
    seen.add(key.toString('hex'));
  }
  assert.equal(pooledX25519Keys(), X25519_POOL_KEYS - 64);
});

test('the encapsulation-key check agrees with the one Node does', () => {
  const { publicKey } = generateKeyPairSync('ml-kem-768');
  const ek = publicKey.export({ format: 'raw-public' }) as Buffer;
  assert.ok(isMlKem768EncapsulationKey(ek));
  fc.assert(
    fc.property(fc.nat(1151), fc.nat(255), (at, value) => {
      const key = Buffer.from(ek);
      key[at] = value;
      let nodeSays = true;
      try {
        createPublicKey({ key, format: 'raw-public', asymmetricKeyType: 'ml-kem-768' });
      } catch {
        nodeSays = false;
      }
      assert.equal(isMlKem768EncapsulationKey(key), nodeSays);
    }),
    { numRuns: 200 },
  );
});
