/** Human-readable link listing shared by `run` (on start) and `link`. */
import type { ProxyLink } from '../config/links.ts';

export function linkLines(links: ProxyLink[], where: (listener: string) => string): string[] {
  const lines: string[] = [];
  let current: string | null = null;
  for (const link of links) {
    if (link.listener !== current) {
      current = link.listener;
      lines.push(`Proxy links for listener "${link.listener}" (${where(link.listener)}):`);
    }
    const kind = link.domain ? `${link.protocol} ${link.domain}` : link.protocol;
    lines.push(`  ${kind}: ${link.tg}`, `  ${kind}: ${link.https}`);
  }
  return lines;
}
