/**
 * The address users reach this server at, for links of listeners without `public_host` on a wildcard address.
 * In order: a public IPv4 on an interface; the IPv4 that `telegram.ip_lookup_url` reports (the lookup the
 * middle mode makes to learn its address, so it is only made when a listener uses the middle mode, and a
 * proxy in direct mode never contacts a third party for its links); a public IPv6 on an interface; else a
 * guess (a private or loopback address), which the start output flags.
 */
import ipaddr from 'ipaddr.js';
import { isIPv4 } from 'node:net';
import { type InterfaceAddress, interfaceAddresses } from '../runtime/interfaces.ts';
import { readSource } from '../runtime/read-source.ts';
import { upstreamKind } from './addresses.ts';
import type { Config, ListenerConfig } from './types.ts';

export type PublicAddressSource = 'interface' | 'lookup' | 'guess';

export interface PublicAddress {
  /** The host for links; null when the machine has no usable address at all. */
  host: string | null;
  /** A public IPv6 of this machine besides `host`, if any. */
  ipv6: string | null;
  source: PublicAddressSource;
}

export interface PublicAddressDeps {
  /** This machine's addresses; default: the cached interface list. */
  interfaces?: () => InterfaceAddress[];
  /** Fetches `ip_lookup_url`; default: the middle mode's own reader (URL or file). */
  lookup?: (config: Config, source: string) => Promise<string>;
}

/** A globally routable address (not private, loopback, link-local, documentation, CGNAT ...). */
export function isPublicIp(address: string): boolean {
  try {
    const parsed = ipaddr.parse(address.split('%')[0]!);
    if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress())
      return (parsed as ipaddr.IPv6).toIPv4Address().range() === 'unicast';
    return parsed.range() === 'unicast';
  } catch {
    return false;
  }
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);

/** Listeners whose link host would come from this discovery (no public_host, no external_ip, wildcard). */
export function listenersNeedingAddress(config: Config): ListenerConfig[] {
  if (config.telegram.externalIp) return [];
  return config.listeners.filter((l) => !l.publicHost && WILDCARD_HOSTS.has(l.host));
}

async function defaultLookup(config: Config, source: string): Promise<string> {
  const options = { configFile: config.file, timeoutMs: config.telegram.httpTimeoutMs };
  return (await readSource(source, options)).toString('utf8').trim();
}

export async function discoverPublicAddress(
  config: Config,
  deps: PublicAddressDeps = {},
): Promise<PublicAddress> {
  const all = (deps.interfaces ?? interfaceAddresses)().filter((a) => !a.internal);
  const v4 = all.find((a) => a.family === 'IPv4' && isPublicIp(a.address))?.address ?? null;
  const v6 = all.find((a) => a.family === 'IPv6' && isPublicIp(a.address))?.address ?? null;
  if (v4) return { host: v4, ipv6: v6, source: 'interface' };

  const url = config.telegram.ipLookupUrl;
  const middle = config.listeners.some((l) => upstreamKind(config, l) === 'middle');
  if (url && middle) {
    try {
      const text = await (deps.lookup ?? defaultLookup)(config, url);
      if (isIPv4(text) && isPublicIp(text)) return { host: text, ipv6: v6, source: 'lookup' };
    } catch {
      // Falls through to an interface address or a guess; the middle mode logs its own lookup failure.
    }
  }
  if (v6) return { host: v6, ipv6: null, source: 'interface' };
  const guess =
    all.find((a) => a.family === 'IPv4')?.address ??
    all.find((a) => a.family === 'IPv6' && !a.address.startsWith('fe80'))?.address ??
    null;
  return { host: guess, ipv6: null, source: 'guess' };
}

/** Lines for the start output (and `link`) about where the link host came from; none when nothing to say. */
export function publicAddressNotes(config: Config, found: PublicAddress): string[] {
  const needing = listenersNeedingAddress(config);
  if (needing.length === 0) return [];
  const names = needing.map((l) => `"${l.name}"`).join(', ');
  const host = found.host ?? '127.0.0.1';
  const lines: string[] = [];
  if (found.source === 'guess')
    lines.push(
      `Warning: the links of ${names} use ${host}, only a guess: no public address was found on this ` +
        'machine. If phones cannot connect, set public_host (the address or name users reach) in the listener.',
    );
  else if (found.source === 'lookup')
    lines.push(
      `The links of ${names} use ${host}, this server's public IPv4 as telegram.ip_lookup_url reports it ` +
        '(set public_host to choose).',
    );
  if (found.ipv6 && found.ipv6 !== host) {
    const dual = needing.filter((l) => l.host === '::');
    const v4only = needing.filter((l) => l.host !== '::');
    if (dual.length > 0)
      lines.push(
        `This server also has the public IPv6 ${found.ipv6}: the links marked IPv6 use it, for users on IPv6-only networks.`,
      );
    if (v4only.length > 0)
      lines.push(
        `This server also has the public IPv6 ${found.ipv6}; listen on host = "::" for IPv6 links too (or set public_host to it for IPv6-only users).`,
      );
  }
  return lines;
}
