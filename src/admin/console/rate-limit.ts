/**
 * Wrong admin tokens at the console's sign-in, counted per source address: after `maxFailures` within
 * `windowMs` the source is refused (even with the right token) until the window that began with its first
 * failure ends. IPv6 sources count per /64, since one host usually holds a whole /64. The table is bounded:
 * when full, the entry that began longest ago makes room.
 */
import { isIPv6 } from 'node:net';

export interface FailureLimits {
  maxFailures: number;
  windowMs: number;
}

export const SIGN_IN_LIMITS: FailureLimits = { maxFailures: 5, windowMs: 60_000 };

const MAX_SOURCES = 10_000;

interface Entry {
  since: number;
  failures: number;
}

export function sourceKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (v4) return v4[1];
  if (!isIPv6(address)) return address;
  // The first four groups of the expanded address.
  const [head, tail = ''] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::')
    ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

export class FailureLimiter {
  readonly #entries = new Map<string, Entry>();
  readonly #limits: FailureLimits;
  readonly #now: () => number;

  constructor(limits: FailureLimits = SIGN_IN_LIMITS, now: () => number = Date.now) {
    this.#limits = limits;
    this.#now = now;
  }

  /** Seconds the source must wait, or 0 when it may try. */
  retryAfter(source: string): number {
    const e = this.#live(source);
    if (!e || e.failures < this.#limits.maxFailures) return 0;
    return Math.max(1, Math.ceil((e.since + this.#limits.windowMs - this.#now()) / 1000));
  }

  fail(source: string): void {
    const e = this.#live(source);
    if (e) {
      e.failures++;
      return;
    }
    if (this.#entries.size >= MAX_SOURCES) this.#entries.delete(this.#entries.keys().next().value as string);
    this.#entries.set(source, { since: this.#now(), failures: 1 });
  }

  /** A right token: the source starts over. */
  succeed(source: string): void {
    this.#entries.delete(source);
  }

  #live(source: string): Entry | null {
    const e = this.#entries.get(source);
    if (!e) return null;
    if (e.since + this.#limits.windowMs <= this.#now()) {
      this.#entries.delete(source);
      return null;
    }
    return e;
  }
}
