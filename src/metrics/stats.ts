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

/**
 * Where a handshake failed, so that a block (connections reset at TCP or cut after the first bytes) can be
 * told from a misconfiguration (wrong secret: digest; clock: timestamp; cover domain: sni; rules: policy).
 */
export type HandshakeStage =
  | 'tcp'
  | 'first_bytes'
  | 'tls_record'
  | 'digest'
  | 'timestamp'
  | 'replay'
  | 'sni'
  | 'obfuscated2'
  | 'policy'
  | 'upstream'
  | 'other';

const STAGE_OF_CODE: Record<string, HandshakeStage> = {
  MTP_ERR_TLS_EXPECTED: 'first_bytes',
  MTP_ERR_TLS_BAD_HELLO: 'tls_record',
  MTP_ERR_HELLO_TOO_LARGE: 'tls_record',
  MTP_ERR_TLS_BAD_RECORD: 'tls_record',
  MTP_ERR_TLS_NO_KEY_SHARE: 'tls_record',
  MTP_ERR_TLS_BAD_DIGEST: 'digest',
  MTP_ERR_TLS_STALE_TIMESTAMP: 'timestamp',
  MTP_ERR_REPLAY: 'replay',
  MTP_ERR_TLS_UNKNOWN_SNI: 'sni',
  MTP_ERR_UNKNOWN_TRANSPORT: 'obfuscated2',
  MTP_ERR_DISABLED_TRANSPORT: 'obfuscated2',
  MTP_ERR_POLICY: 'policy',
  MTP_ERR_UPSTREAM: 'upstream',
};

/** The stage a failure code belongs to when the caller does not know better. */
export function handshakeStage(code: string): HandshakeStage {
  if (code.startsWith('MTP_ERR_ACCEPT_')) return 'tcp';
  return STAGE_OF_CODE[code] ?? 'other';
}

/** Distinct client-hello fingerprints a listener keeps apart (per process); the rest count as "other". */
export const FINGERPRINT_SLOTS = 32;
export const OTHER_FINGERPRINT = 'other';

/** Fingerprints shown per listener (metrics, status): the most frequent ones. */
export const FINGERPRINTS_SHOWN = 16;

/**
 * Fingerprint counts summed over several sources, cut to the `n` most frequent (ties by name) and "other"
 * for the rest: bounded output however many distinct hellos were seen.
 */
export function topFingerprints(
  maps: Iterable<Map<string, number>>,
  n = FINGERPRINTS_SHOWN,
): [string, number][] {
  const sum = new Map<string, number>();
  for (const m of maps) for (const [k, v] of m) sum.set(k, (sum.get(k) ?? 0) + v);
  let other = sum.get(OTHER_FINGERPRINT) ?? 0;
  sum.delete(OTHER_FINGERPRINT);
  const sorted = [...sum].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  for (const [, v] of sorted.slice(n)) other += v;
  const out = sorted.slice(0, n);
  if (other > 0) out.push([OTHER_FINGERPRINT, other]);
  return out;
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
  /** Handshake failures by stage (every `fail`, plus connections that closed before their first byte). */
  readonly handshakeStages = new Map<string, number>();
  /** Fake-TLS client hellos by JA4, at most FINGERPRINT_SLOTS keys plus "other". */
  readonly helloFingerprints = new Map<string, number>();

  fail(reason: string, stage: HandshakeStage = handshakeStage(reason)): void {
    bump(this.handshakeFailures, reason);
    bump(this.handshakeStages, stage);
  }

  /** A failure that has no reason code of its own (the client left before sending anything). */
  failAt(stage: HandshakeStage): void {
    bump(this.handshakeStages, stage);
  }

  /**
   * Count one hello's fingerprint. When every slot is taken, fingerprints seen only once so far give their
   * slot up to "other" (a scan with random hellos cannot crowd out the apps); if none did, the new one
   * counts as "other".
   */
  fingerprint(ja4: string): void {
    const f = this.helloFingerprints;
    const n = f.get(ja4);
    if (n !== undefined) {
      f.set(ja4, n + 1);
      return;
    }
    if (f.size >= FINGERPRINT_SLOTS + (f.has(OTHER_FINGERPRINT) ? 1 : 0)) {
      let freed = 0;
      for (const [k, v] of f) {
        if (v === 1 && k !== OTHER_FINGERPRINT) {
          f.delete(k);
          freed++;
        }
      }
      if (freed === 0) {
        bump(f, OTHER_FINGERPRINT);
        return;
      }
      f.set(OTHER_FINGERPRINT, (f.get(OTHER_FINGERPRINT) ?? 0) + freed);
    }
    f.set(ja4, 1);
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
  /** Per user ([[users]]): bytes each way, sessions open, refusals by `user\treason` (set once a second). */
  readonly userBytesUp = new Map<string, number>();
  readonly userBytesDown = new Map<string, number>();
  readonly userSessionsActive = new Map<string, number>();
  readonly userRefusals = new Map<string, number>();
  /** `[cluster]` Redis link: 1 up, 0 down, null when the node runs alone; failed commands by kind. */
  clusterRedisUp: number | null = null;
  readonly clusterRedisErrors = new Map<string, number>();

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
