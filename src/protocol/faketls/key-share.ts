/**
 * The server's key share in the fake ServerHello, shaped the way a real TLS 1.3 server's is, so that whoever
 * parses it (a middlebox, a client fork) finds a well-formed answer for the group:
 * - X25519MLKEM768 (0x11ec): a 1088-byte ML-KEM-768 ciphertext, then an X25519 public key: 1120 bytes.
 * - X25519 (0x001d): an X25519 public key.
 * - other classic groups: random bytes of the client's key length (nobody derives a key from them).
 *
 * Nobody ever derives a key from the answer: only a client holding the secret gets it (everyone else is
 * fronted to the cover site), the apps check nothing in it but the lengths, and the records after it are
 * random bytes whatever the key exchange would give. So what matters is only what a passive observer can
 * test, and the answer is made to pass those tests cheaply:
 * - The ML-KEM ciphertext is random bytes. Every 1088-byte string decodes as a compressed ML-KEM-768
 *   ciphertext (FIPS 203 ByteDecode of 10- and 4-bit fields accepts any input) and a real one is
 *   pseudorandom under MLWE, so none is told apart from the other. A real encapsulation cost ~65 µs of CPU
 *   per session (key parsing with its checks, then the encapsulation).
 * - The client's encapsulation key still gets FIPS 203's modulus check (every 12-bit coefficient below q): a
 *   server refuses a key failing it, and so does this one (the caller answers the classic group then).
 * - The X25519 key must be a real one: a random 32-byte string has its top bit set half the time, lies on the
 *   twist half the time, and is outside the prime-order subgroup most of the rest, each testable from the
 *   wire. Each key is sent once. Keys are made ahead in quiet spells (no key taken for a while), so a burst
 *   after a quiet time finds them ready; under sustained load the pool is empty and each key is made on the
 *   spot. Both are the same synchronous call: making them on libuv's thread pool cost half as much again in
 *   CPU (the job's set-up and hand-offs, ~26 µs on the JS thread alone against ~45 µs for the whole key made
 *   here), which a busy proxy pays out of the same cores.
 */
import { generateKeyPairSync } from 'node:crypto';
import { fillRandom } from '../random-pool.ts';
import { GROUP_X25519, GROUP_X25519_MLKEM768 } from './client-hello.ts';

export const MLKEM768_ENCAPSULATION_KEY_LENGTH = 1184;
export const MLKEM768_CIPHERTEXT_LENGTH = 1088;
export const X25519_KEY_LENGTH = 32;
export const HYBRID_CLIENT_SHARE_LENGTH = MLKEM768_ENCAPSULATION_KEY_LENGTH + X25519_KEY_LENGTH;
export const HYBRID_SERVER_SHARE_LENGTH = MLKEM768_CIPHERTEXT_LENGTH + X25519_KEY_LENGTH;

/** ML-KEM's modulus. */
const MLKEM_Q = 3329;
/** The encoded vector t̂ of an ML-KEM-768 encapsulation key: 3 × 256 coefficients of 12 bits. */
const MLKEM768_T_BYTES = 1152;

/** Public keys made ahead (each handed out once). */
export const X25519_POOL_KEYS = 512;
/** The pool is refilled once no key was taken for this long. */
export const X25519_QUIET_MS = 250;
/** Keys made per refill step (under a millisecond of CPU), and the pause between steps. */
const REFILL_BATCH = 16;
const REFILL_STEP_MS = 5;

const pool = Buffer.allocUnsafeSlow(X25519_POOL_KEYS * X25519_KEY_LENGTH);
let pooled = 0;
/** A key was taken since the refill timer was last armed: the proxy is not quiet. */
let takenSinceArmed = false;
let refillTimer: NodeJS.Timeout | null = null;

function makeX25519PublicKey(target: Buffer, at: number): void {
  generateKeyPairSync('x25519').publicKey.export({ format: 'raw-public' }).copy(target, at);
}

function armRefill(delayMs: number): void {
  if (refillTimer !== null) return;
  takenSinceArmed = false;
  refillTimer = setTimeout(refillStep, delayMs);
  refillTimer.unref();
}

function refillStep(): void {
  refillTimer = null;
  if (takenSinceArmed) {
    armRefill(X25519_QUIET_MS);
    return;
  }
  for (let n = 0; n < REFILL_BATCH && pooled < X25519_POOL_KEYS; n++) {
    makeX25519PublicKey(pool, pooled * X25519_KEY_LENGTH);
    pooled++;
  }
  if (pooled < X25519_POOL_KEYS) armRefill(REFILL_STEP_MS);
}

/** Write a fresh X25519 public key (one never sent before) at target[at, at + 32). */
export function writeX25519PublicKey(target: Buffer, at: number): void {
  takenSinceArmed = true;
  if (pooled > 0) {
    pooled--;
    const from = pooled * X25519_KEY_LENGTH;
    pool.copy(target, at, from, from + X25519_KEY_LENGTH);
    // Each key goes out once: its slot is refilled with a new one, never read again as it is.
    pool.fill(0, from, from + X25519_KEY_LENGTH);
  } else {
    makeX25519PublicKey(target, at);
  }
  armRefill(X25519_QUIET_MS);
}

export function x25519PublicKey(): Buffer {
  const key = Buffer.allocUnsafe(X25519_KEY_LENGTH);
  writeX25519PublicKey(key, 0);
  return key;
}

/** Keys ready in this thread's pool (for tests and the bench). */
export function pooledX25519Keys(): number {
  return pooled;
}

/** FIPS 203's input check of an ML-KEM-768 encapsulation key: the length, and every coefficient below q. */
export function isMlKem768EncapsulationKey(key: Uint8Array): boolean {
  if (key.length !== MLKEM768_ENCAPSULATION_KEY_LENGTH) return false;
  for (let i = 0; i < MLKEM768_T_BYTES; i += 3) {
    const b1 = key[i + 1]!;
    if ((key[i]! | ((b1 & 0x0f) << 8)) >= MLKEM_Q) return false;
    if (((b1 >> 4) | (key[i + 2]! << 4)) >= MLKEM_Q) return false;
  }
  return true;
}

/**
 * An ML-KEM-768 ciphertext as the answer to a client's encapsulation key (random bytes, see above), or null
 * when the key is not a valid one.
 */
export function mlKem768Ciphertext(encapsulationKey: Buffer): Buffer | null {
  if (!isMlKem768EncapsulationKey(encapsulationKey)) return null;
  const ciphertext = Buffer.allocUnsafe(MLKEM768_CIPHERTEXT_LENGTH);
  fillRandom(ciphertext);
  return ciphertext;
}

/** The server share for `group` answering the client's `clientKey`, or null when it cannot be made. */
export function serverKeyShare(group: number, clientKey: Buffer): Buffer | null {
  if (group === GROUP_X25519_MLKEM768) {
    if (clientKey.length !== HYBRID_CLIENT_SHARE_LENGTH) return null;
    if (!isMlKem768EncapsulationKey(clientKey.subarray(0, MLKEM768_ENCAPSULATION_KEY_LENGTH))) return null;
    const share = Buffer.allocUnsafe(HYBRID_SERVER_SHARE_LENGTH);
    fillRandom(share, 0, MLKEM768_CIPHERTEXT_LENGTH);
    writeX25519PublicKey(share, MLKEM768_CIPHERTEXT_LENGTH);
    return share;
  }
  if (group === GROUP_X25519) return x25519PublicKey();
  const share = Buffer.allocUnsafe(clientKey.length);
  fillRandom(share);
  return share;
}
