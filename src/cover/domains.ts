/** Cover-domain checks shared by the fake-TLS handshake and fronting. */
import type { ListenerConfig } from '../config/types.ts';

/** Normalised form for comparing host names: lowercase, no trailing dot. */
export function normaliseDomain(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Whether the listener serves this SNI as a cover domain (no list = any). */
export function servesDomain(listener: ListenerConfig, sni: string): boolean {
  if (listener.tlsDomains.length === 0) return true;
  const n = normaliseDomain(sni);
  for (const d of listener.tlsDomains) if (normaliseDomain(d) === n) return true;
  return false;
}
