/**
 * At most one log line per key and interval (e.g. one "DC 4 unreachable" every 10 s however many clients
 * hit it); the next line that passes says how many were left out meanwhile. Bounded in keys.
 */
export class LogLimiter {
  readonly #intervalMs: number;
  readonly #maxKeys: number;
  readonly #keys = new Map<string, { at: number; suppressed: number }>();

  constructor(intervalMs: number, maxKeys = 256) {
    this.#intervalMs = intervalMs;
    this.#maxKeys = maxKeys;
  }

  /** Null when this line is to be left out; else how many of this key were left out since the last one. */
  take(key: string, now = Date.now()): number | null {
    const entry = this.#keys.get(key);
    if (entry && now - entry.at < this.#intervalMs) {
      entry.suppressed++;
      return null;
    }
    const suppressed = entry?.suppressed ?? 0;
    if (!entry && this.#keys.size >= this.#maxKeys) this.#keys.clear();
    this.#keys.set(key, { at: now, suppressed: 0 });
    return suppressed;
  }
}
