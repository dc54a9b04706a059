/**
 * The cover profiles the fake server flight is shaped by, one per cover domain: learned from a probe of the
 * site, else a plausible certificate size drawn once per domain and kept (a real site's certificate does
 * not change size from one connection to the next).
 */
import { randomInt } from 'node:crypto';
import type { ListenerConfig } from '../config/types.ts';
import type { CoverProfile } from './flight.ts';

const MIN_RANDOM_SIZE = 2500;
const MAX_RANDOM_SIZE = 4500;
const MAX_DRAWN = 10_000;
const learned = new Map<string, CoverProfile>();
const drawn = new Map<string, CoverProfile>();

function key(domain: string): string {
  return domain.toLowerCase();
}

/** Profile for a cover domain: learned if a probe succeeded, else a size drawn once for this process. */
export function coverProfile(domain: string): CoverProfile {
  const k = key(domain);
  const known = learned.get(k);
  if (known) return known;
  let d = drawn.get(k);
  if (!d) {
    d = {
      certRecordSize: randomInt(MIN_RANDOM_SIZE, MAX_RANDOM_SIZE + 1),
      selectsPq: null,
      cipherSuite: null,
      versionsFirst: null,
      source: 'random',
    };
    // Only authenticated clients reach here, but per-SNI domains are open-ended: keep the table bounded.
    if (drawn.size >= MAX_DRAWN) drawn.clear();
    drawn.set(k, d);
  }
  return d;
}

/** Size of the fake certificate record for this listener and SNI. */
export function certRecordSizeFor(listener: ListenerConfig, domain: string): number {
  if (typeof listener.tlsCertSize === 'number' && listener.tlsCertSize > 0) return listener.tlsCertSize;
  return coverProfile(domain).certRecordSize;
}

export function rememberCoverProfile(domain: string, profile: CoverProfile): void {
  learned.set(key(domain), profile);
}

export function forgetCoverProfiles(): void {
  learned.clear();
  drawn.clear();
}
