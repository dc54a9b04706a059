/** The `[firewall] syn_rate` value: a count per second, minute or hour. */
import type { SynRate } from './types.ts';

/** "48/minute" -> { count: 48, per: 'minute' }; null when it is not that shape. */
export function parseSynRate(value: unknown): SynRate | null {
  if (typeof value !== 'string') return null;
  const m = /^\s*(\d{1,6})\s*\/\s*(second|minute|hour)\s*$/.exec(value);
  if (!m) return null;
  const count = Number(m[1]);
  return count >= 1 ? { count, per: m[2] as SynRate['per'] } : null;
}
