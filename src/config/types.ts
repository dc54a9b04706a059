/**
 * The validated, normalised configuration every module reads. `schema.ts` turns TOML + flags + environment
 * into this shape (durations in milliseconds, secrets as bytes, addresses parsed). Names mirror the TOML keys
 * (snake_case in the file, camelCase here); the README's option reference is generated from the schema.
 */
import type { TransportTag } from '../protocol/obfuscated2.ts';
import type { UserConfig } from './users.ts';

/** "classic" = abridged + intermediate, "secure" = padded intermediate (dd), "tls" = fake-TLS (ee). */
export type ProtocolFamily = 'classic' | 'secure' | 'tls';

export interface HostPort {
  host: string;
  port: number;
}

export type FrontingTarget =
  | { kind: 'off' }
  | { kind: 'sni'; port: number } // the SNI's host, port 443 by default
  | { kind: 'fixed'; host: string; port: number };

export interface ListenerConfig {
  name: string;
  host: string;
  port: number;
  /** 16 bytes. */
  secret: Buffer;
  /** Additional accepted secrets (same listener, several users); the first is `secret`. */
  extraSecrets: Buffer[];
  allowedProtocols: ProtocolFamily[];
  /** 16 bytes or null. */
  adTag: Buffer | null;
  /** Cover domains for fake-TLS (first one goes into the links); empty = tls links use `example.com`-less form. */
  tlsDomains: string[];
  /** What a fake-TLS hello without SNI counts as; null = the first of `tlsDomains`. */
  noSniDomain?: string | null;
  fronting: FrontingTarget;
  /** PROXY protocol header towards the fronting target. */
  frontingProxyProtocol: 'off' | 'v1' | 'v2';
  unknownSni: 'front' | 'reject' | 'drop';
  /** Allowed |client clock - our clock| for fake-TLS ClientHellos, ms. */
  tlsTimeSkewMs: number;
  /** Per-SNI derived secrets: salt, or null when off. */
  perSniSalt: string | null;
  /** Fake certificate record size: fixed bytes, or 'auto' (learned from the cover domain, else random). */
  tlsCertSize: number | 'auto';
  /** Host printed in links; defaults to the detected/public address or the listen host. */
  publicHost: string | null;
  /** Per-listener cap on concurrent connections (0 = unlimited). */
  maxConnections: number;
}

export interface UpstreamConfig {
  mode: 'direct' | 'middle' | 'auto';
  preferIpv6: boolean;
  /** DC id -> addresses override (direct mode). */
  dc: Map<number, HostPort[]>;
  /** DC used when the client asks for an unknown id. */
  defaultDc: number;
  connectTimeoutMs: number;
  connectRetries: number;
  /** Middle mode pool tuning. */
  minConnectionsPerDc: number;
  clientsPerConnection: number;
  /** An empty link above the minimum is closed after this long; 0 = never. */
  idleConnectionTimeoutMs: number;
  /** A middle-proxy link silent this long is closed as stalled (pinged after half of it); 0 = never. */
  stallTimeoutMs: number;
  /** What a listener with an ad tag does when no middle proxy of the DC answers. */
  middleFallback: 'direct' | 'none';
}

export interface TelegramConfig {
  /** URL or file path. */
  proxySecret: string;
  proxyConfig: string;
  proxyConfigV6: string;
  refreshIntervalMs: number;
  httpTimeoutMs: number;
  /** External IPv4 used in the RPC key derivation; null = detect. May be "local:public" NAT form. */
  externalIp: string | null;
  /** URL to detect the external IP when not configured ('' = use the socket's local address). */
  ipLookupUrl: string;
}

export interface TimeoutsConfig {
  handshakeMs: number;
  idleMs: number;
  drainMs: number;
  frontingMs: number;
}

export interface ReplayConfig {
  enabled: boolean;
  maxEntries: number;
  maxAgeMs: number;
}

export type PolicyKey =
  | { kind: 'listener' }
  | { kind: 'client_ipv4' }
  | { kind: 'client_ipv6' }
  | { kind: 'client_ipv4_subnet'; bits: number }
  | { kind: 'client_ipv6_subnet'; bits: number }
  | { kind: 'tls_domain' };

export type PolicyRule =
  | { rule: 'max_connections'; keys: PolicyKey[]; limit: number; raw: string }
  | { rule: 'in_table' | 'not_in_table'; key: PolicyKey; table: string; raw: string };

export interface MetricsConfig {
  listen: HostPort | null;
  allow: string[];
  /** Users with their own `user` label in the per-user series (0 = none). */
  userLabels: number;
}

export interface AdminConfig {
  listen: HostPort | null;
  token: string | null;
  /** Time a request (headers and body) may take to arrive. */
  bodyTimeoutMs: number;
  /** An admin connection with no request in progress is closed after this long without a byte. */
  idleTimeoutMs: number;
  maxConnections: number;
  /** The web console under /console/ of the admin server. */
  console: boolean;
  /** Lifetime of a console sign-in. */
  consoleSessionMs: number;
}

export interface LogConfig {
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** JSON lines, or one readable line per entry. */
  format: 'json' | 'pretty';
}

export interface BuffersConfig {
  /** Socket read high-water mark per client, bytes. */
  clientHighWaterMark: number;
  /** Bytes queued towards a client before we stop reading its upstream / drop it. */
  maxClientBacklog: number;
  /** Bytes relayed at most (each way) on a fronted connection. */
  frontingMaxBytes: number;
}

export type WorkerMode = 'auto' | 'threads' | 'processes';

/** A SYN rate: `count` new connections per `per`. */
export interface SynRate {
  count: number;
  per: 'second' | 'minute' | 'hour';
}

/** `[firewall]`: the nftables rules `mtproxy firewall apply` loads (the proxy itself never reads them). */
export interface FirewallConfig {
  /** Name of the `inet` table that holds every rule. */
  table: string;
  /** Sustained new connections per source address and listener. */
  synRate: SynRate;
  /** SYNs a source may send at once above the rate. */
  synBurst: number;
  /** Source addresses tracked per listener and family. */
  maxSources: number;
  /** MSS our SYN-ACK announces at most; 0 = unchanged. */
  mssClamp: number;
}

/** `[cluster]`: the front/back split (role "both" is one machine doing everything) and state shared
 * by several nodes through Redis (`redis` null = this machine only). */
export interface ClusterConfig {
  role: 'both' | 'front' | 'back';
  /** Front: link addresses of the backs. */
  backs: HostPort[];
  /** Back: where the link listener binds. */
  linkListen: HostPort | null;
  /** PEM files (absolute paths): this node's certificate and key, and the cluster CA. */
  cert: string | null;
  key: string | null;
  ca: string | null;

  /** Connection URL (may carry user and password: never log it). */
  redis: string | null;
  /** `rediss://`: the CA file (absolute path) of the server's certificate; null: the system's CAs. */
  redisCa: string | null;
  prefix: string;
  nodeName: string;
  timeoutMs: number;
  heartbeatMs: number;
  nodeTimeoutMs: number;
}

export interface Config {
  /** Path of the file this came from, if any (the state folder and reloads are resolved against it). */
  file: string | null;
  stateDir: string;
  workers: number;
  /** Threads sharing ports through SO_REUSEPORT, or processes fed by the main one; auto = threads where possible. */
  workerMode: WorkerMode;
  listeners: ListenerConfig[];
  upstream: UpstreamConfig;
  telegram: TelegramConfig;
  timeouts: TimeoutsConfig;
  replay: ReplayConfig;
  policies: PolicyRule[];
  /** `[[users]]` from the file (users created through the admin API live in the state database). */
  users: UserConfig[];
  metrics: MetricsConfig;
  admin: AdminConfig;
  log: LogConfig;
  buffers: BuffersConfig;
  firewall: FirewallConfig;
  cluster: ClusterConfig;
  /** Values adjusted while loading (one line each, for the log); absent when there are none. */
  warnings?: string[];
}

export type { TransportTag };
