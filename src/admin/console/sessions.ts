/**
 * Console sign-ins, kept in memory only (a restart signs everyone out): a random id the browser holds in an
 * HttpOnly cookie, a random CSRF token the page sends back in a header with every change, and a fixed
 * lifetime. At most MAX_SESSIONS live at once; a new one pushes the oldest out.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface ConsoleSession {
  readonly id: string;
  readonly csrf: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly source: string;
}

const MAX_SESSIONS = 64;

function hash(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

export class ConsoleSessions {
  /** By the hash of the id: the map never holds a usable cookie value. */
  readonly #byHash = new Map<string, ConsoleSession>();
  #ttlMs: number;
  readonly #now: () => number;

  constructor(ttlMs: number, now: () => number = Date.now) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  set ttlMs(ms: number) {
    this.#ttlMs = ms;
  }

  get size(): number {
    this.#prune();
    return this.#byHash.size;
  }

  create(source: string): ConsoleSession {
    this.#prune();
    while (this.#byHash.size >= MAX_SESSIONS) {
      const oldest = this.#byHash.keys().next().value as string;
      this.#byHash.delete(oldest);
    }
    const now = this.#now();
    const session: ConsoleSession = {
      id: randomBytes(32).toString('base64url'),
      csrf: randomBytes(32).toString('base64url'),
      createdAt: now,
      expiresAt: now + this.#ttlMs,
      source,
    };
    this.#byHash.set(hash(session.id), session);
    return session;
  }

  /** The live session of this cookie value, or null (unknown, expired). */
  get(id: string | undefined): ConsoleSession | null {
    if (!id || id.length > 128) return null;
    const key = hash(id);
    const session = this.#byHash.get(key);
    if (!session) return null;
    if (session.expiresAt <= this.#now()) {
      this.#byHash.delete(key);
      return null;
    }
    return session;
  }

  destroy(id: string): void {
    this.#byHash.delete(hash(id));
  }

  /** Every session ends (the admin token changed). */
  clear(): void {
    this.#byHash.clear();
  }

  #prune(): void {
    const now = this.#now();
    for (const [key, s] of this.#byHash) if (s.expiresAt <= now) this.#byHash.delete(key);
  }
}

/** Constant-time comparison of a CSRF header with the session's token. */
export function csrfMatches(session: ConsoleSession, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string' || header.length !== session.csrf.length) return false;
  return timingSafeEqual(Buffer.from(header), Buffer.from(session.csrf));
}
