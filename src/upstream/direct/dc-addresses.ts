/**
 * Where Telegram's datacenters are, for direct mode. Built-in table of the public production DCs (port 443),
 * overridable per signed DC id by `[upstream.dc]`. Media ids (negative) use the positive DC's addresses
 * unless they have an override of their own.
 */
import { isIPv6 } from 'node:net';
import type { HostPort, UpstreamConfig } from '../../config/types.ts';

export interface DcAddressPair {
  ipv4: string[];
  ipv6: string[];
}

export const TELEGRAM_DC_PORT = 443;

export const DEFAULT_DC_ADDRESSES: ReadonlyMap<number, DcAddressPair> = new Map([
  [1, { ipv4: ['149.154.175.50'], ipv6: ['2001:b28:f23d:f001::a'] }],
  [2, { ipv4: ['149.154.167.51'], ipv6: ['2001:67c:4e8:f002::a'] }],
  [3, { ipv4: ['149.154.175.100'], ipv6: ['2001:b28:f23d:f003::a'] }],
  [4, { ipv4: ['149.154.167.91'], ipv6: ['2001:67c:4e8:f004::a'] }],
  [5, { ipv4: ['149.154.171.5'], ipv6: ['2001:b28:f23f:f005::a'] }],
  // CDN DC; only its positive id is served from this table.
  [203, { ipv4: ['91.105.192.100'], ipv6: ['2a0a:f280:203:a:5000::100'] }],
]);

export interface DcRoute {
  /** DC id written into our header towards the DC (the client's id, or the default DC on fallback). */
  dcId: number;
  /** Addresses to try, in order. */
  addresses: HostPort[];
  /** True when the client's id was unknown and the default DC is used instead. */
  fallback: boolean;
}

function fromTable(id: number, preferIpv6: boolean): HostPort[] | null {
  const entry = DEFAULT_DC_ADDRESSES.get(id);
  if (!entry) return null;
  const first = preferIpv6 ? entry.ipv6 : entry.ipv4;
  const second = preferIpv6 ? entry.ipv4 : entry.ipv6;
  return [...first, ...second].map((host) => ({ host, port: TELEGRAM_DC_PORT }));
}

/** Overrides keep their order, except that the preferred family goes first. */
function ordered(list: HostPort[], preferIpv6: boolean): HostPort[] {
  const pref = list.filter((a) => isIPv6(a.host) === preferIpv6);
  const rest = list.filter((a) => isIPv6(a.host) !== preferIpv6);
  return [...pref, ...rest];
}

function lookup(id: number, cfg: UpstreamConfig): HostPort[] | null {
  const own = cfg.dc.get(id);
  if (own && own.length > 0) return ordered(own, cfg.preferIpv6);
  if (id < 0 && id !== -203) {
    const positive = cfg.dc.get(-id);
    if (positive && positive.length > 0) return ordered(positive, cfg.preferIpv6);
  }
  if (id === 0 || id === -203) return null;
  return fromTable(Math.abs(id), cfg.preferIpv6);
}

/**
 * Route for a client's DC id: its override, its media twin, the built-in table, else the default DC.
 * The header keeps the client's signed id when the address came from that DC's own entries; on fallback it
 * names the DC actually reached. Null when even the default DC has no address.
 */
export function resolveDc(clientDcId: number, cfg: UpstreamConfig): DcRoute | null {
  const own = lookup(clientDcId, cfg);
  if (own) return { dcId: clientDcId, addresses: own, fallback: false };
  const def = lookup(cfg.defaultDc, cfg);
  if (def) return { dcId: cfg.defaultDc, addresses: def, fallback: true };
  return null;
}
