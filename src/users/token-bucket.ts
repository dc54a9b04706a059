/**
 * A token bucket shared by every session of one user in one direction. Sessions take what they relayed
 * (the bucket may go into debt by one chunk); a session that finds the bucket in debt pauses for the time
 * the debt takes to refill. Every paused session wakes at the same refill point, so the sessions of one
 * user share the rate between them rather than one of them starving the others.
 */
import type { Clock } from './period.ts';

export class TokenBucket {
  /** Bytes per second; 0 = unlimited. */
  rate: number;
  /** Bytes the bucket holds at most (a burst). */
  burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #at: number;

  constructor(rate: number, burst: number, clock: Clock) {
    this.rate = rate;
    this.burst = Math.max(1, burst);
    this.#clock = clock;
    this.#tokens = this.burst;
    this.#at = clock.now();
  }

  #refill(now: number): void {
    if (now > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.rate) / 1000);
      this.#at = now;
    }
  }

  /** Tokens now (negative: in debt). */
  get tokens(): number {
    this.#refill(this.#clock.now());
    return this.#tokens;
  }

  /**
   * Take `n` bytes. Returns 0 when the caller may go on at once, else how many milliseconds it should pause
   * before relaying more (the time until the bucket is out of debt).
   */
  take(n: number): number {
    if (this.rate <= 0) return 0;
    this.#refill(this.#clock.now());
    this.#tokens -= n;
    if (this.#tokens >= 0) return 0;
    return Math.ceil((-this.#tokens * 1000) / this.rate);
  }

  /** Milliseconds until the bucket is out of debt (0 when it is not). */
  waitMs(): number {
    if (this.rate <= 0) return 0;
    const t = this.tokens;
    return t >= 0 ? 0 : Math.ceil((-t * 1000) / this.rate);
  }
}
