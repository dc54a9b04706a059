/**
 * Building blocks for state that several worker threads share through one SharedArrayBuffer: a spin lock and
 * seeded 32-bit hashes. Critical sections guarded by the lock are a handful of probes long and never throw, so
 * spinning (with a short timed wait after a while) is cheaper than any message round trip.
 */
import { randomBytes } from 'node:crypto';

/** Lock word value while free; otherwise it holds the owner's id (> 0) so a dead owner can be detected. */
const UNLOCKED = 0;
const SPINS_BEFORE_WAIT = 2000;

export function lock(words: Int32Array, index: number, owner: number): void {
  let spins = 0;
  while (Atomics.compareExchange(words, index, UNLOCKED, owner) !== UNLOCKED) {
    if (++spins >= SPINS_BEFORE_WAIT) {
      // Timed wait without notify: the holder never calls notify, we simply re-check after a few microseconds.
      Atomics.wait(words, index, Atomics.load(words, index), 0.05);
      spins = 0;
    }
  }
}

export function unlock(words: Int32Array, index: number): void {
  Atomics.store(words, index, UNLOCKED);
}

/** Free the lock if a thread that died still holds it (the supervisor calls this when a worker exits). */
export function breakLockOf(words: Int32Array, index: number, owner: number): boolean {
  return Atomics.compareExchange(words, index, owner, UNLOCKED) === owner;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

function mixBlock(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** MurmurHash3 (x86, 32-bit) of a byte string; the seed is random per shared table so hashes are not predictable. */
export function hashBytes(key: Uint8Array, seed: number): number {
  const len = key.length;
  const blocks = len & ~3;
  let h = seed | 0;
  for (let i = 0; i < blocks; i += 4) {
    h = mixBlock(h, key[i] | (key[i + 1] << 8) | (key[i + 2] << 16) | (key[i + 3] << 24));
  }
  const rest = len & 3;
  if (rest > 0) {
    let tail = key[blocks];
    if (rest > 1) tail |= key[blocks + 1] << 8;
    if (rest > 2) tail |= key[blocks + 2] << 16;
    tail = Math.imul(tail, 0xcc9e2d51);
    tail = (tail << 15) | (tail >>> 17);
    h ^= Math.imul(tail, 0x1b873593);
  }
  return fmix(h ^ len);
}

/** Same hash over UTF-16 code units, two per block, so string keys need no encoding step. */
export function hashString(key: string, seed: number): number {
  const len = key.length;
  const pairs = len & ~1;
  let h = seed | 0;
  for (let i = 0; i < pairs; i += 2) h = mixBlock(h, key.charCodeAt(i) | (key.charCodeAt(i + 1) << 16));
  if (len & 1) {
    let tail = key.charCodeAt(pairs);
    tail = Math.imul(tail, 0xcc9e2d51);
    tail = (tail << 15) | (tail >>> 17);
    h ^= Math.imul(tail, 0x1b873593);
  }
  return fmix(h ^ len);
}

export function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export function randomSeed(): number {
  return randomBytes(4).readInt32LE(0);
}
