/**
 * Domain fronting (anti-probing): a connection that failed as a proxy client on a fake-TLS listener is
 * spliced, byte for byte and starting with what was already read, to a real web server, so a prober sees
 * that server's certificate and page. Bounded in time (timeouts.fronting) and bytes
 * (buffers.fronting_max_bytes, each way); never towards one of our own listeners.
 */
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import type { Config, ListenerConfig } from '../config/types.ts';
import type { Logger } from '../log.ts';
import type { Stats } from '../metrics/stats.ts';
import type { PolicySubject } from '../policy/types.ts';
import { encodeProxyHeader } from '../protocol/proxy-protocol.ts';
import { interfaceAddresses } from '../runtime/interfaces.ts';
import { badClientCloseDelay } from '../runtime/timers.ts';
import { normaliseDomain, servesDomain } from './domains.ts';

export interface FrontingDestination {
  host: string;
  port: number;
  /** The host came from the client's SNI without the operator naming it: refuse private addresses. */
  untrusted: boolean;
}

/** Where this listener fronts a connection with this SNI, or null (close instead). */
export function frontingDestination(
  listener: ListenerConfig,
  sni: string | null,
): FrontingDestination | null {
  const f = listener.fronting;
  if (f.kind === 'off') return null;
  if (f.kind === 'fixed') return { host: f.host, port: f.port, untrusted: false };
  // 'sni': a served cover domain goes to itself; anything else to our first cover domain, so a prober
  // cannot make us connect to hosts of its choosing.
  if (sni !== null && listener.tlsDomains.length > 0 && servesDomain(listener, sni)) {
    return { host: normaliseDomain(sni), port: f.port, untrusted: false };
  }
  if (listener.tlsDomains.length > 0) return { host: listener.tlsDomains[0], port: f.port, untrusted: false };
  if (sni !== null) return { host: normaliseDomain(sni), port: f.port, untrusted: true };
  return null;
}

function parseIp(address: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  try {
    const ip = ipaddr.parse(address.split('%')[0]);
    if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
      return (ip as ipaddr.IPv6).toIPv4Address();
    }
    return ip;
  } catch {
    return null;
  }
}

function sameIp(a: string, b: string): boolean {
  const x = parseIp(a);
  const y = parseIp(b);
  return (
    x !== null && y !== null && x.kind() === y.kind() && x.toNormalizedString() === y.toNormalizedString()
  );
}

function isUnspecified(address: string): boolean {
  const ip = parseIp(address);
  return ip !== null && ip.range() === 'unspecified';
}

/** Loopback, unspecified, or an address of one of this host's interfaces. */
function isLocalAddress(address: string): boolean {
  const ip = parseIp(address);
  if (ip === null) return false;
  const range = ip.range();
  if (range === 'loopback' || range === 'unspecified') return true;
  // Read in the background, never here: a sandbox may forbid reading them, and this runs for a client.
  for (const nic of interfaceAddresses()) if (sameIp(nic.address, address)) return true;
  return false;
}

/** Whether `address:port` reaches this proxy: the listener the client came in on, or any configured one. */
export function loopsBack(
  address: string,
  port: number,
  config: Config,
  local: { address?: string; port?: number },
): boolean {
  const endpoints: { host: string; port: number }[] = config.listeners.map((l) => ({
    host: l.host,
    port: l.port,
  }));
  if (local.address && local.port) endpoints.push({ host: local.address, port: local.port });
  for (const e of endpoints) {
    if (e.port !== port) continue;
    if (
      isUnspecified(e.host)
        ? isLocalAddress(address)
        : sameIp(e.host, address) || (isLocalAddress(e.host) && isUnspecified(address))
    ) {
      return true;
    }
  }
  return false;
}

function isPrivateAddress(address: string): boolean {
  const ip = parseIp(address);
  return ip === null || ip.range() !== 'unicast';
}

async function resolve(host: string): Promise<{ address: string; family: number }[]> {
  const literal = net.isIP(host);
  if (literal !== 0) return [{ address: host, family: literal }];
  try {
    return await lookup(host, { all: true });
  } catch {
    return [];
  }
}

/** What fronting needs of the session's environment (a SessionEnv is one). */
export interface FrontingEnv {
  config(): Config;
  log: Logger;
  stats: Stats;
  policy: { allowFronting(subject: PolicySubject): boolean };
}

export function frontConnection(
  socket: net.Socket,
  alreadyRead: Buffer,
  listener: ListenerConfig,
  sni: string | null,
  env: FrontingEnv,
): void {
  const destination = frontingDestination(listener, sni);
  const remoteAddress = socket.remoteAddress ?? '';
  const allowed =
    destination !== null &&
    env.policy.allowFronting({
      listener: listener.name,
      remoteAddress,
      tlsDomain: sni === null ? null : normaliseDomain(sni),
    });
  if (!allowed || destination === null) {
    hangUpLater(socket);
    return;
  }
  const config = env.config();
  const log = env.log;
  const maxBytes = config.buffers.frontingMaxBytes;
  const lifetimeMs = config.timeouts.frontingMs;
  const listenerStats = env.stats.listener(listener.name);
  listenerStats.fronted++;
  socket.on('error', () => socket.destroy());

  let upstream: net.Socket | null = null;
  let closed = false;
  const closeBoth = (): void => {
    if (closed) return;
    closed = true;
    clearTimeout(lifetime);
    socket.destroy();
    upstream?.destroy();
  };
  const cutOff = (): void => {
    if (closed) return;
    listenerStats.frontingCutOff++;
    closeBoth();
  };
  // No site to splice to: hang up after the same random pause as any failed client, not at once.
  const giveUp = (): void => {
    if (closed) return;
    closed = true;
    clearTimeout(lifetime);
    upstream?.destroy();
    hangUpLater(socket);
  };
  // Also bounds the DNS lookup and the connect.
  const lifetime = setTimeout(cutOff, lifetimeMs);
  lifetime.unref();
  socket.once('close', () => {
    // Let the target finish what it was sending only while the client is still there.
    if (upstream && !upstream.destroyed) upstream.end();
    setTimeout(closeBoth, 1000).unref();
  });

  void resolve(destination.host).then((addresses) => {
    if (closed) return;
    const refuse = (why: string): void => {
      log.debug({ listener: listener.name, target: destination.host, why }, 'fronting refused');
      giveUp();
    };
    if (addresses.length === 0) return refuse('unresolved');
    const local = { address: socket.localAddress, port: socket.localPort };
    // Any address of the name pointing back at us means a misconfiguration: refuse them all.
    if (addresses.some((a) => loopsBack(a.address, destination.port, config, local))) return refuse('loop');
    const usable = destination.untrusted ? addresses.filter((a) => !isPrivateAddress(a.address)) : addresses;
    if (usable.length === 0) return refuse('private address');
    connectTo(usable, 0);
  });

  const connectTo = (addresses: { address: string; family: number }[], index: number): void => {
    if (closed) return;
    // The client gave up while we were resolving: nothing to splice.
    if (socket.destroyed) {
      closeBoth();
      return;
    }
    const target = net.connect({
      host: addresses[index].address,
      port: destination.port,
      family: addresses[index].family,
    });
    upstream = target;
    target.setNoDelay(true);
    let connected = false;
    target.on('error', () => {
      // Next address of the name (e.g. ::1 refused, 127.0.0.1 listening), else give up.
      if (!connected && index + 1 < addresses.length && !closed) {
        target.destroy();
        connectTo(addresses, index + 1);
        return;
      }
      if (connected) closeBoth();
      else giveUp();
    });
    target.on('close', () => {
      if (!connected) return;
      if (!socket.destroyed) socket.end();
      setTimeout(closeBoth, 1000).unref();
    });
    target.on('connect', () => {
      connected = true;
      if (closed) return;
      if (listener.frontingProxyProtocol !== 'off') {
        target.write(
          encodeProxyHeader(listener.frontingProxyProtocol, {
            sourceAddress: remoteAddress,
            sourcePort: socket.remotePort ?? 0,
            destinationAddress: socket.localAddress ?? '',
            destinationPort: socket.localPort ?? 0,
          }),
        );
      }
      if (alreadyRead.length > 0) target.write(alreadyRead);
      let fromClient = alreadyRead.length;
      let toClient = 0;
      listenerStats.frontedBytesFromClient += alreadyRead.length;
      socket.on('data', (chunk: Buffer) => {
        fromClient += chunk.length;
        listenerStats.frontedBytesFromClient += chunk.length;
        if (fromClient > maxBytes) cutOff();
      });
      target.on('data', (chunk: Buffer) => {
        toClient += chunk.length;
        listenerStats.frontedBytesToClient += chunk.length;
        if (toClient > maxBytes) cutOff();
      });
      // pipe() carries backpressure both ways and half-closes the other side on end.
      socket.pipe(target);
      target.pipe(socket);
      socket.resume();
    });
  };
}

/**
 * Close a connection we cannot front after the random pause a failed client gets, reading and discarding
 * meanwhile, so an unreachable or refused target does not show as an instant hang-up.
 */
function hangUpLater(socket: net.Socket): void {
  socket.on('error', () => socket.destroy());
  socket.resume();
  setTimeout(() => socket.destroy(), badClientCloseDelay(Number.POSITIVE_INFINITY)).unref();
}
