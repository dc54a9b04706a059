/**
 * Concurrent-connection counters for `max_connections` rules. The engine only talks to this interface so a
 * multi-worker deployment can swap in a shared-memory store; the Map version serves a single process.
 */
export interface CounterStore {
  /** Increment `key` unless that would take it above `limit`; true when the slot was taken. */
  tryAcquire(key: string, limit: number): boolean;
  /** Give one slot back (never below zero). */
  release(key: string): void;
  get(key: string): number;
}

/**
 * A store that may live in another process (worker processes ask the primary): acquiring may then answer
 * with a Promise; releasing stays fire-and-forget. Every CounterStore is one, answering synchronously.
 */
export interface RemoteCounterStore {
  tryAcquire(key: string, limit: number): boolean | Promise<boolean>;
  release(key: string): void;
  get(key: string): number;
}

export class LocalCounterStore implements CounterStore {
  readonly #counts = new Map<string, number>();

  tryAcquire(key: string, limit: number): boolean {
    const current = this.#counts.get(key) ?? 0;
    if (current >= limit) return false;
    this.#counts.set(key, current + 1);
    return true;
  }

  release(key: string): void {
    const current = this.#counts.get(key);
    if (current === undefined) return;
    // Empty counters are dropped so a stream of distinct client addresses does not grow the map forever.
    if (current <= 1) this.#counts.delete(key);
    else this.#counts.set(key, current - 1);
  }

  get(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Number of non-zero counters (tests use it to prove nothing leaked). */
  get size(): number {
    return this.#counts.size;
  }

  /** Sum of all counters. */
  total(): number {
    let sum = 0;
    for (const n of this.#counts.values()) sum += n;
    return sum;
  }
}
