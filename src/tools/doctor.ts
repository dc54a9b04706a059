/**
 * `mtproxy doctor`: what an operator checks when clients cannot connect, one line per check with ok / warn /
 * fail and what to do about it. Every network check has a short timeout and takes its targets from the config
 * (DC overrides, the middle-proxy config source, the fronting target), so it can be pointed at loopback.
 */
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism } from 'node:os';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { AdminClient } from '../admin/client.ts';
import { linkHost, loopbackFor, takesIpv6Links } from '../config/links.ts';
import {
  discoverPublicAddress,
  isPublicIp,
  listenersNeedingAddress,
  type PublicAddress,
} from '../config/public-address.ts';
import { formatHostPort, upstreamKind } from '../config/schema.ts';
import type { Config, HostPort, ListenerConfig } from '../config/types.ts';
import { probeCoverDomain, probeTargetFor } from '../cover/cert-probe.ts';
import { parseProxyConfig } from '../protocol/middle/proxy-config.ts';
import { interfaceAddresses } from '../runtime/interfaces.ts';
import { readSource } from '../runtime/read-source.ts';
import { resolveDc } from '../upstream/direct/dc-addresses.ts';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  /** Short check name: `config`, `fd-limit`, `bind main`, `cover example.com`, `telegram`... */
  check: string;
  status: CheckStatus;
  message: string;
  /** What to do about a warn/fail. */
  fix?: string;
}

export interface DoctorOptions {
  /** Per network check. */
  timeoutMs?: number;
  /** false: skip everything that opens an outbound connection or resolves names. */
  network?: boolean;
  /** false: do not try to bind the configured ports (e.g. while the proxy runs). */
  bind?: boolean;
  /** Contents of /proc/self/limits (tests); default: read it. */
  limitsText?: string | null;
  /** Local clock, ms (tests). */
  now?: () => number;
  /** Trust these CAs for the cover site's certificate (tests with a private CA); default: the system store. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Called when a check starts and ends (for progress output). */
  progress?: (event: 'start' | 'end', label: string) => void;
  /** A cover domain's A/AAAA addresses (tests answer from a table); default: the system resolver. */
  resolveAddresses?: (domain: string) => Promise<string[]>;
  /** The public address links use without public_host (tests); default: config/public-address.ts. */
  publicAddress?: (config: Config) => Promise<PublicAddress>;
  /** This machine's own addresses (tests); default: the interfaces and loopback. */
  machineAddresses?: () => string[];
}

/** The post-quantum hybrid group today's Telegram apps offer. */
const PQ_GROUP = 'X25519MLKEM768';

async function systemAddresses(domain: string): Promise<string[]> {
  return (await lookup(domain, { all: true })).map((a) => a.address);
}

/** The resolver's answer within the timeout; throws its error (or `timeout`). */
function resolveWithin(
  resolve: (domain: string) => Promise<string[]>,
  domain: string,
  timeoutMs: number,
): Promise<string[]> {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(Object.assign(new Error('timeout'), { code: 'timeout' })), timeoutMs);
    resolve(domain).then(
      (a) => {
        clearTimeout(timer);
        ok(a);
      },
      (e: unknown) => {
        clearTimeout(timer);
        fail(e);
      },
    );
  });
}

const DEFAULT_TIMEOUT_MS = 3000;
/** Descriptors besides sessions: listeners, log, DNS, metrics/admin, middle-proxy pool, workers' pipes. */
const FD_BASE_OVERHEAD = 512;
/** Below this an uncapped proxy runs out of descriptors at a few thousand clients. */
const RECOMMENDED_NOFILE = 65536;
const TELEGRAM_DCS = [1, 2, 3, 4, 5];

function result(check: string, status: CheckStatus, message: string, fix?: string): CheckResult {
  return fix ? { check, status, message, fix } : { check, status, message };
}

function errorCode(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code ?? err?.message ?? String(e);
}

// ---------------------------------------------------------------------------------------------------------------
// Config

/** Listeners whose clients go through Telegram's middle proxies. */
function middleListeners(config: Config): ListenerConfig[] {
  return config.listeners.filter((l) => upstreamKind(config, l) === 'middle');
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function checkConfig(config: Config): CheckResult[] {
  const out: CheckResult[] = [];
  const names = config.listeners.map((l) => `${l.name} ${formatHostPort(l)}`).join(', ');
  const where = config.file ? ` from ${config.file}` : '';
  out.push(
    result(
      'config',
      'ok',
      `valid${where}: ${config.listeners.length} listener(s) (${names}), upstream ${config.upstream.mode}`,
    ),
  );

  for (const l of config.listeners) {
    if (l.allowedProtocols.includes('tls') && l.tlsDomains.length === 0) {
      out.push(
        result(
          `config ${l.name}`,
          'warn',
          'fake-TLS (tls) is allowed but no tls_domain is set, so no ee link can be built',
          `set tls_domain = "www.example.com" (a real HTTPS site) on listener ${l.name}, or drop "tls" from allowed_protocols`,
        ),
      );
    }
    if (!l.allowedProtocols.includes('tls') && (l.tlsDomains.length > 0 || l.perSniSalt)) {
      out.push(
        result(
          `config ${l.name}`,
          'warn',
          'tls_domain / per_sni_salt are set but fake-TLS is not in allowed_protocols, so they have no effect',
          `add "tls" to allowed_protocols on listener ${l.name}`,
        ),
      );
    }
    if (l.allowedProtocols.length === 1 && l.allowedProtocols[0] === 'classic') {
      out.push(
        result(
          `config ${l.name}`,
          'warn',
          'only classic (plain secret) clients are allowed; that traffic is easy for DPI to recognise',
          'add "secure" (dd links) and "tls" (ee links) to allowed_protocols',
        ),
      );
    }
    if (l.adTag && config.upstream.mode === 'direct') {
      out.push(
        result(
          `config ${l.name}`,
          'warn',
          'an ad tag is set but upstream.mode = "direct": the promoted channel needs the middle proxies',
          'set upstream.mode = "auto" (or "middle")',
        ),
      );
    }
    if (!l.publicHost && !config.telegram.externalIp && (l.host === '0.0.0.0' || l.host === '::')) {
      out.push(
        result(
          `config ${l.name}`,
          'warn',
          `no public_host or telegram.external_ip: links will name the listen address ${l.host}`,
          'set public_host = "proxy.example.com" (or your IP) on the listener',
        ),
      );
    }
  }
  if (config.admin.listen && !isLoopback(config.admin.listen.host)) {
    out.push(
      result(
        'config admin',
        'warn',
        `the admin API listens on ${formatHostPort(config.admin.listen)}, reachable from outside`,
        'bind it to 127.0.0.1 and reach it over SSH, or firewall the port',
      ),
    );
  }
  if (config.metrics.listen && config.metrics.allow.some((a) => a === '0.0.0.0/0' || a === '::/0')) {
    out.push(
      result(
        'config metrics',
        'warn',
        '/metrics is open to every address (metrics.allow)',
        'list only your Prometheus server in metrics.allow',
      ),
    );
  }
  const cpus = availableParallelism();
  if (config.workers > cpus) {
    out.push(
      result(
        'config workers',
        'warn',
        `workers = ${config.workers} but this machine has ${cpus} CPU(s)`,
        `set workers = ${cpus} (or remove it for one per CPU)`,
      ),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// File descriptors

export interface FdLimit {
  soft: number;
  hard: number;
}

/** "Max open files" from /proc/<pid>/limits; Infinity for "unlimited"; null when absent. */
export function parseFdLimit(limitsText: string): FdLimit | null {
  const line = limitsText.split('\n').find((l) => l.startsWith('Max open files'));
  if (!line) return null;
  const fields = line.slice('Max open files'.length).trim().split(/\s+/);
  const value = (s: string | undefined) => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
  const soft = value(fields[0]);
  const hard = value(fields[1]);
  return Number.isNaN(soft) || Number.isNaN(hard) ? null : { soft, hard };
}

export function checkFdLimit(config: Config, limitsText: string | null): CheckResult {
  const limit = limitsText === null ? null : parseFdLimit(limitsText);
  if (!limit) return result('fd-limit', 'skip', 'cannot read the open-files limit (/proc/self/limits)');
  const fix =
    'raise it: LimitNOFILE=1048576 in the systemd unit, `ulimit -n 1048576` in the shell, or ' +
    '`docker run --ulimit nofile=1048576:1048576`';
  // Node raises the soft limit to the hard one at start-up, so the hard limit is what the proxy gets.
  const available = limit.hard;
  const shown = `open files limit ${available === Number.POSITIVE_INFINITY ? 'unlimited' : available}`;
  const uncapped = config.listeners.filter((l) => l.maxConnections === 0).map((l) => l.name);
  // A direct session holds two sockets (client and DC); a middle one holds only the client's.
  const perSession = config.listeners.map((l) => (upstreamKind(config, l) === 'middle' ? 1 : 2));
  const needed =
    FD_BASE_OVERHEAD + config.listeners.reduce((sum, l, i) => sum + l.maxConnections * perSession[i], 0);
  if (uncapped.length > 0) {
    if (available < RECOMMENDED_NOFILE) {
      return result(
        'fd-limit',
        'warn',
        `${shown}; listener(s) ${uncapped.join(', ')} have no max_connections cap, so about ${Math.floor((available - FD_BASE_OVERHEAD) / 2)} sessions fit`,
        fix,
      );
    }
    return result('fd-limit', 'ok', `${shown} (listeners without max_connections are bounded by it)`);
  }
  if (available < needed) {
    return result(
      'fd-limit',
      'fail',
      `${shown} is below the ${needed} the configured max_connections need (2 per direct session, 1 per middle session, plus ${FD_BASE_OVERHEAD})`,
      fix,
    );
  }
  return result('fd-limit', 'ok', `${shown} covers the configured connection caps (${needed} needed)`);
}

// ---------------------------------------------------------------------------------------------------------------
// Binding the ports

function tryBind(address: HostPort): Promise<string | null> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (e) => resolve(errorCode(e)));
    server.listen({ host: address.host, port: address.port, exclusive: true }, () =>
      server.close(() => resolve(null)),
    );
  });
}

export async function checkBind(label: string, address: HostPort): Promise<CheckResult> {
  const check = `bind ${label}`;
  const shown = formatHostPort(address);
  if (address.port === 0) return result(check, 'skip', `${shown}: port 0 picks a free port at start`);
  const code = await tryBind(address);
  switch (code) {
    case null:
      return result(check, 'ok', `${shown} can be bound`);
    case 'EADDRINUSE':
      return result(
        check,
        'warn',
        `${shown} is in use: fine if that is this proxy already running, else another program holds it`,
        `find it with: ss -ltnp 'sport = :${address.port}'`,
      );
    case 'EACCES':
      return result(
        check,
        'fail',
        `${shown}: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)`,
        'run through the systemd unit (it grants the capability), or use a port >= 1024',
      );
    case 'EADDRNOTAVAIL':
      return result(
        check,
        'fail',
        `${shown}: this machine has no such address`,
        'use "0.0.0.0" or "::", or an address of this host',
      );
    default:
      return result(check, 'fail', `${shown}: cannot listen (${code})`);
  }
}

function bindTargets(config: Config): Array<[string, HostPort]> {
  const targets: Array<[string, HostPort]> = config.listeners.map((l) => [
    l.name,
    { host: l.host, port: l.port },
  ]);
  if (config.metrics.listen) targets.push(['metrics', config.metrics.listen]);
  if (config.admin.listen) targets.push(['admin', config.admin.listen]);
  return targets;
}

// ---------------------------------------------------------------------------------------------------------------
// Reachability helpers

/** Milliseconds to open a TCP connection, or the error code. */
function tcpConnectTime(address: HostPort, timeoutMs: number): Promise<{ ms: number } | { error: string }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect({ host: address.host, port: address.port });
    const timer = setTimeout(() => done({ error: 'timeout' }), timeoutMs);
    function done(r: { ms: number } | { error: string }): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    }
    socket.once('connect', () => done({ ms: performance.now() - started }));
    socket.once('error', (e) => done({ error: errorCode(e) }));
  });
}

interface TlsFacts {
  protocol: string | null;
  alpn: string | false;
  authorized: boolean;
  authorizationError: string | null;
  /** Unix ms from the HTTP Date header, when the site answered HTTP/1.1. */
  serverDate: number | null;
  /** Local clock at the moment the answer arrived. */
  localDate: number;
}

/** TLS to `target` with SNI `domain`, then `HEAD /` over HTTP/1.1 for the Date header. */
function tlsFacts(
  target: HostPort,
  domain: string,
  timeoutMs: number,
  ca: DoctorOptions['ca'],
  now: () => number,
) {
  return new Promise<TlsFacts | { error: string }>((resolve) => {
    const socket = tls.connect({
      host: target.host,
      port: target.port,
      servername: domain,
      ALPNProtocols: ['http/1.1'],
      rejectUnauthorized: false,
      ...(ca ? { ca } : {}),
    });
    let settled = false;
    let head = '';
    let facts: TlsFacts | null = null;
    const timer = setTimeout(() => finish(facts ?? { error: 'timeout' }), timeoutMs);
    function finish(r: TlsFacts | { error: string }): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    }
    socket.once('secureConnect', () => {
      facts = {
        protocol: socket.getProtocol(),
        alpn: socket.alpnProtocol ?? false,
        authorized: socket.authorized,
        authorizationError: socket.authorizationError ? String(socket.authorizationError) : null,
        serverDate: null,
        localDate: now(),
      };
      socket.write(
        `HEAD / HTTP/1.1\r\nHost: ${domain}\r\nUser-Agent: mtproxy-doctor\r\nConnection: close\r\n\r\n`,
      );
    });
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0 && head.length < 16384) return;
      const date = /^date:\s*(.+?)\s*$/im.exec(head.slice(0, end < 0 ? undefined : end));
      if (facts && date) {
        const parsed = Date.parse(date[1]);
        if (!Number.isNaN(parsed)) {
          facts.serverDate = parsed;
          facts.localDate = now();
        }
      }
      finish(facts ?? { error: 'no TLS session' });
    });
    socket.once('end', () => finish(facts ?? { error: 'closed' }));
    socket.once('error', (e) => finish(facts ?? { error: errorCode(e) }));
  });
}

/** Every address of this host, as seen by the kernel, plus the configured public ones. */
function ownAddresses(config: Config): Set<string> {
  const own = new Set<string>(['127.0.0.1', '::1']);
  for (const a of interfaceAddresses()) own.add(a.address);
  for (const l of config.listeners) if (l.publicHost && net.isIP(l.publicHost)) own.add(l.publicHost);
  const external = config.telegram.externalIp?.split(':');
  for (const ip of external ?? []) own.add(ip);
  return own;
}

// ---------------------------------------------------------------------------------------------------------------
// Cover domains (fake-TLS): fronting loop, TLS 1.3 answer, post-quantum group, DNS, certificate, clock

/**
 * A TLS 1.3 handshake offering `group` as the only key exchange: true when the server completes it, else why
 * not (a server without the group answers with a handshake_failure alert).
 */
function negotiatesGroup(target: HostPort, domain: string, group: string, timeoutMs: number) {
  return new Promise<true | string | { unsupported: string }>((resolve) => {
    let socket: tls.TLSSocket;
    try {
      socket = tls.connect({
        host: target.host,
        port: target.port,
        servername: domain,
        ecdhCurve: group,
        minVersion: 'TLSv1.3',
        ALPNProtocols: ['http/1.1'],
        rejectUnauthorized: false,
      });
    } catch (e) {
      resolve({ unsupported: errorCode(e) });
      return;
    }
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    function finish(r: true | string): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    }
    socket.once('secureConnect', () => finish(true));
    socket.once('error', (e) => finish(errorCode(e)));
    socket.once('close', () => finish('closed'));
  });
}

function pqFinding(
  check: string,
  domain: string,
  shownTarget: string,
  pq: true | string | { unsupported: string },
): CheckResult {
  if (pq === true) return result(check, 'ok', `${shownTarget} negotiates ${PQ_GROUP} for ${domain}`);
  if (typeof pq === 'object') {
    return result(
      check,
      'skip',
      `this Node.js cannot offer ${PQ_GROUP} (${pq.unsupported}) to test ${domain}`,
    );
  }
  return result(
    check,
    'warn',
    `${shownTarget} does not negotiate ${PQ_GROUP} for ${domain} (${pq}), which today's Telegram apps offer`,
    'in 2026 DPI blocked covers without post-quantum key exchange (iOS users first); pick a domain on a modern CDN or web server with X25519MLKEM768',
  );
}

function dnsFinding(
  check: string,
  domain: string,
  listener: ListenerConfig,
  addresses: string[] | null,
  dnsError: string | null,
  own: Set<string>,
): CheckResult {
  const ownSite =
    'best: your own domain whose A/AAAA records point at this server, with a real site behind fronting = "127.0.0.1:PORT"';
  if (addresses === null || addresses.length === 0) {
    return result(check, 'warn', `${domain} has no A/AAAA records (${dnsError ?? 'empty answer'})`, ownSite);
  }
  const elsewhere = addresses.filter((a) => !own.has(a));
  if (elsewhere.length === 0) {
    return result(check, 'ok', `${domain} points at this server (${addresses.join(', ')})`);
  }
  const shown = elsewhere.slice(0, 4).join(', ') + (elsewhere.length > 4 ? ', …' : '');
  return result(
    check,
    'warn',
    `${domain} points at ${shown}, not at this server: DPI that compares the SNI with the server address sees the mismatch`,
    listener.fronting.kind === 'sni'
      ? `${ownSite} (fronting = "sni" would loop then)`
      : `point the A/AAAA records of ${domain} at this server's public address`,
  );
}

export async function checkCoverDomain(
  config: Config,
  listener: ListenerConfig,
  domain: string,
  opts: DoctorOptions,
): Promise<CheckResult[]> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const now = opts.now ?? Date.now;
  const check = `cover ${domain}`;
  const target = probeTargetFor(listener, domain);
  if (!target) {
    return [
      result(
        check,
        'warn',
        `fronting is off on listener ${listener.name}: probes that fail the handshake are dropped instead of seeing ${domain}`,
        'set fronting = "sni" (or "host:port" of a local web server) so probes see a real site',
      ),
    ];
  }
  const out: CheckResult[] = [];

  const own = ownAddresses(config);
  const resolver = opts.resolveAddresses ?? systemAddresses;
  let addresses: string[] | null = null;
  let dnsError: string | null = null;
  try {
    addresses = await resolveWithin(resolver, domain, timeoutMs);
  } catch (e) {
    dnsError = errorCode(e);
  }

  // Fronting to the SNI's host must not lead back to this proxy.
  if (listener.fronting.kind === 'sni') {
    if (addresses === null) {
      out.push(
        result(
          check,
          'fail',
          `${domain} does not resolve (${dnsError})`,
          'pick a cover domain that exists in DNS',
        ),
      );
      return out;
    }
    const mine = addresses.filter((a) => own.has(a));
    if (mine.length > 0 && config.listeners.some((l) => l.port === target.port)) {
      out.push(
        result(
          check,
          'fail',
          `${domain} resolves to this server (${mine.join(', ')}) and a listener uses port ${target.port}: fronting would loop into the proxy`,
          'front to a local web server instead: fronting = "127.0.0.1:8443" (a site serving this domain)',
        ),
      );
      return out;
    }
  }

  const shownTarget = formatHostPort(target);
  const [profile, facts, pq] = await Promise.all([
    probeCoverDomain(target, domain, timeoutMs),
    tlsFacts(target, domain, timeoutMs, opts.ca, now),
    negotiatesGroup(target, domain, PQ_GROUP, timeoutMs),
  ]);

  if (!profile) {
    out.push(
      result(
        check,
        'fail',
        `${shownTarget} did not answer a Telegram-shaped hello for ${domain} with a TLS 1.3 server flight`,
        'the fronting target must be a real HTTPS site with TLS 1.3 for this domain; pick another cover domain',
      ),
    );
  } else {
    out.push(
      result(
        check,
        'ok',
        `${shownTarget} answers like a TLS 1.3 site (server flight ${profile.certRecordSize} bytes)`,
      ),
    );
    if (!profile.selectsPq && pq === true) {
      out.push(
        result(
          check,
          'warn',
          `${domain} supports X25519MLKEM768 but does not pick it for a Telegram-shaped hello that offers it`,
          'DPI in 2026 flags this mismatch; prefer a cover domain on a modern CDN or web server with PQ key exchange',
        ),
      );
    }
  }
  out.push(pqFinding(check, domain, shownTarget, pq));
  out.push(dnsFinding(check, domain, listener, addresses, dnsError, own));

  if ('error' in facts) {
    out.push(
      result(
        `clock`,
        'skip',
        `no HTTPS answer from ${shownTarget} (${facts.error}) to compare the clock with`,
      ),
    );
    return out;
  }
  if (facts.protocol !== 'TLSv1.3') {
    out.push(
      result(
        check,
        'fail',
        `${shownTarget} negotiated ${facts.protocol ?? 'no TLS version'} with a standard client, not TLS 1.3`,
        'fake-TLS imitates TLS 1.3; pick a cover domain whose server speaks TLS 1.3',
      ),
    );
  }
  if (!facts.authorized) {
    out.push(
      result(
        check,
        'warn',
        `the certificate ${shownTarget} shows for ${domain} is not trusted (${facts.authorizationError ?? 'unknown'})`,
        'a probe fronted there sees a broken site; use a domain with a valid certificate',
      ),
    );
  }
  if (facts.serverDate === null) {
    out.push(result('clock', 'skip', `${shownTarget} sent no HTTP Date header to compare the clock with`));
  } else {
    // The Date header has one-second resolution.
    const skewMs = facts.localDate - facts.serverDate;
    const seconds = Math.round(skewMs / 1000);
    const window = listener.tlsTimeSkewMs;
    const shown = `local clock is ${Math.abs(seconds)} s ${seconds >= 0 ? 'ahead of' : 'behind'} ${domain}`;
    const fix = 'enable time sync: timedatectl set-ntp true (or install chrony)';
    if (Math.abs(skewMs) > window) {
      out.push(result('clock', 'fail', `${shown}; fake-TLS accepts only ±${window / 1000} s`, fix));
    } else if (Math.abs(skewMs) > Math.max(window / 4, 5000)) {
      out.push(result('clock', 'warn', `${shown}; fake-TLS accepts ±${window / 1000} s`, fix));
    } else {
      out.push(result('clock', 'ok', `${shown} (within ±${window / 1000} s)`));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Telegram

async function reachAll(
  check: string,
  what: string,
  targets: Array<[number, HostPort[]]>,
  timeoutMs: number,
  fix: string,
): Promise<CheckResult> {
  const attempts = await Promise.all(
    targets.map(async ([dc, addresses]) => {
      let last = 'no address';
      // First reachable address in the order the upstream would try them; stop at the first success.
      for (const a of addresses.slice(0, 3)) {
        const r = await tcpConnectTime(a, timeoutMs);
        if ('ms' in r) return { dc, ok: true as const, text: `${dc}: ${Math.round(r.ms)} ms` };
        last = `${formatHostPort(a)} ${r.error}`;
      }
      return { dc, ok: false as const, text: `${dc}: ${last}` };
    }),
  );
  const reached = attempts.filter((a) => a.ok);
  const line = attempts.map((a) => a.text).join(', ');
  if (reached.length === attempts.length) return result(check, 'ok', `${what} reachable (${line})`);
  if (reached.length === 0) return result(check, 'fail', `no ${what} reachable (${line})`, fix);
  return result(check, 'warn', `some ${what} unreachable (${line})`, fix);
}

async function checkDirectDcs(config: Config, opts: DoctorOptions): Promise<CheckResult> {
  const targets: Array<[number, HostPort[]]> = TELEGRAM_DCS.map((dc) => [
    dc,
    resolveDc(dc, config.upstream)?.addresses ?? [],
  ]);
  return reachAll(
    'telegram direct',
    'Telegram DCs',
    targets,
    opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    'allow outbound TCP to Telegram (149.154.160.0/20, 91.108.4.0/22, port 443); if IPv4 is filtered try upstream.prefer_ipv6 = true',
  );
}

/** Middle mode: the public IPv4 goes into the RPC key derivation, so it must be right (NAT included). */
async function checkExternalIp(config: Config, timeoutMs: number): Promise<CheckResult> {
  const check = 'external ip';
  const configured = config.telegram.externalIp;
  if (configured) return result(check, 'ok', `telegram.external_ip = ${configured}`);
  const url = config.telegram.ipLookupUrl;
  if (!url)
    return result(check, 'ok', 'the local address of each upstream connection is used (ip_lookup_url = "")');
  let text: string;
  try {
    text = (await readSource(url, { configFile: config.file, timeoutMs })).toString('utf8').trim();
  } catch (e) {
    return result(
      check,
      'warn',
      `cannot detect the public IPv4 through ${url} (${errorCode(e)}); behind NAT the middle proxies will refuse the handshake`,
      'set telegram.external_ip = "PUBLIC" (or "LOCAL:PUBLIC" behind NAT)',
    );
  }
  if (net.isIP(text) !== 4) {
    return result(check, 'warn', `${url} did not answer with an IPv4 address`, 'set telegram.external_ip');
  }
  const local = interfaceAddresses().some((a) => a.address === text);
  return result(
    check,
    'ok',
    local
      ? `public IPv4 ${text} (an address of this host)`
      : `public IPv4 ${text} is not on this host (NAT): it is used in the middle-proxy key derivation`,
  );
}

async function checkMiddleProxies(config: Config, opts: DoctorOptions): Promise<CheckResult[]> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const source = config.telegram.proxyConfig;
  let text: string;
  try {
    text = (await readSource(source, { configFile: config.file, timeoutMs })).toString('utf8');
  } catch (e) {
    return [
      result(
        'telegram middle',
        'fail',
        `cannot read the middle-proxy list from ${source} (${errorCode(e)})`,
        'the proxy falls back to its cached copy in state_dir; if there is none, make core.telegram.org reachable or point telegram.proxy_config at a file',
      ),
    ];
  }
  let parsed: ReturnType<typeof parseProxyConfig>;
  try {
    parsed = parseProxyConfig(text);
  } catch (e) {
    return [
      result('telegram middle', 'fail', `${source} is not a middle-proxy list (${(e as Error).message})`),
    ];
  }
  const targets: Array<[number, HostPort[]]> = TELEGRAM_DCS.filter((dc) => parsed.dcs.has(dc)).map((dc) => [
    dc,
    parsed.dcs.get(dc) ?? [],
  ]);
  const out = [
    await reachAll(
      'telegram middle',
      'middle proxies',
      targets,
      timeoutMs,
      'allow outbound TCP to the addresses in the middle-proxy list (port 8888)',
    ),
  ];
  out.push(await checkExternalIp(config, timeoutMs));
  try {
    const secret = await readSource(config.telegram.proxySecret, { configFile: config.file, timeoutMs });
    out.push(
      result(
        'telegram secret',
        'ok',
        `proxy secret readable from ${config.telegram.proxySecret} (${secret.length} bytes)`,
      ),
    );
  } catch (e) {
    out.push(
      result(
        'telegram secret',
        'warn',
        `cannot read the proxy secret from ${config.telegram.proxySecret} (${errorCode(e)})`,
        'the cached copy in state_dir is used if there is one',
      ),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The link host: do the links lead to this server?

function machineAddresses(): string[] {
  return ['127.0.0.1', '::1', ...interfaceAddresses().map((a) => a.address)];
}

function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase().split('%')[0] === b.toLowerCase().split('%')[0];
}

/**
 * Whether a TCP connection to `target` ends at this machine: with the listener's port free, a listener of our
 * own on it must receive the random bytes the connection sends. Null when the port cannot be taken (the proxy
 * runs); else true, or why not.
 */
function reachesOwnListener(
  listen: HostPort,
  target: HostPort,
  timeoutMs: number,
): Promise<true | string | null> {
  return new Promise((resolve) => {
    const nonce = randomBytes(16);
    const server = net.createServer((socket) => {
      let seen = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk]).subarray(-64);
        if (seen.includes(nonce)) finish(true);
      });
      socket.on('error', () => {});
    });
    let client: net.Socket | null = null;
    let timer: NodeJS.Timeout | null = null;
    let done = false;
    function finish(r: true | string | null): void {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      client?.destroy();
      server.close();
      // A connection accepted but not yet closed would keep close() waiting; results do not wait for it.
      resolve(r);
    }
    server.once('error', (e: NodeJS.ErrnoException) =>
      finish(e.code === 'EADDRINUSE' || e.code === 'EACCES' ? null : errorCode(e)),
    );
    server.listen({ host: listen.host, port: listen.port, exclusive: true }, () => {
      timer = setTimeout(() => finish('timeout'), timeoutMs);
      client = net.connect({ host: target.host, port: target.port });
      client.on('connect', () => client?.write(nonce));
      client.on('error', (e) => finish(errorCode(e)));
      client.on('close', () => setTimeout(() => finish('closed by the other end'), 50).unref());
    });
  });
}

/** Connections the running proxy has accepted on `listener` (its admin API), or null without one. */
async function acceptedByProxy(config: Config, listener: string): Promise<number | null> {
  if (!config.admin.listen || !config.admin.token) return null;
  try {
    const client = AdminClient.fromConfig(config);
    const status = await client.call<{ listeners: Array<{ name: string; connectionsTotal: number }> }>(
      'GET',
      '/status',
    );
    return status.listeners.find((l) => l.name === listener)?.connectionsTotal ?? null;
  } catch {
    return null;
  }
}

/** With the proxy running on the port: the connection reaches it when the proxy counts one more accept. */
async function reachesRunningProxy(
  config: Config,
  l: ListenerConfig,
  target: HostPort,
  timeoutMs: number,
): Promise<{ connected: true; proxy: boolean | null } | { connected: false; error: string }> {
  const before = await acceptedByProxy(config, l.name);
  const socket = net.connect({ host: target.host, port: target.port });
  try {
    const connected = await new Promise<true | string>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        resolve(errorCode(e));
      });
    });
    if (connected !== true) return { connected: false, error: connected };
    if (before === null) return { connected: true, proxy: null };
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = await acceptedByProxy(config, l.name);
      if (now !== null && now > before) return { connected: true, proxy: true };
      if (Date.now() >= deadline) return { connected: true, proxy: false };
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    socket.destroy();
  }
}

async function checkOneLinkHost(
  config: Config,
  l: ListenerConfig,
  check: string,
  host: string,
  guessed: boolean,
  opts: DoctorOptions,
): Promise<CheckResult> {
  const network = opts.network !== false;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const shown = formatHostPort({ host, port: l.port });
  const setHost =
    'set public_host in the listener to the address or name users reach this server at (behind NAT: the public address, with the port forwarded here)';
  let addresses: string[];
  if (net.isIP(host)) addresses = [host];
  else if (!network)
    return result(check, 'skip', `${shown}: resolving ${host} needs the network (--offline)`);
  else {
    try {
      addresses = await resolveWithin(opts.resolveAddresses ?? systemAddresses, host, timeoutMs);
    } catch (e) {
      return result(
        check,
        'warn',
        `the links use ${host}, which does not resolve (${errorCode(e)}): apps cannot connect with them`,
        `give ${host} an A/AAAA record pointing at this server, or ${setHost}`,
      );
    }
    if (addresses.length === 0)
      return result(check, 'warn', `the links use ${host}, which has no A/AAAA records`, setHost);
  }
  const via = net.isIP(host) ? '' : ` (${addresses.join(', ')})`;
  const own = (opts.machineAddresses ?? machineAddresses)();
  const mine = addresses.filter((a) => own.some((o) => sameAddress(a, o)));
  if (mine.length > 0) {
    if (mine.some(isPublicIp))
      return result(check, 'ok', `the links use ${shown}${via}, a public address of this machine`);
    return result(
      check,
      'warn',
      `the links use ${shown}${via}, ${guessed ? 'a guess: ' : ''}an address of this machine that is not public, so only clients on its own network can use them`,
      setHost,
    );
  }
  if (!network)
    return result(
      check,
      'skip',
      `${shown} is not an address of this machine; checking the way there needs the network (--offline)`,
    );
  // Not an address of this machine (NAT, a forwarded port, a load balancer, or a wrong record): a connection
  // to it shows whether it ends here.
  const target = { host: addresses[0]!, port: l.port };
  const own2 = await reachesOwnListener({ host: l.host, port: l.port }, target, timeoutMs);
  const unreachable = (why: string) =>
    result(
      check,
      'warn',
      `the links use ${shown}${via}, which does not lead to this server (${why}): apps cannot connect with them`,
      `${setHost}; check the firewall or cloud security group for port ${l.port}`,
    );
  if (own2 === true)
    return result(
      check,
      'ok',
      `the links use ${shown}${via}, which leads to this machine (NAT or a forwarded port)`,
    );
  if (own2 !== null) return unreachable(own2);
  const running = await reachesRunningProxy(config, l, target, timeoutMs);
  if (!running.connected) return unreachable(running.error);
  if (running.proxy === true)
    return result(
      check,
      'ok',
      `the links use ${shown}${via}, which leads to this proxy's listener ${l.name}`,
    );
  if (running.proxy === false)
    return unreachable(`a connection there is accepted, but not by this proxy's listener ${l.name}`);
  return result(
    check,
    'ok',
    `the links use ${shown}${via}, which accepts connections (with [admin] configured doctor also tells whether it is this proxy)`,
  );
}

/** For each listener: the host its links carry leads to this server (and its IPv6 links, if it has any). */
export async function checkLinkHosts(config: Config, opts: DoctorOptions = {}): Promise<CheckResult[]> {
  const needing = listenersNeedingAddress(config);
  let found: PublicAddress | null = null;
  if (needing.length > 0) {
    found = await (
      opts.publicAddress ??
      ((c: Config) =>
        discoverPublicAddress(
          c,
          opts.network === false ? { lookup: () => Promise.reject(new Error('offline')) } : {},
        ))
    )(config);
  }
  const out: CheckResult[] = [];
  for (const l of config.listeners) {
    const check = `link ${l.name}`;
    if (l.port === 0) {
      out.push(
        result(check, 'skip', 'port 0 picks a free port at start: nothing to check the links against'),
      );
      continue;
    }
    const detected = needing.includes(l);
    const host = linkHost(config, l, () => found?.host ?? null);
    out.push(await checkOneLinkHost(config, l, check, host, detected && found?.source === 'guess', opts));
    const v6 = found?.ipv6;
    if (v6 && v6 !== host && takesIpv6Links(config, l)) {
      out.push(await checkOneLinkHost(config, l, `${check} IPv6`, v6, false, opts));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Health (the container's HEALTHCHECK): every listener accepts a connection

export async function checkHealth(config: Config, timeoutMs = 2000): Promise<CheckResult[]> {
  return Promise.all(
    config.listeners.map(async (l) => {
      const address = { host: loopbackFor(l.host), port: l.port };
      const r = await tcpConnectTime(address, timeoutMs);
      return 'ms' in r
        ? result(`listen ${l.name}`, 'ok', `${formatHostPort(address)} accepts connections`)
        : result(
            `listen ${l.name}`,
            'fail',
            `${formatHostPort(address)} does not accept connections (${r.error})`,
          );
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// All checks

function readLimits(): string | null {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
}

/**
 * Run every check. Results are delivered in a fixed order through `onResult` as soon as the ones before them
 * are done (the network checks run concurrently), and returned at the end.
 */
export async function runDoctor(
  config: Config,
  opts: DoctorOptions = {},
  onResult: (r: CheckResult) => void = () => {},
): Promise<CheckResult[]> {
  const network = opts.network !== false;
  const tracked = <T>(label: string, work: () => Promise<T>): Promise<T> => {
    opts.progress?.('start', label);
    return work().finally(() => opts.progress?.('end', label));
  };
  const groups: Array<Promise<CheckResult[]>> = [];
  groups.push(Promise.resolve(checkConfig(config)));
  groups.push(
    Promise.resolve([checkFdLimit(config, opts.limitsText !== undefined ? opts.limitsText : readLimits())]),
  );
  if (opts.bind !== false) {
    groups.push(Promise.all(bindTargets(config).map(([label, address]) => checkBind(label, address))));
  }
  // After the bind checks: it may hold a listener's port for a moment itself.
  const bound = Promise.all(groups);
  groups.push(bound.then(() => tracked('link host', () => checkLinkHosts(config, opts))));

  if (network) {
    const seen = new Set<string>();
    for (const l of config.listeners) {
      if (!l.allowedProtocols.includes('tls')) continue;
      for (const domain of l.tlsDomains) {
        const id = `${JSON.stringify(l.fronting)}/${domain}`;
        if (seen.has(id)) continue;
        seen.add(id);
        groups.push(tracked(`cover domain ${domain}`, () => checkCoverDomain(config, l, domain, opts)));
      }
    }
    const middle = middleListeners(config);
    if (middle.length < config.listeners.length) {
      groups.push(tracked('Telegram DCs', async () => [await checkDirectDcs(config, opts)]));
    }
    if (middle.length > 0) {
      groups.push(tracked('middle proxies', () => checkMiddleProxies(config, opts)));
    }
  } else {
    groups.push(Promise.resolve([result('network', 'skip', 'network checks skipped (--offline)')]));
  }

  const all: CheckResult[] = [];
  for (const group of groups) {
    for (const r of await group) {
      all.push(r);
      onResult(r);
    }
  }
  return all;
}

/** Exit status: 1 when anything failed. */
export function doctorExitCode(results: CheckResult[]): number {
  return results.some((r) => r.status === 'fail') ? 1 : 0;
}

const LABELS: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' };

/** One line per check, the fix indented under it. */
export function formatResult(r: CheckResult): string {
  const line = `${LABELS[r.status]}  ${r.check.padEnd(18)} ${r.message}`;
  return r.fix ? `${line}\n${' '.repeat(25)}-> ${r.fix}` : line;
}
