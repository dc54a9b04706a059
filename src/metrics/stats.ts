/**
 * Plain counters the hot paths bump (`stats.listener(name).bytesFromClient += n`). Nothing here allocates
 * per packet; the Prometheus registry (metrics/registry.ts) reads these objects at scrape time.
 */
import type { TransportTag } from '../protocol/obfuscated2.ts';

export type SessionProtocol = TransportTag | 'tls';

export const SESSION_PROTOCOLS: readonly SessionProtocol[] = ['abridged', 'intermediate', 'padded', 'tls'];

function perProtocol(): Record<SessionProtocol, number> {
  return { abridged: 0, intermediate: 0, padded: 0, tls: 0 };
}

function bump(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

export class ListenerStats {
  connectionsTotal = 0;
  connectionsActive = 0;
  bytesFromClient = 0;
  bytesToClient = 0;
  fronted = 0;
  /** Bytes relayed on fronted connections, each way (what was read before the hand-off included). */
  frontedBytesFromClient = 0;
  frontedBytesToClient = 0;
  /** Fronted connections cut at timeouts.fronting or buffers.fronting_max_bytes. */
  frontingCutOff = 0;
  replays = 0;
  readonly sessionsTotal = perProtocol();
  readonly sessionsActive = perProtocol();
  /** Handshake failures by reason code (a handful of distinct keys). */
  readonly handshakeFailures = new Map<string, number>();
  /** Policy rejections by rule description. */
  readonly policyRejections = new Map<string, number>();

  fail(reason: string): void {
    bump(this.handshakeFailures, reason);
  }

  reject(rule: string): void {
    bump(this.policyRejections, rule);
  }
}

export class DcStats {
  connects = 0;
  connectErrors = 0;
  linksActive = 0;
  bytesToDc = 0;
  bytesFromDc = 0;
  /** Middle mode: clients moved to another link after Telegram closed theirs, and those that could not be. */
  migrations = 0;
  migrationFailures = 0;
  /** Middle mode: links closed after carrying no client for upstream.idle_connection_timeout. */
  idleLinksClosed = 0;
  /** Middle mode: links closed because nothing came for upstream.stall_timeout. */
  stalledLinks = 0;
  /** Clients of a middle-mode listener served directly because no middle proxy of the DC answered. */
  middleFallbacks = 0;
  readonly errors = new Map<string, number>();

  error(reason: string): void {
    bump(this.errors, reason);
  }
}

export class Stats {
  readonly listeners = new Map<string, ListenerStats>();
  readonly dcs = new Map<number, DcStats>();
  readonly startedAt = Date.now();
  /** Telegram config fetches: key = `${what}:${result}` e.g. "proxy_config:ok". */
  readonly configFetches = new Map<string, number>();
  reloadsTotal = 0;
  reloadFailures = 0;
  lastReloadOk = true;
  lastReloadAt = 0;

  listener(name: string): ListenerStats {
    let s = this.listeners.get(name);
    if (!s) {
      s = new ListenerStats();
      this.listeners.set(name, s);
    }
    return s;
  }

  dc(id: number): DcStats {
    let s = this.dcs.get(id);
    if (!s) {
      s = new DcStats();
      this.dcs.set(id, s);
    }
    return s;
  }

  configFetch(what: string, result: string): void {
    bump(this.configFetches, `${what}:${result}`);
  }
}

/** One per process (or per worker thread); workers report theirs to the primary for aggregation. */
export const stats = new Stats();
