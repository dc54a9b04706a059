/**
 * Anti-replay set shared by every worker thread: a handshake replayed on another worker is refused too.
 *
 * Two generations of an open-addressing hash set (linear probing) live in one SharedArrayBuffer. New keys go
 * into the current generation; a lookup checks both. When the current generation is full or older than half
 * the configured age, the older one is wiped and becomes current. So at most `maxEntries` fingerprints are
 * kept, and a key is remembered for at least half of `maxAgeMs` (and forgotten after at most `maxAgeMs`), or
 * for fewer keys' worth of time under a flood. A key seen again is moved into the current generation, like
 * the reference refreshes its timestamp.
 *
 * Entries are 64-bit fingerprints (two seeded hashes), not the keys: 8 bytes per slot, half the slots empty.
 */
import type { ReplayGuard } from '../session/types.ts';
import { breakLockOf, hashBytes, lock, nextPowerOfTwo, randomSeed, unlock } from './shared-memory.ts';

// Int32 header words.
const LOCK = 0;
const SEED_A = 1;
const SEED_B = 2;
const CURRENT = 3;
const COUNT_0 = 4; // COUNT_0 + generation
const CAPACITY = 6;
const MAX_PER_GENERATION = 7;
const ENABLED = 8;
// Float64 header words (byte offsets 48 and 56).
const F64_STARTED_AT = 6;
const F64_PERIOD_MS = 7;
const HEADER_BYTES = 64;

export interface SharedReplayOptions {
  enabled: boolean;
  maxEntries: number;
  maxAgeMs: number;
  /** Start of the first generation (tests). */
  now?: number;
}

export class SharedReplayGuard implements ReplayGuard {
  readonly buffer: SharedArrayBuffer;
  readonly #header: Int32Array;
  readonly #times: Float64Array;
  readonly #slots: Int32Array;
  readonly #mask: number;
  readonly #capacity: number;
  readonly #owner: number;

  /** Allocate a new shared set (main thread). */
  static create(opts: SharedReplayOptions): SharedReplayGuard {
    const maxPerGeneration = Math.max(16, Math.ceil(opts.maxEntries / 2));
    const capacity = nextPowerOfTwo(maxPerGeneration * 2);
    const buffer = new SharedArrayBuffer(HEADER_BYTES + capacity * 2 * 2 * 4);
    const header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    header[SEED_A] = randomSeed();
    header[SEED_B] = randomSeed() ^ 0x5bd1e995;
    header[CAPACITY] = capacity;
    header[MAX_PER_GENERATION] = maxPerGeneration;
    header[ENABLED] = opts.enabled ? 1 : 0;
    const times = new Float64Array(buffer, 0, HEADER_BYTES / 8);
    times[F64_STARTED_AT] = opts.now ?? Date.now();
    times[F64_PERIOD_MS] = Math.max(1, opts.maxAgeMs / 2);
    return new SharedReplayGuard(buffer, 0);
  }

  /** Open a view on a set created elsewhere. `owner` identifies the thread for lock recovery (> 0 in workers). */
  static attach(buffer: SharedArrayBuffer, owner: number): SharedReplayGuard {
    return new SharedReplayGuard(buffer, owner);
  }

  private constructor(buffer: SharedArrayBuffer, owner: number) {
    this.buffer = buffer;
    this.#header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.#times = new Float64Array(buffer, 0, HEADER_BYTES / 8);
    this.#capacity = this.#header[CAPACITY];
    this.#mask = this.#capacity - 1;
    this.#slots = new Int32Array(buffer, HEADER_BYTES, this.#capacity * 2 * 2);
    // Lock ids must be non-zero; the main thread uses a value no worker gets.
    this.#owner = owner > 0 ? owner : 0x7fffffff;
  }

  /** Hot reload: the table size is fixed at start, but the switch and the age apply at once. */
  configure(enabled: boolean, maxAgeMs: number): void {
    Atomics.store(this.#header, ENABLED, enabled ? 1 : 0);
    lock(this.#header, LOCK, this.#owner);
    this.#times[F64_PERIOD_MS] = Math.max(1, maxAgeMs / 2);
    unlock(this.#header, LOCK);
  }

  /** `now` is for tests; sessions call `seen(key)`. */
  seen(key: Buffer, now = Date.now()): boolean {
    if (Atomics.load(this.#header, ENABLED) === 0) return false;
    const h = this.#header;
    // Zero marks an empty slot, so the first word of a fingerprint is never zero.
    const a = hashBytes(key, h[SEED_A]) || 1;
    const b = hashBytes(key, h[SEED_B]);
    lock(h, LOCK, this.#owner);
    try {
      this.#rotateIfOld(now);
      const current = h[CURRENT];
      if (this.#find(current, a, b) >= 0) return true;
      const inOld = this.#find(1 - current, a, b) >= 0;
      this.#insert(current, a, b, now);
      return inOld;
    } finally {
      unlock(h, LOCK);
    }
  }

  /** Fingerprints held in both generations. */
  size(): number {
    return Atomics.load(this.#header, COUNT_0) + Atomics.load(this.#header, COUNT_0 + 1);
  }

  /** Release the lock if the given (dead) worker held it. */
  recoverLock(owner: number): boolean {
    return breakLockOf(this.#header, LOCK, owner);
  }

  #base(generation: number): number {
    return generation * this.#capacity * 2;
  }

  #find(generation: number, a: number, b: number): number {
    const slots = this.#slots;
    const base = this.#base(generation);
    let i = b & this.#mask;
    for (;;) {
      const at = base + i * 2;
      const first = slots[at];
      if (first === 0) return -1;
      if (first === a && slots[at + 1] === b) return i;
      i = (i + 1) & this.#mask;
    }
  }

  #insert(generation: number, a: number, b: number, now: number): void {
    const slots = this.#slots;
    const base = this.#base(generation);
    let i = b & this.#mask;
    while (slots[base + i * 2] !== 0) i = (i + 1) & this.#mask;
    slots[base + i * 2] = a;
    slots[base + i * 2 + 1] = b;
    const count = ++this.#header[COUNT_0 + generation];
    if (count >= this.#header[MAX_PER_GENERATION]) this.#rotate(now);
  }

  #rotateIfOld(now: number): void {
    const age = now - this.#times[F64_STARTED_AT];
    const period = this.#times[F64_PERIOD_MS];
    if (age < period) return;
    // Both generations expired: start over with an empty set.
    if (age >= 2 * period) this.#clear(this.#header[CURRENT]);
    this.#rotate(now);
  }

  #rotate(now: number): void {
    const next = 1 - this.#header[CURRENT];
    this.#clear(next);
    this.#header[CURRENT] = next;
    this.#times[F64_STARTED_AT] = now;
  }

  #clear(generation: number): void {
    const base = this.#base(generation);
    this.#slots.fill(0, base, base + this.#capacity * 2);
    this.#header[COUNT_0 + generation] = 0;
  }
}
