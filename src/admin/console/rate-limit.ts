/**
 * Wrong admin tokens at the console's sign-in, counted per source address: after `maxFailures` within
 * `windowMs` the source is refused (even with the right token) until the window that began with its first
 * failure ends. IPv6 sources count per /64, since one host usually holds a whole /64. The table is bounded:
 * when full, the entry that began longest ago makes room.
 */
import type { PolicyKey } from '../../config/types.ts';
import { keyValue, parsePeer } from '../../policy/keys.ts';

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

const SOURCE_V4: PolicyKey = { kind: 'client_ipv4' };
const SOURCE_V6: PolicyKey = { kind: 'client_ipv6_subnet', bits: 64 };

/** The address as the limiter counts it: an IPv4 address (v4-mapped ones unwrapped) or an IPv6 /64. */
export function sourceKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const peer = parsePeer(address);
  const subject = { listener: '', remoteAddress: address, tlsDomain: null };
  return keyValue(peer.ipv4 ? SOURCE_V4 : SOURCE_V6, subject, peer) ?? address;
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
