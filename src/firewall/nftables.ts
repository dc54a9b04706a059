/**
 * The nftables rules of `mtproxy firewall`: config in, nft script out (no I/O here).
 *
 * Since June 2026 the Russian DPI blocks a client address for minutes once it sees more than about one new
 * connection per second to one proxy address. A per-source SYN limit keeps a client under that, and answering
 * the excess SYNs with a TCP reset (instead of dropping them) makes the app give up on that attempt at once and
 * try again later, rather than retransmitting SYNs that count against it. The burst must let an app's start-up
 * fan-out through (several DCs and media at once), else the first try fails and only a restart of the app helps.
 *
 * Everything lives in one table of its own, so loading it is atomic and idempotent and removing it touches
 * nothing else on the host.
 */
import { isIP } from 'node:net';
import type { FirewallConfig, ListenerConfig, SynRate } from '../config/types.ts';

export const SYN_RATE_UNITS = ['second', 'minute', 'hour'] as const;
const UNIT_SECONDS: Record<SynRate['per'], number> = { second: 1, minute: 60, hour: 3600 };

export function formatSynRate(rate: SynRate): string {
  return `${rate.count}/${rate.per}`;
}

/** One listener port the rules cover; a wildcard host matches every local address. */
export interface FirewallTarget {
  listener: string;
  host: string | null;
  port: number;
}

/** Listeners with a fixed port, one target each (port 0 is picked at start, so no rule can name it). */
export function firewallTargets(listeners: readonly ListenerConfig[]): FirewallTarget[] {
  return listeners
    .filter((l) => l.port !== 0)
    .map((l) => ({
      listener: l.name,
      host: l.host === '0.0.0.0' || l.host === '::' ? null : l.host,
      port: l.port,
    }));
}

/**
 * How long an idle source stays in the set: at least the time its bucket takes to refill from empty, so
 * forgetting it never hands out a fresh burst early.
 */
export function setTimeoutSeconds(fw: FirewallConfig): number {
  const refill = Math.ceil((fw.synBurst * UNIT_SECONDS[fw.synRate.per]) / fw.synRate.count);
  return Math.max(60, refill);
}

const PURE_SYN = 'tcp flags & (fin | syn | rst | ack) == syn';
const SYN_ACK = 'tcp flags & (syn | ack) == syn | ack';

function comment(text: string): string {
  // Listener names are letters, digits, "_", "-" and "." (schema), so nothing needs escaping.
  return `comment "${text.replace(/["\\]/g, '')}"`;
}

function daddrMatch(host: string | null, family: 4 | 6): string | null {
  if (host === null) return '';
  const f = isIP(host);
  if (f !== family) return null;
  return family === 4 ? `ip daddr ${host} ` : `ip6 daddr ${host} `;
}

/** The `table inet NAME { ... }` block. */
export function renderTable(fw: FirewallConfig, targets: readonly FirewallTarget[]): string {
  const rate = `${fw.synRate.count}/${fw.synRate.per}`;
  const timeout = setTimeoutSeconds(fw);
  const sets: string[] = [];
  const input: string[] = [];
  const output: string[] = [];
  targets.forEach((t, i) => {
    for (const family of [4, 6] as const) {
      const daddr = daddrMatch(t.host, family);
      if (daddr === null) continue;
      const set = `syn${family}_${i}`;
      const saddr = family === 4 ? 'ip saddr' : 'ip6 saddr';
      sets.push(
        `\tset ${set} {`,
        `\t\ttype ${family === 4 ? 'ipv4_addr' : 'ipv6_addr'}`,
        `\t\tsize ${fw.maxSources}`,
        '\t\tflags dynamic,timeout',
        `\t\ttimeout ${timeout}s`,
        `\t\t${comment(`listener ${t.listener} port ${t.port}`)}`,
        '\t}',
        '',
      );
      input.push(
        `\t\t${daddr}tcp dport ${t.port} ${PURE_SYN} update @${set} { ${saddr} limit rate over ${rate} burst ${fw.synBurst} packets } reject with tcp reset ${comment(`listener ${t.listener}`)}`,
      );
      if (fw.mssClamp > 0) {
        const saddrOut = daddr.replace(/daddr/, 'saddr');
        // Only ever lowers the MSS our SYN-ACK announces; the client then sends its hello in small segments.
        output.push(
          `\t\t${saddrOut}meta nfproto ipv${family} tcp sport ${t.port} ${SYN_ACK} tcp option maxseg size > ${fw.mssClamp} tcp option maxseg size set ${fw.mssClamp} ${comment(`listener ${t.listener}`)}`,
        );
      }
    }
  });
  const lines = [`table inet ${fw.table} {`, ...sets];
  lines.push(
    '\tchain input {',
    '\t\ttype filter hook input priority filter - 5; policy accept;',
    ...input,
    '\t}',
  );
  if (output.length > 0) {
    lines.push(
      '',
      '\tchain output {',
      '\t\ttype filter hook output priority mangle; policy accept;',
      ...output,
      '\t}',
    );
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/**
 * The script `apply` feeds to `nft -f`: one transaction that creates the table if absent (so the delete
 * cannot fail), deletes it and loads it fresh. Running it twice leaves the same ruleset as running it once.
 */
export function renderApplyScript(fw: FirewallConfig, targets: readonly FirewallTarget[]): string {
  return [
    '#!/usr/sbin/nft -f',
    `# mtproxy firewall: per-source SYN limit (${formatSynRate(fw.synRate)}, burst ${fw.synBurst}); excess SYNs get a TCP reset`,
    `table inet ${fw.table}`,
    `delete table inet ${fw.table}`,
    renderTable(fw, targets),
  ].join('\n');
}

/** `remove`: exactly our table. */
export function renderRemoveScript(fw: FirewallConfig): string {
  return `delete table inet ${fw.table}\n`;
}
