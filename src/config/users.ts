/** A user as the configuration and the admin API describe it (normalised: bytes, milliseconds, buffers). */

/** How often a quota starts again; users/period.ts computes the periods themselves. */
export type QuotaPeriod = 'total' | 'daily' | 'weekly' | 'monthly';

export const QUOTA_PERIODS: readonly QuotaPeriod[] = ['total', 'daily', 'weekly', 'monthly'];

export interface UserConfig {
  name: string;
  /** 16 bytes; null in the file means "generate one and keep it in the state database". */
  secret: Buffer | null;
  /** Listener names the user may connect to; null = every listener. */
  listeners: string[] | null;
  /** Concurrent sessions; 0 = no cap. */
  maxConnections: number;
  /** Distinct client addresses at once; 0 = no cap. */
  maxIps: number;
  /** Bytes (both directions together) per period; 0 = no quota. */
  quota: number;
  quotaPeriod: QuotaPeriod;
  quotaResetDay: number;
  /** Bytes per second in each direction; 0 = unlimited. */
  rate: number;
  /** Milliseconds since the epoch after which the user is refused; null = never. */
  expires: number | null;
  enabled: boolean;
  /** Overrides the listener's ad tag (middle mode). */
  adTag: Buffer | null;
  note: string;
  /** The user's own fake-TLS cover domains (its links use them); empty = the listener's. */
  tlsDomains: string[];
}

export const USER_NAME_RE = /^[A-Za-z0-9_.@-]{1,64}$/;

export function isValidUserName(name: string): boolean {
  return USER_NAME_RE.test(name);
}

/** RFC 3339 time (or a date alone, meaning midnight UTC) -> ms since the epoch, else null. */
export function parseExpires(value: unknown): number | null {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.getTime();
  if (typeof value !== 'string') return null;
  const v = value.trim();
  if (!/^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2}))?$/.test(v)) return null;
  const ms = Date.parse(v.length === 10 ? `${v}T00:00:00Z` : v);
  return Number.isNaN(ms) ? null : ms;
}
