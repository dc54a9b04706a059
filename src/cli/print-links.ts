/** Human-readable link listing shared by `run` (on start) and `link`. */
import type { ProxyLink } from '../config/links.ts';
import type { ListenerConfig } from '../config/types.ts';

export function linkLines(
  links: ProxyLink[],
  where: (listener: string) => string,
  /** Lines to print under each link (its QR code), if any. */
  under?: (link: ProxyLink) => string[],
): string[] {
  const lines: string[] = [];
  let current: string | null = null;
  for (const link of links) {
    if (link.listener !== current) {
      current = link.listener;
      lines.push(`Proxy links for listener "${link.listener}" (${where(link.listener)}):`);
    }
    const kind =
      (link.domain ? `${link.protocol} ${link.domain}` : link.protocol) + (link.ipv6 ? ' (IPv6)' : '');
    lines.push(`  ${kind}: ${link.tg}`, `  ${kind}: ${link.https}`);
    // Many clients and bots pass ee secrets around in base64url; the same bytes, shown next to the links.
    if (link.protocol === 'tls')
      lines.push(`  ${kind} secret (base64url): ${Buffer.from(link.secret, 'hex').toString('base64url')}`);
    if (under) lines.push(...under(link));
  }
  return lines;
}

/** Listeners that allow fake-TLS but name no cover domain have no `ee` link to print: say how to get one. */
export function missingTlsLinkNotes(listeners: ListenerConfig[]): string[] {
  return listeners
    .filter((l) => l.allowedProtocols.includes('tls') && l.tlsDomains.length === 0)
    .map(
      (l) =>
        `Listener "${l.name}" accepts fake-TLS for any domain: set tls_domain for an ee link, or run \`mtproxy link --domain DOMAIN\`.`,
    );
}
