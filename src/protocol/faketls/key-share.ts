/**
 * The server's key share in the fake ServerHello, made the way a real TLS 1.3 server makes it, so that
 * whoever parses it (a middlebox, a client fork) finds a well-formed answer for the group:
 * - X25519MLKEM768 (0x11ec): ML-KEM-768 ciphertext encapsulated to the client's encapsulation key (the first
 *   1184 bytes of its 1216-byte share), then a fresh X25519 public key: 1088 + 32 = 1120 bytes.
 * - X25519 (0x001d): a fresh X25519 public key.
 * - other classic groups: random bytes of the client's key length (nobody derives a key from them).
 * The shared secrets are thrown away: the fake handshake never encrypts with them.
 */
import { createPublicKey, encapsulate, generateKeyPairSync, randomBytes } from 'node:crypto';
import { GROUP_X25519, GROUP_X25519_MLKEM768 } from './client-hello.ts';

export const MLKEM768_ENCAPSULATION_KEY_LENGTH = 1184;
export const MLKEM768_CIPHERTEXT_LENGTH = 1088;
export const X25519_KEY_LENGTH = 32;
export const HYBRID_CLIENT_SHARE_LENGTH = MLKEM768_ENCAPSULATION_KEY_LENGTH + X25519_KEY_LENGTH;
export const HYBRID_SERVER_SHARE_LENGTH = MLKEM768_CIPHERTEXT_LENGTH + X25519_KEY_LENGTH;

export function x25519PublicKey(): Buffer {
  return generateKeyPairSync('x25519').publicKey.export({ format: 'raw-public' });
}

/** ML-KEM-768 ciphertext for a client's encapsulation key, or null when the key is not a valid one. */
export function mlKem768Ciphertext(encapsulationKey: Buffer): Buffer | null {
  if (encapsulationKey.length !== MLKEM768_ENCAPSULATION_KEY_LENGTH) return null;
  try {
    const key = createPublicKey({
      key: encapsulationKey,
      format: 'raw-public',
      asymmetricKeyType: 'ml-kem-768',
    });
    return encapsulate(key).ciphertext;
  } catch {
    // Coefficients out of range (FIPS 203 modulus check) or a key Node cannot read.
    return null;
  }
}

/** The server share for `group` answering the client's `clientKey`, or null when it cannot be made. */
export function serverKeyShare(group: number, clientKey: Buffer): Buffer | null {
  if (group === GROUP_X25519_MLKEM768) {
    if (clientKey.length !== HYBRID_CLIENT_SHARE_LENGTH) return null;
    const ciphertext = mlKem768Ciphertext(clientKey.subarray(0, MLKEM768_ENCAPSULATION_KEY_LENGTH));
    if (ciphertext === null) return null;
    return Buffer.concat([ciphertext, x25519PublicKey()]);
  }
  if (group === GROUP_X25519) return x25519PublicKey();
  return randomBytes(clientKey.length);
}
