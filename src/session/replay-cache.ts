/**
 * Anti-replay memory for handshakes: remembers the keys of recent handshakes (48 header bytes for
 * obfuscated2, the ClientHello random for fake-TLS) with a bound on entries and on age.
 *
 * Layout: a Map from key to the ring slot holding its latest sighting, plus a ring of (key, time) in
 * arrival order. Eviction pops the oldest slot; a slot whose key was seen again later no longer owns the
 * map entry and is skipped. Lookups allocate only the string key. The ring grows by doubling up to
 * `maxEntries` so a large limit costs nothing until it is used.
 */
import type { ReplayConfig } from '../config/types.ts';
import type { ReplayGuard } from './types.ts';

const INITIAL_CAPACITY = 1024;

export interface ReplayCacheOptions {
  maxEntries: number;
  maxAgeMs: number;
  /** Clock in ms; injectable for tests. */
  now?: () => number;
}

export class ReplayCache implements ReplayGuard {
  private readonly index = new Map<string, number>();
  private keys: (string | undefined)[];
  private times: Float64Array;
  /** Oldest occupied slot. */
  private head = 0;
  /** Occupied slots (including superseded ones). */
  private count = 0;
  private maxEntries: number;
  private maxAgeMs: number;
  private readonly now: () => number;

  constructor(opts: ReplayCacheOptions) {
    this.maxEntries = Math.max(1, Math.floor(opts.maxEntries));
    this.maxAgeMs = opts.maxAgeMs;
    this.now = opts.now ?? Date.now;
    const cap = Math.min(INITIAL_CAPACITY, this.maxEntries);
    this.keys = new Array(cap);
    this.times = new Float64Array(cap);
  }

  /** Distinct keys currently remembered. */
  get size(): number {
    return this.index.size;
  }

  /** Apply new limits (hot reload); shrinking evicts the oldest entries at once. */
  configure(maxEntries: number, maxAgeMs: number): void {
    const next = Math.max(1, Math.floor(maxEntries));
    this.maxAgeMs = maxAgeMs;
    if (next === this.maxEntries) return;
    while (this.count > next) this.evictOldest();
    this.maxEntries = next;
    this.relayout(Math.min(Math.max(this.count, INITIAL_CAPACITY), next));
  }

  seen(key: Buffer): boolean {
    const now = this.now();
    this.expire(now);
    const k = key.toString('latin1');
    const had = this.index.has(k);
    // A replayed key is refreshed (moved to the newest slot) as the reference does: a censor repeating a
    // probe keeps it remembered.
    if (this.count === this.maxEntries) this.evictOldest();
    else if (this.count === this.keys.length) this.relayout(Math.min(this.keys.length * 2, this.maxEntries));
    const slot = (this.head + this.count) % this.keys.length;
    this.keys[slot] = k;
    this.times[slot] = now;
    this.count++;
    this.index.set(k, slot);
    return had;
  }

  clear(): void {
    this.index.clear();
    this.keys.fill(undefined);
    this.head = 0;
    this.count = 0;
  }

  private expire(now: number): void {
    const cutoff = now - this.maxAgeMs;
    while (this.count > 0 && this.times[this.head] <= cutoff) this.evictOldest();
  }

  private evictOldest(): void {
    const slot = this.head;
    const k = this.keys[slot]!;
    if (this.index.get(k) === slot) this.index.delete(k);
    this.keys[slot] = undefined;
    this.head = (slot + 1) % this.keys.length;
    this.count--;
  }

  /** Copy the live slots to fresh arrays of `capacity`, oldest first, and re-point the index. */
  private relayout(capacity: number): void {
    const keys: (string | undefined)[] = new Array(capacity);
    const times = new Float64Array(capacity);
    const len = this.keys.length;
    for (let i = 0; i < this.count; i++) {
      const from = (this.head + i) % len;
      const k = this.keys[from]!;
      keys[i] = k;
      times[i] = this.times[from];
      if (this.index.get(k) === from) this.index.set(k, i);
    }
    this.keys = keys;
    this.times = times;
    this.head = 0;
  }
}

/** A guard that remembers nothing (replay protection switched off). */
export const noReplayGuard: ReplayGuard = { seen: () => false };

export function createReplayGuard(cfg: ReplayConfig): ReplayGuard {
  if (!cfg.enabled) return noReplayGuard;
  return new ReplayCache({ maxEntries: cfg.maxEntries, maxAgeMs: cfg.maxAgeMs });
}
