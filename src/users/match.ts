/**
 * Finding which of many secrets opened an obfuscated2 header. The protocol carries no key id, so each
 * candidate has to be tried; a try here is the least work that tells: one SHA-256 (the read key), one AES
 * block in plain code (the keystream over bytes 48..63; a Node cipher object costs ten times more) and a look at the transport tag, without building the stream or
 * throwing an error for every secret that does not fit. The session then parses the header once, with the
 * secret found. The caller orders the candidates (the client address's last secret first).
 */
import { createHash } from 'node:crypto';
import { transportFromTag } from '../protocol/obfuscated2.ts';
import { aes256EncryptBlock } from './aes-block.ts';

const counterBlock = Buffer.alloc(16);
const keystream = Buffer.alloc(16);

/** Whether `secret` decrypts `header` (64 bytes) to one of the transport tags. */
export function headerMatches(header: Buffer, secret: Buffer): boolean {
  const key = createHash('sha256').update(header.subarray(8, 40)).update(secret).digest();
  // CTR block 3 (bytes 48..63) is AES(iv + 3), the IV a 128-bit big-endian counter.
  header.copy(counterBlock, 0, 40, 56);
  let carry = 3;
  for (let i = 15; i >= 0 && carry > 0; i--) {
    const v = counterBlock[i] + carry;
    counterBlock[i] = v & 0xff;
    carry = v >>> 8;
  }
  aes256EncryptBlock(key, counterBlock, 0, keystream);
  const tag = (header.readUInt32LE(56) ^ keystream.readUInt32LE(8)) >>> 0;
  return transportFromTag(tag) !== null;
}

/** The first of `hint` then `secrets` that opens `header`, or null. */
export function findHeaderSecret(
  header: Buffer,
  secrets: readonly Buffer[],
  hint: Buffer | null,
): Buffer | null {
  if (hint !== null && headerMatches(header, hint)) return hint;
  for (let i = 0; i < secrets.length; i++) {
    const s = secrets[i];
    if (s !== hint && headerMatches(header, s)) return s;
  }
  return null;
}
