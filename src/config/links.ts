/**
 * Proxy links (`tg://proxy?...` and `https://t.me/proxy?...`) for each listener and each protocol it allows:
 * classic (plain secret), secure (`dd`), and fake-TLS (`ee`, once per cover domain). With per-SNI secrets the
 * `ee` links carry the secret derived for their domain, since the base secret no longer passes the TLS check.
 */
import { deriveSniSecret } from '../protocol/faketls/sni-secret.ts';
import { interfaceAddresses } from '../runtime/interfaces.ts';
import { formatSecret } from './secrets.ts';
import type { Config, ListenerConfig, ProtocolFamily } from './types.ts';

export interface ProxyLink {
  listener: string;
  protocol: ProtocolFamily;
  /** Cover domain of a fake-TLS link, else null. */
  domain: string | null;
  /** The secret as the link carries it (hex, with dd/ee prefix). */
  secret: string;
  tg: string;
  https: string;
  /** Set on the extra links that carry this server's public IPv6 (a dual-stack listener without public_host). */
  ipv6?: true;
}

export interface LinkTarget {
  host: string;
  port: number;
}

function query(target: LinkTarget, secret: string): string {
  const params = new URLSearchParams({ server: target.host, port: String(target.port), secret });
  return params.toString();
}

function makeLink(
  listener: string,
  protocol: ProtocolFamily,
  domain: string | null,
  secret: string,
  target: LinkTarget,
): ProxyLink {
  const q = query(target, secret);
  return { listener, protocol, domain, secret, tg: `tg://proxy?${q}`, https: `https://t.me/proxy?${q}` };
}

/** The fake-TLS secret for one domain: derived per SNI when the listener has a salt. */
function tlsSecretFor(l: ListenerConfig, domain: string, secret: Buffer = l.secret): string {
  const effective = l.perSniSalt ? deriveSniSecret(l.perSniSalt, secret, domain) : secret;
  return formatSecret('ee', effective, domain);
}

/** Links for one listener: every allowed protocol, every secret, every cover domain. */
export function listenerLinks(l: ListenerConfig, target: LinkTarget): ProxyLink[] {
  const links: ProxyLink[] = [];
  for (const secret of [l.secret, ...l.extraSecrets]) {
    for (const protocol of l.allowedProtocols) {
      if (protocol === 'classic')
        links.push(makeLink(l.name, protocol, null, formatSecret('plain', secret), target));
      else if (protocol === 'secure')
        links.push(makeLink(l.name, protocol, null, formatSecret('dd', secret), target));
      else {
        for (const domain of l.tlsDomains) {
          links.push(makeLink(l.name, protocol, domain, tlsSecretFor(l, domain, secret), target));
        }
      }
    }
  }
  return links;
}

/** A fake-TLS link for a user's own domain (`mtproxy link --domain D`), or null if the listener has no TLS. */
export function domainLink(l: ListenerConfig, domain: string, target: LinkTarget): ProxyLink | null {
  if (!l.allowedProtocols.includes('tls')) return null;
  return makeLink(l.name, 'tls', domain.toLowerCase(), tlsSecretFor(l, domain.toLowerCase()), target);
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);

/** Where a client on this machine reaches a listen address: a wildcard address is reached through loopback. */
export function loopbackFor(host: string): string {
  if (host === '::') return '::1';
  return WILDCARD_HOSTS.has(host) ? '127.0.0.1' : host;
}

/** A non-internal address of this machine, IPv4 first; null when there is none. */
function firstPublicAddress(): string | null {
  const all = interfaceAddresses();
  const pick = (family: string) =>
    all.find((a) => a.family === family && !a.internal && !a.address.startsWith('fe80'));
  return (pick('IPv4') ?? pick('IPv6'))?.address ?? null;
}

/**
 * The host users should connect to: `public_host`, else the public part of `telegram.external_ip`, else the
 * listen address, or for a wildcard listen address some address of this machine.
 */
export function linkHost(
  config: Config,
  l: ListenerConfig,
  detect: () => string | null = firstPublicAddress,
): string {
  if (l.publicHost) return l.publicHost;
  const external = config.telegram.externalIp;
  if (external) return external.split(':').at(-1)!;
  if (!WILDCARD_HOSTS.has(l.host)) return l.host;
  return detect() ?? loopbackFor(l.host);
}

/**
 * Links of every listener; `portOf` gives the bound port when the proxy runs (config port 0). `detect6` gives
 * this server's public IPv6: a listener on "::" without public_host (which accepts IPv6 clients too) then
 * gets a second set of links with it, for users whose network has IPv6 only.
 */
export function configLinks(
  config: Config,
  portOf: (l: ListenerConfig) => number = (l) => l.port,
  detect: () => string | null = firstPublicAddress,
  detect6: () => string | null = () => null,
): ProxyLink[] {
  return config.listeners.flatMap((l) => {
    const host = linkHost(config, l, detect);
    const links = listenerLinks(l, { host, port: portOf(l) });
    const v6 = takesIpv6Links(config, l) ? detect6() : null;
    if (!v6 || v6 === host) return links;
    const extra = listenerLinks(l, { host: v6, port: portOf(l) }).map((link) => ({
      ...link,
      ipv6: true as const,
    }));
    return [...links, ...extra];
  });
}

/** A dual-stack listener whose link host is detected: IPv6 links with this server's public IPv6 fit it. */
export function takesIpv6Links(config: Config, l: ListenerConfig): boolean {
  return !l.publicHost && !config.telegram.externalIp && l.host === '::';
}
