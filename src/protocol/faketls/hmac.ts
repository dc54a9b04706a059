/**
 * HMAC-SHA256 (RFC 2104) for the fake-TLS digests, computed as two one-shot SHA-256 calls over buffers the
 * caller lays out with room for the key pad in front of the message. Node's Hmac object costs more to set up
 * (a JS stream object and a native context per digest) than hashing a 2 KiB hello does; the key pads are
 * derived once per secret.
 */
import { hash } from 'node:crypto';

/** SHA-256 block size: the key pad that goes in front of the message. */
export const HMAC_PAD_LENGTH = 64;
const DIGEST_LENGTH = 32;

interface KeyPads {
  inner: Buffer;
  outer: Buffer;
}

const padsBySecret = new WeakMap<Buffer, KeyPads>();

function padsOf(secret: Buffer): KeyPads {
  let pads = padsBySecret.get(secret);
  if (pads === undefined) {
    // Keys longer than a block are hashed first (RFC 2104 §2); proxy secrets are 16 bytes.
    const key = secret.length > HMAC_PAD_LENGTH ? (hash('sha256', secret, 'buffer') as Buffer) : secret;
    const inner = Buffer.alloc(HMAC_PAD_LENGTH, 0x36);
    const outer = Buffer.alloc(HMAC_PAD_LENGTH, 0x5c);
    for (let i = 0; i < key.length; i++) {
      inner[i] ^= key[i];
      outer[i] ^= key[i];
    }
    pads = { inner, outer };
    padsBySecret.set(secret, pads);
  }
  return pads;
}

/** The outer hash's input: outer key pad ‖ inner digest (hashing is synchronous, so one buffer serves all). */
const outerInput = Buffer.allocUnsafeSlow(HMAC_PAD_LENGTH + DIGEST_LENGTH);

/**
 * HMAC-SHA256(secret, padded[64..]). The first 64 bytes of `padded` are scratch: they are overwritten with the
 * key's inner pad. Returns a fresh 32-byte buffer.
 */
export function hmacSha256Padded(secret: Buffer, padded: Buffer): Buffer {
  const pads = padsOf(secret);
  pads.inner.copy(padded, 0);
  const inner = hash('sha256', padded, 'buffer') as Buffer;
  pads.outer.copy(outerInput, 0);
  inner.copy(outerInput, HMAC_PAD_LENGTH);
  return hash('sha256', outerInput, 'buffer') as Buffer;
}
