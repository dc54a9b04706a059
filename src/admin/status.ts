/**
 * The JSON documents the admin API serves for /status and /links, built from the running config and the
 * plain counters. Kept apart from the HTTP server so the proxy, the CLI and tests share one shape.
 */
import pkg from '../../package.json' with { type: 'json' };
import type { ClusterStatus } from '../cluster/shared-state/index.ts';
import { formatClusterLine } from '../cluster/status.ts';
import type { ProxyLink } from '../config/links.ts';
import { formatHostPort } from '../config/schema.ts';
import type { Config } from '../config/types.ts';
import { SESSION_PROTOCOLS, type SessionProtocol, type Stats, topFingerprints } from '../metrics/stats.ts';

export interface ListenerStatus {
  name: string;
  host: string;
  port: number;
  protocols: string[];
  connectionsActive: number;
  connectionsTotal: number;
  /** Bytes relayed since the start: read from clients, and written to them. */
  bytesFromClient: number;
  bytesToClient: number;
  /** Sessions past the handshake, per client protocol. */
  sessions: Record<SessionProtocol, { active: number; total: number }>;
  handshakeFailures: Record<string, number>;
  /** The same failures by stage (plus connections gone before their first byte, as "tcp"). */
  handshakeStages: Record<string, number>;
  /** Fake-TLS client hellos by JA4: the most frequent, then "other". */
  helloFingerprints: Record<string, number>;
  policyRejections: Record<string, number>;
  fronted: number;
  replays: number;
}

export interface DcStatus {
  dc: number;
  connectionsActive: number;
  connects: number;
  connectErrors: number;
  /** Middle mode, present once any of these happened: links closed or clients moved, served directly. */
  middle?: MiddleDcStatus;
}

export interface MiddleDcStatus {
  /** Links closed because the middle proxy stopped answering (mtproxy_middle_links_stalled_total). */
  stalledLinks: number;
  /** Clients served directly because no middle proxy of the DC answered (mtproxy_middle_fallbacks_total). */
  fallbacks: number;
  /** Clients moved to another link after Telegram closed theirs, and those that could not be. */
  migrations: number;
  migrationFailures: number;
  /** Links above the minimum closed after carrying no client for the idle timeout. */
  idleLinksClosed: number;
}

export interface ProxyStatus {
  version: string;
  node: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  configFile: string | null;
  reloads: { total: number; failures: number; lastOk: boolean; lastAt: string | null };
  sessions: { active: number; total: number };
  listeners: ListenerStatus[];
  dcs: DcStatus[];
  upstream: Record<string, unknown>;
  /** A node of a fleet: its role and shared-state health (absent on a machine alone). */
  cluster?: { role: string; node: ClusterStatus | null };
}

function addMap(into: Record<string, number>, from: Map<string, number>): void {
  for (const [k, v] of from) into[k] = (into[k] ?? 0) + v;
}

/**
 * The /status document. `stats` may be several sources (one per worker thread): counts are summed, and the
 * reload and start facts come from the first (the process that reloads).
 */
export function buildStatus(
  config: Config,
  stats: Stats | readonly Stats[],
  upstream: Record<string, unknown> = {},
  now = Date.now(),
  /** The bound port of a running listener (the config may say 0). */
  boundPort: (listener: string) => number | null = () => null,
): ProxyStatus {
  const sources: readonly Stats[] = Array.isArray(stats) ? stats : [stats as Stats];
  const primary = sources[0];
  let active = 0;
  let total = 0;
  const listeners = config.listeners.map((l): ListenerStatus => {
    const out: ListenerStatus = {
      name: l.name,
      host: l.host,
      port: boundPort(l.name) ?? l.port,
      protocols: [...l.allowedProtocols],
      connectionsActive: 0,
      connectionsTotal: 0,
      bytesFromClient: 0,
      bytesToClient: 0,
      sessions: Object.fromEntries(
        SESSION_PROTOCOLS.map((p) => [p, { active: 0, total: 0 }]),
      ) as ListenerStatus['sessions'],
      handshakeFailures: {},
      handshakeStages: {},
      helloFingerprints: {},
      policyRejections: {},
      fronted: 0,
      replays: 0,
    };
    const fingerprints: Map<string, number>[] = [];
    for (const source of sources) {
      const s = source.listeners.get(l.name);
      if (!s) continue;
      addMap(out.handshakeStages, s.handshakeStages);
      fingerprints.push(s.helloFingerprints);
      out.connectionsActive += s.connectionsActive;
      out.connectionsTotal += s.connectionsTotal;
      out.bytesFromClient += s.bytesFromClient;
      out.bytesToClient += s.bytesToClient;
      for (const p of SESSION_PROTOCOLS) {
        out.sessions[p].active += s.sessionsActive[p];
        out.sessions[p].total += s.sessionsTotal[p];
      }
      addMap(out.handshakeFailures, s.handshakeFailures);
      addMap(out.policyRejections, s.policyRejections);
      out.fronted += s.fronted;
      out.replays += s.replays;
    }
    out.helloFingerprints = Object.fromEntries(topFingerprints(fingerprints));
    for (const p of SESSION_PROTOCOLS) {
      active += out.sessions[p].active;
      total += out.sessions[p].total;
    }
    return out;
  });
  const dcMap = new Map<number, DcStatus>();
  for (const source of sources) {
    for (const [dc, s] of source.dcs) {
      const d = dcMap.get(dc) ?? { dc, connectionsActive: 0, connects: 0, connectErrors: 0 };
      d.connectionsActive += s.linksActive;
      d.connects += s.connects;
      d.connectErrors += s.connectErrors;
      const middle: MiddleDcStatus = {
        stalledLinks: s.stalledLinks,
        fallbacks: s.middleFallbacks,
        migrations: s.migrations,
        migrationFailures: s.migrationFailures,
        idleLinksClosed: s.idleLinksClosed,
      };
      if (Object.values(middle).some((n) => n > 0)) {
        const into = d.middle ?? {
          stalledLinks: 0,
          fallbacks: 0,
          migrations: 0,
          migrationFailures: 0,
          idleLinksClosed: 0,
        };
        for (const key of Object.keys(middle) as Array<keyof MiddleDcStatus>) into[key] += middle[key];
        d.middle = into;
      }
      dcMap.set(dc, d);
    }
  }
  const dcs = [...dcMap.values()].sort((a, b) => a.dc - b.dc);
  return {
    version: pkg.version,
    node: process.version,
    pid: process.pid,
    startedAt: new Date(primary.startedAt).toISOString(),
    uptimeSeconds: Math.max(0, Math.round((now - primary.startedAt) / 1000)),
    configFile: config.file,
    reloads: {
      total: primary.reloadsTotal,
      failures: primary.reloadFailures,
      lastOk: primary.lastReloadOk,
      lastAt: primary.lastReloadAt ? new Date(primary.lastReloadAt).toISOString() : null,
    },
    sessions: { active, total },
    listeners,
    dcs,
    upstream: { mode: config.upstream.mode, ...upstream },
  };
}

export interface LinksDocument {
  links: ProxyLink[];
}

function formatDuration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m ${s}s` : `${m}m ${s}s`;
}

/** Human-readable rendering of /status for `mtproxy status`. */
export function formatStatus(status: ProxyStatus): string {
  const lines: string[] = [];
  lines.push(`mtproxy ${status.version} (node ${status.node}, pid ${status.pid})`);
  lines.push(`up ${formatDuration(status.uptimeSeconds)} since ${status.startedAt}`);
  if (status.configFile) lines.push(`config ${status.configFile}`);
  const r = status.reloads;
  lines.push(
    `reloads ${r.total} (${r.failures} refused)${r.lastAt ? `, last ${r.lastOk ? 'applied' : 'refused'} at ${r.lastAt}` : ''}`,
  );
  lines.push(`sessions ${status.sessions.active} active, ${status.sessions.total} total`);
  const cluster = status.cluster ? formatClusterLine(status.cluster.node, status.cluster.role) : null;
  if (cluster) lines.push(cluster);
  lines.push('');
  lines.push('listeners:');
  for (const l of status.listeners) {
    const perProtocol = Object.entries(l.sessions)
      .filter(([, v]) => v.total > 0 || v.active > 0)
      .map(([p, v]) => `${p} ${v.active}/${v.total}`)
      .join(', ');
    lines.push(
      `  ${l.name} ${formatHostPort(l)} [${l.protocols.join(',')}] connections ${l.connectionsActive} active, ${l.connectionsTotal} total${perProtocol ? `; sessions active/total: ${perProtocol}` : ''}`,
    );
    const failures = Object.entries(l.handshakeFailures);
    if (failures.length > 0)
      lines.push(`    handshake failures: ${failures.map(([k, v]) => `${k} ${v}`).join(', ')}`);
    const stages = Object.entries(l.handshakeStages ?? {});
    if (stages.length > 0)
      lines.push(`    failures by stage: ${stages.map(([k, v]) => `${k} ${v}`).join(', ')}`);
    const hellos = Object.entries(l.helloFingerprints ?? {});
    if (hellos.length > 0)
      lines.push(`    client hellos (JA4): ${hellos.map(([k, v]) => `${k} ${v}`).join(', ')}`);
    const rejections = Object.entries(l.policyRejections);
    if (rejections.length > 0)
      lines.push(`    policy rejections: ${rejections.map(([k, v]) => `${k} ${v}`).join(', ')}`);
    if (l.fronted > 0 || l.replays > 0) lines.push(`    fronted ${l.fronted}, replays ${l.replays}`);
  }
  lines.push('');
  lines.push(
    `upstream: ${Object.entries(status.upstream)
      .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
      .join(' ')}`,
  );
  for (const dc of status.dcs) {
    lines.push(
      `  dc ${dc.dc}: ${dc.connectionsActive} open, ${dc.connects} connects, ${dc.connectErrors} connect errors`,
    );
    const m = dc.middle;
    if (m)
      lines.push(
        `    middle: ${m.stalledLinks} links stalled, ${m.fallbacks} clients served directly (fallback), ` +
          `${m.migrations} clients moved (${m.migrationFailures} could not be), ${m.idleLinksClosed} idle links closed`,
      );
  }
  return `${lines.join('\n')}\n`;
}
