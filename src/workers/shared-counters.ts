/**
 * `max_connections` counters shared by every worker thread (implements the policy engine's CounterStore).
 *
 * One open-addressing table (linear probing, backward-shift deletion) in a SharedArrayBuffer. A slot holds
 * the key's 64-bit fingerprint, the total, and one column per worker with that worker's share of the total,
 * so when a worker dies the supervisor can give back exactly what its sessions held (`releaseAllOf`).
 * Counters that drop to zero are removed, so a stream of distinct client addresses does not fill the table.
 * If the table is ever full, new keys are admitted without being counted (fail open, see `overflows`).
 */
import type { CounterStore } from '../policy/counters.ts';
import { breakLockOf, hashString, lock, nextPowerOfTwo, randomSeed, unlock } from './shared-memory.ts';

const LOCK = 0;
const SEED_A = 1;
const SEED_B = 2;
const CAPACITY = 3;
const WORKERS = 4;
const USED = 5;
const OVERFLOWS = 6;
const HEADER_WORDS = 8;
// Slot layout: [fingerprint a, fingerprint b, total, worker 0 share, worker 1 share, ...].
const FP_A = 0;
const FP_B = 1;
const TOTAL = 2;
const SHARES = 3;

export interface SharedCounterOptions {
  /** Distinct keys held at once (e.g. client addresses with a live connection). */
  maxKeys: number;
  workers: number;
}

export class SharedCounterStore implements CounterStore {
  readonly buffer: SharedArrayBuffer;
  readonly #header: Int32Array;
  readonly #slots: Int32Array;
  readonly #capacity: number;
  readonly #mask: number;
  readonly #width: number;
  readonly #limitKeys: number;
  /** Column of the worker using this view, or -1 for a read-only view (main thread). */
  readonly #column: number;
  readonly #owner: number;

  static create(opts: SharedCounterOptions): SharedCounterStore {
    const capacity = nextPowerOfTwo(Math.max(16, opts.maxKeys * 2));
    const width = SHARES + opts.workers;
    const buffer = new SharedArrayBuffer((HEADER_WORDS + capacity * width) * 4);
    const header = new Int32Array(buffer, 0, HEADER_WORDS);
    header[SEED_A] = randomSeed();
    header[SEED_B] = randomSeed() ^ 0x27d4eb2f;
    header[CAPACITY] = capacity;
    header[WORKERS] = opts.workers;
    return new SharedCounterStore(buffer, -1);
  }

  /** View for worker `column` (0-based; its lock id is column + 1). */
  static attach(buffer: SharedArrayBuffer, column: number): SharedCounterStore {
    return new SharedCounterStore(buffer, column);
  }

  private constructor(buffer: SharedArrayBuffer, column: number) {
    this.buffer = buffer;
    this.#header = new Int32Array(buffer, 0, HEADER_WORDS);
    this.#capacity = this.#header[CAPACITY];
    this.#mask = this.#capacity - 1;
    this.#width = SHARES + this.#header[WORKERS];
    this.#slots = new Int32Array(buffer, HEADER_WORDS * 4, this.#capacity * this.#width);
    // Keep a quarter of the slots empty so probe chains stay short.
    this.#limitKeys = Math.floor((this.#capacity * 3) / 4);
    if (column >= this.#header[WORKERS]) throw new RangeError(`worker column ${column} out of range`);
    this.#column = column;
    this.#owner = column >= 0 ? column + 1 : 0x7fffffff;
  }

  tryAcquire(key: string, limit: number): boolean {
    const [a, b] = this.#fingerprint(key);
    const h = this.#header;
    lock(h, LOCK, this.#owner);
    try {
      let at = this.#find(a, b);
      if (at < 0) {
        if (limit <= 0) return false;
        if (h[USED] >= this.#limitKeys) {
          h[OVERFLOWS]++;
          return true;
        }
        at = this.#claim(a, b);
      } else if (this.#slots[at + TOTAL] >= limit) {
        return false;
      }
      this.#slots[at + TOTAL]++;
      if (this.#column >= 0) this.#slots[at + SHARES + this.#column]++;
      return true;
    } finally {
      unlock(h, LOCK);
    }
  }

  release(key: string): void {
    const [a, b] = this.#fingerprint(key);
    lock(this.#header, LOCK, this.#owner);
    try {
      const at = this.#find(a, b);
      if (at < 0) return;
      const slots = this.#slots;
      if (this.#column >= 0) {
        // Only give back what this worker took: a stray release must not eat another worker's share.
        if (slots[at + SHARES + this.#column] <= 0) return;
        slots[at + SHARES + this.#column]--;
      }
      if (--slots[at + TOTAL] <= 0) this.#remove(at);
    } finally {
      unlock(this.#header, LOCK);
    }
  }

  get(key: string): number {
    const [a, b] = this.#fingerprint(key);
    lock(this.#header, LOCK, this.#owner);
    try {
      const at = this.#find(a, b);
      return at < 0 ? 0 : this.#slots[at + TOTAL];
    } finally {
      unlock(this.#header, LOCK);
    }
  }

  /** Distinct keys currently counted. */
  get size(): number {
    return Atomics.load(this.#header, USED);
  }

  /** Admissions let through uncounted because the table was full. */
  get overflows(): number {
    return Atomics.load(this.#header, OVERFLOWS);
  }

  /** Sum of every counter (tests use it to prove nothing leaked). */
  total(): number {
    lock(this.#header, LOCK, this.#owner);
    try {
      let sum = 0;
      for (let at = 0; at < this.#slots.length; at += this.#width) sum += this.#slots[at + TOTAL];
      return sum;
    } finally {
      unlock(this.#header, LOCK);
    }
  }

  /**
   * A worker died: subtract everything its sessions still held, and free the lock if it died holding it.
   * Called by the supervisor before the replacement worker starts.
   */
  releaseAllOf(column: number): number {
    breakLockOf(this.#header, LOCK, column + 1);
    lock(this.#header, LOCK, this.#owner);
    try {
      const slots = this.#slots;
      let released = 0;
      let at = 0;
      while (at < slots.length) {
        const share = slots[at + SHARES + column];
        if (slots[at + FP_A] !== 0 && share > 0) {
          slots[at + SHARES + column] = 0;
          released += share;
          slots[at + TOTAL] -= share;
          if (slots[at + TOTAL] <= 0) {
            // Backward shift may move a not-yet-visited slot into this one: look at the same index again.
            this.#remove(at);
            continue;
          }
        }
        at += this.#width;
      }
      return released;
    } finally {
      unlock(this.#header, LOCK);
    }
  }

  #fingerprint(key: string): [number, number] {
    const h = this.#header;
    return [hashString(key, h[SEED_A]) || 1, hashString(key, h[SEED_B])];
  }

  #find(a: number, b: number): number {
    const slots = this.#slots;
    let i = b & this.#mask;
    for (;;) {
      const at = i * this.#width;
      const first = slots[at + FP_A];
      if (first === 0) return -1;
      if (first === a && slots[at + FP_B] === b) return at;
      i = (i + 1) & this.#mask;
    }
  }

  #claim(a: number, b: number): number {
    const slots = this.#slots;
    let i = b & this.#mask;
    while (slots[i * this.#width + FP_A] !== 0) i = (i + 1) & this.#mask;
    const at = i * this.#width;
    slots[at + FP_A] = a;
    slots[at + FP_B] = b;
    this.#header[USED]++;
    return at;
  }

  /** Backward-shift deletion: keeps every remaining key reachable from its home slot without tombstones. */
  #remove(at: number): void {
    const slots = this.#slots;
    const width = this.#width;
    const mask = this.#mask;
    let hole = at / width;
    let i = hole;
    for (;;) {
      i = (i + 1) & mask;
      const from = i * width;
      if (slots[from + FP_A] === 0) break;
      const home = slots[from + FP_B] & mask;
      // Move the entry into the hole unless its home lies cyclically within (hole, i].
      const between = hole <= i ? home > hole && home <= i : home > hole || home <= i;
      if (!between) {
        slots.copyWithin(hole * width, from, from + width);
        hole = i;
      }
    }
    slots.fill(0, hole * width, hole * width + width);
    this.#header[USED]--;
  }
}
