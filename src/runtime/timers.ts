/**
 * Session timing rules. Idle detection uses the socket's own inactivity timeout (Node re-arms it on every
 * read and write, so the hot path pays nothing); the handshake gets an absolute deadline so a client
 * trickling one byte at a time cannot hold a slot forever.
 */
import { randomInt } from 'node:crypto';

/** Bounds of the pause before we hang up on a client that failed its handshake. */
export const BAD_CLIENT_CLOSE_MIN_MS = 250;
export const BAD_CLIENT_CLOSE_MAX_MS = 2500;

/**
 * How long to keep a failed client's connection open (reading and discarding) before closing it. Random so
 * a prober cannot tell our rejection from a slow server; never later than the handshake deadline.
 */
export function badClientCloseDelay(remainingHandshakeMs: number): number {
  const delay = randomInt(BAD_CLIENT_CLOSE_MIN_MS, BAD_CLIENT_CLOSE_MAX_MS + 1);
  return Math.max(0, Math.min(delay, remainingHandshakeMs));
}

/** A one-shot timer that can be cleared any number of times and never keeps the process alive. */
export class Deadline {
  private timer: NodeJS.Timeout | null = null;

  arm(ms: number, onExpire: () => void): void {
    this.clear();
    this.timer = setTimeout(onExpire, ms);
    this.timer.unref();
  }

  clear(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  get armed(): boolean {
    return this.timer !== null;
  }
}
