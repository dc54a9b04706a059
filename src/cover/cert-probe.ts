/**
 * What a cover domain's TLS 1.3 answer looks like, so the fake server flight matches it: the size of its
 * encrypted handshake flight (certificate chain etc.) and whether it picks the hybrid post-quantum group.
 * Learned at start and refreshed by connecting to the fronting target with a Telegram-shaped hello; when
 * the site is unreachable, a plausible size is drawn once per domain and kept (a real site's certificate
 * does not change size from one connection to the next).
 */
import net from 'node:net';
import { randomBytes, randomInt } from 'node:crypto';
import { buildClientHello } from '../client/tls-hello.ts';
import type { Config, ListenerConfig } from '../config/types.ts';
import type { Logger } from '../log.ts';
import { GROUP_X25519_MLKEM768 } from '../protocol/faketls/client-hello.ts';
import { MAX_RECORD_PAYLOAD } from '../protocol/faketls/records.ts';

export interface CoverProfile {
  /** Bytes of the one application-data record imitating the encrypted flight. */
  certRecordSize: number;
  /** The site answered a PQ-capable hello with X25519MLKEM768 (null: unknown). */
  selectsPq: boolean | null;
  /** Cipher suite the site picked for a Telegram-shaped hello (null: unknown). */
  cipherSuite: number | null;
  /** Its ServerHello puts supported_versions before key_share (as OpenSSL does); null: unknown. */
  versionsFirst: boolean | null;
  source: 'probe' | 'random';
}

const MIN_RANDOM_SIZE = 2500;
const MAX_RANDOM_SIZE = 4500;
const MAX_DRAWN = 10_000;
const learned = new Map<string, CoverProfile>();
const drawn = new Map<string, CoverProfile>();

function key(domain: string): string {
  return domain.toLowerCase();
}

/** Profile for a cover domain: learned if a probe succeeded, else a size drawn once for this process. */
export function coverProfile(domain: string): CoverProfile {
  const k = key(domain);
  const known = learned.get(k);
  if (known) return known;
  let d = drawn.get(k);
  if (!d) {
    d = {
      certRecordSize: randomInt(MIN_RANDOM_SIZE, MAX_RANDOM_SIZE + 1),
      selectsPq: null,
      cipherSuite: null,
      versionsFirst: null,
      source: 'random',
    };
    // Only authenticated clients reach here, but per-SNI domains are open-ended: keep the table bounded.
    if (drawn.size >= MAX_DRAWN) drawn.clear();
    drawn.set(k, d);
  }
  return d;
}

/** Size of the fake certificate record for this listener and SNI. */
export function certRecordSizeFor(listener: ListenerConfig, domain: string): number {
  if (typeof listener.tlsCertSize === 'number' && listener.tlsCertSize > 0) return listener.tlsCertSize;
  return coverProfile(domain).certRecordSize;
}

export function rememberCoverProfile(domain: string, profile: CoverProfile): void {
  learned.set(key(domain), profile);
}

export function forgetCoverProfiles(): void {
  learned.clear();
  drawn.clear();
}

export interface ProbeTarget {
  host: string;
  port: number;
}

/**
 * Connect to `target`, send a modern Telegram-shaped hello for `sni` and measure the server's first flight.
 * Resolves null on any failure (refused, timeout, alert, not TLS 1.3-looking).
 */
export function probeCoverDomain(
  target: ProbeTarget,
  sni: string,
  timeoutMs: number,
): Promise<CoverProfile | null> {
  return new Promise((resolve) => {
    const hello = buildClientHello({
      shape: 'modern',
      secret: randomBytes(16),
      domain: sni,
      unixTime: Math.floor(Date.now() / 1000),
    });
    let buf = Buffer.alloc(0);
    let settled = false;
    let quietTimer: NodeJS.Timeout | null = null;
    const socket = net.connect({ host: target.host, port: target.port });
    const deadline = setTimeout(() => finish(measure(buf, true)), timeoutMs);
    function finish(result: CoverProfile | null): void {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (quietTimer) clearTimeout(quietTimer);
      socket.destroy();
      resolve(result);
    }
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(hello));
    socket.on('error', () => finish(null));
    socket.on('close', () => finish(measure(buf, true)));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > 256 * 1024) return finish(measure(buf, true));
      // The flight is over when the server goes quiet (it now waits for our Finished).
      if (quietTimer) clearTimeout(quietTimer);
      quietTimer = setTimeout(() => finish(measure(buf, true)), 250);
    });
  });
}

/** Sum of the records after the ServerHello (CCS excluded). Exported for tests. */
export function measure(flight: Buffer, final: boolean): CoverProfile | null {
  if (flight.length < 5 || flight[0] !== 0x16) return null;
  let pos = 0;
  let sawHello = false;
  let shape: ServerHelloShape | null = null;
  let size = 0;
  while (pos + 5 <= flight.length) {
    const type = flight[pos];
    const length = flight.readUInt16BE(pos + 3);
    if (pos + 5 + length > flight.length) break;
    const body = flight.subarray(pos + 5, pos + 5 + length);
    if (!sawHello) {
      if (type !== 0x16 || body[0] !== 0x02) return null;
      sawHello = true;
      shape = serverHelloShape(body);
    } else if (type === 0x17 || type === 0x16) {
      size += length;
    } else if (type === 0x15) {
      return null;
    }
    pos += 5 + length;
  }
  if (!sawHello || shape === null || size === 0 || !final) return null;
  return {
    certRecordSize: Math.min(size, MAX_RECORD_PAYLOAD),
    selectsPq: shape.group === GROUP_X25519_MLKEM768,
    cipherSuite: shape.cipherSuite,
    versionsFirst: shape.versionsFirst,
    source: 'probe',
  };
}

interface ServerHelloShape {
  cipherSuite: number;
  group: number;
  versionsFirst: boolean;
}

/** What a ServerHello handshake body chose, or null when it does not parse as one. */
function serverHelloShape(body: Buffer): ServerHelloShape | null {
  try {
    let p = 4 + 2 + 32;
    p += 1 + body[p];
    const cipherSuite = body.readUInt16BE(p);
    p += 2 + 1;
    const extEnd = p + 2 + body.readUInt16BE(p);
    p += 2;
    let group = -1;
    let versionsAt = -1;
    let keyShareAt = -1;
    for (let i = 0; p + 4 <= extEnd; i++) {
      const type = body.readUInt16BE(p);
      const len = body.readUInt16BE(p + 2);
      if (type === 0x0033 && len >= 2) {
        group = body.readUInt16BE(p + 4);
        keyShareAt = i;
      } else if (type === 0x002b) {
        versionsAt = i;
      }
      p += 4 + len;
    }
    return { cipherSuite, group, versionsFirst: versionsAt >= 0 && versionsAt < keyShareAt };
  } catch {
    // A truncated ServerHello: nothing learned.
    return null;
  }
}

/** Where to probe a listener's cover domain: the fronting target (fixed host, or the domain itself). */
export function probeTargetFor(listener: ListenerConfig, domain: string): ProbeTarget | null {
  const f = listener.fronting;
  if (f.kind === 'fixed') return { host: f.host, port: f.port };
  if (f.kind === 'sni') return { host: domain, port: f.port };
  return null;
}

export interface CertProbeHandle {
  /** Re-probe every cover domain now. */
  refresh(): Promise<void>;
  stop(): void;
}

/**
 * Probe every cover domain of the listeners whose `tls_cert_size` is "auto", now and then every
 * `refreshMs`. Failures keep the previous answer (or the drawn size).
 */
export function startCertProbes(
  getConfig: () => Config,
  log: Logger,
  opts: { refreshMs?: number; timeoutMs?: number } = {},
): CertProbeHandle {
  const refreshMs = opts.refreshMs ?? 6 * 3600_000;
  let stopped = false;
  const refresh = async (): Promise<void> => {
    const config = getConfig();
    const timeoutMs = opts.timeoutMs ?? Math.min(config.timeouts.frontingMs || 5000, 5000);
    const jobs: Promise<void>[] = [];
    const seen = new Set<string>();
    for (const listener of config.listeners) {
      if (listener.tlsCertSize !== 'auto' || !listener.allowedProtocols.includes('tls')) continue;
      for (const domain of listener.tlsDomains) {
        const target = probeTargetFor(listener, domain);
        if (!target) continue;
        const id = `${target.host}:${target.port}/${domain}`;
        if (seen.has(id)) continue;
        seen.add(id);
        jobs.push(
          probeCoverDomain(target, domain, timeoutMs).then((profile) => {
            if (stopped) return;
            if (profile) {
              rememberCoverProfile(domain, profile);
              log.info(
                { domain, certRecordSize: profile.certRecordSize, pq: profile.selectsPq },
                'cover domain probed',
              );
            } else {
              log.warn({ domain }, 'cover domain unreachable, using a random certificate size');
            }
          }),
        );
      }
    }
    await Promise.all(jobs);
  };
  const timer = setInterval(() => void refresh(), refreshMs);
  timer.unref();
  void refresh();
  return {
    refresh,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
