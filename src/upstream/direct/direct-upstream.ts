/**
 * Direct mode: one TCP connection to a Telegram DC per client, speaking obfuscated2 without a secret (the
 * DC leg has its own random keys). Bytes pass through without frame parsing: the session decrypts the
 * client leg, we encrypt for the DC, and the reverse on the way back.
 */
import net from 'node:net';
import type { Config, HostPort, UpstreamConfig } from '../../config/types.ts';
import type { Logger } from '../../log.ts';
import type { DcStats, Stats } from '../../metrics/stats.ts';
import { createFrameCodec, type FrameCodec } from '../../protocol/framing/codec.ts';
import { type CtrStream, createInitiatorHeader, type TransportTag } from '../../protocol/obfuscated2.ts';
import { isFdExhaustion, reportFdExhaustion } from '../../runtime/fd-pressure.ts';
import { closeAfterFlush } from '../../runtime/sockets.ts';
import type { ClientInfo, ClientSink, Upstream, UpstreamHandle } from '../types.ts';
import { overTurnBudget, type TurnBudget } from '../../runtime/read-budget.ts';
import { type DcRoute, resolveDc } from './dc-addresses.ts';
import { errorCode } from '../../runtime/errors.ts';
import { UpstreamError } from '../errors.ts';

/** DC socket events reach their link through this property (one shared listener per event for all links). */
const LINK = Symbol('mtproxy.directLink');
type LinkSocket = net.Socket & { [LINK]?: DirectLink };

function linkOf(socket: net.Socket): DirectLink | undefined {
  return (socket as LinkSocket)[LINK];
}

/**
 * Every DC socket of this thread reads into this one buffer: a link decrypts what it read before returning
 * (the plaintext is a new buffer), so nothing refers to it afterwards. Node would otherwise allocate a 64 KiB
 * block per read and pass it through the stream machinery; here each read is one call.
 */
const DC_READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);

/** A connect in progress: what the shared connect listeners settle (no closures per connect). */
interface PendingConnect {
  resolve(socket: net.Socket): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  addr: HostPort;
}

const PENDING = Symbol('mtproxy.pendingConnect');
type ConnectingSocket = net.Socket & { [PENDING]?: PendingConnect };

/** TCP keep-alive of a DC socket: the first probe after this much silence. */
export const DC_KEEPALIVE_DELAY_MS = 60_000;
/**
 * How often the links are swept for keep-alive. A link gets it at the second sweep it lives through (15-30 s
 * old): enabling it costs four setsockopt calls, which most sessions (a connect, a few requests, gone) would
 * pay for nothing, and a probe comes only after a minute of silence anyway.
 */
export const DC_KEEPALIVE_SWEEP_MS = 15_000;

/**
 * TCP connect with a timeout towards a DC; resolves with the connected socket, with no-delay set (keep-alive
 * comes later, see DC_KEEPALIVE_SWEEP_MS). Its reads go to its link (found through LINK) and never to 'data'
 * listeners.
 */
export function connectTcp(addr: HostPort, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket: ConnectingSocket = net.connect({
      host: addr.host,
      port: addr.port,
      noDelay: true,
      onread: { buffer: DC_READ_BUFFER, callback: dcRead },
    });
    socket[PENDING] = { resolve, reject, addr, timer: setTimeout(connectTimedOut, timeoutMs, socket) };
    socket.on('error', connectFailed);
    socket.on('connect', connected);
  });
}

/** Take the pending connect off `socket` (once) and stop listening for its outcome. */
function settle(socket: ConnectingSocket): PendingConnect | undefined {
  const pending = socket[PENDING];
  if (pending === undefined) return undefined;
  socket[PENDING] = undefined;
  clearTimeout(pending.timer);
  socket.off('error', connectFailed);
  socket.off('connect', connected);
  return pending;
}

function connected(this: ConnectingSocket): void {
  settle(this)?.resolve(this);
}

function connectFailed(this: ConnectingSocket, err: Error): void {
  const pending = settle(this);
  this.destroy();
  pending?.reject(err);
}

function connectTimedOut(socket: ConnectingSocket): void {
  const pending = settle(socket);
  if (pending === undefined) return;
  socket.on('error', ignoreError);
  socket.destroy();
  const { host, port } = pending.addr;
  pending.reject(new UpstreamError('MTP_ERR_UPSTREAM_TIMEOUT', `connect to ${host}:${port} timed out`));
}

function ignoreError(): void {}

export class DirectUpstream implements Upstream {
  readonly kind = 'direct' as const;
  private readonly getConfig: () => Config;
  private readonly log: Logger;
  private readonly stats: Stats;
  /** Open links, so that close() can stop them all. */
  readonly links = new Set<DirectLink>();
  /**
   * Routes of the current upstream settings by DC id (a reload brings a new settings object). Bounded: an
   * authenticated client can name any of 65,536 ids, and unknown ones only cost a fresh lookup.
   */
  private routes = new WeakMap<UpstreamConfig, Map<number, DcRoute | null>>();
  /** The keep-alive sweep, armed while links are open. */
  private keepAliveSweep: NodeJS.Timeout | null = null;

  constructor(getConfig: () => Config, log: Logger, stats: Stats) {
    this.getConfig = getConfig;
    this.log = log;
    this.stats = stats;
  }

  async open(client: ClientInfo, sink: ClientSink): Promise<UpstreamHandle> {
    const cfg = this.getConfig().upstream;
    const route = this.route(client.dcId, cfg);
    if (route === null) throw new UpstreamError('MTP_ERR_NO_DC', `no address for DC ${client.dcId}`);
    if (route.fallback) {
      this.log.debug(
        { listener: client.listener.name, dc: client.dcId, via: route.dcId },
        'unknown DC, using default',
      );
    }
    const dcStats = this.stats.dc(route.dcId);
    const attempts = Math.max(1, cfg.connectRetries + 1);
    let lastError: unknown = null;
    for (let i = 0; i < attempts; i++) {
      const addr = route.addresses[i % route.addresses.length];
      try {
        const socket = await connectTcp(addr, cfg.connectTimeoutMs);
        dcStats.connects++;
        const link = new DirectLink(socket, client.transport, route.dcId, sink, dcStats, this.links);
        this.armKeepAliveSweep();
        return link;
      } catch (err) {
        dcStats.connectErrors++;
        dcStats.error(errorCode(err, 'connect'));
        lastError = err;
        const code = errorCode(err, '');
        if (isFdExhaustion(code)) {
          // Another address would fail the same way; the listeners slow down instead.
          reportFdExhaustion(code, 'dc-connect');
          break;
        }
        this.log.debug(
          { dc: route.dcId, host: addr.host, port: addr.port, code: errorCode(err, '') || undefined },
          'DC connect failed',
        );
      }
    }
    const code = errorCode(lastError, 'unknown');
    throw new UpstreamError('MTP_ERR_UPSTREAM_CONNECT', `DC ${route.dcId} unreachable (${code})`);
  }

  private route(dcId: number, cfg: UpstreamConfig): DcRoute | null {
    let known = this.routes.get(cfg);
    if (known === undefined) this.routes.set(cfg, (known = new Map()));
    let route = known.get(dcId);
    if (route === undefined) {
      route = resolveDc(dcId, cfg);
      if (known.size < MAX_CACHED_ROUTES) known.set(dcId, route);
    }
    return route;
  }

  private armKeepAliveSweep(): void {
    if (this.keepAliveSweep !== null) return;
    this.keepAliveSweep = setTimeout(() => {
      this.keepAliveSweep = null;
      for (const link of this.links) link.sweptForKeepAlive();
      if (this.links.size > 0) this.armKeepAliveSweep();
    }, DC_KEEPALIVE_SWEEP_MS);
    this.keepAliveSweep.unref();
  }

  async close(): Promise<void> {
    if (this.keepAliveSweep !== null) clearTimeout(this.keepAliveSweep);
    this.keepAliveSweep = null;
    for (const link of [...this.links]) link.close();
  }
}

/** DC ids whose route is kept (real clients name a dozen at most). */
const MAX_CACHED_ROUTES = 64;

/** One client's connection to its DC. */
export class DirectLink implements UpstreamHandle, TurnBudget {
  readonly framed = false;
  private readonly socket: net.Socket;
  private readonly encrypt: CtrStream;
  private readonly decrypt: CtrStream;
  private readonly sink: ClientSink;
  private readonly stats: DcStats;
  private readonly registry: Set<DirectLink>;
  private readonly transport: TransportTag;
  private codec: FrameCodec | null = null;
  private closed = false;
  /** Reads of this turn (see read-budget.ts); paused by the session's backpressure, or until the next turn. */
  turnEpoch = 0;
  turnBytes = 0;
  private pausedBySink = false;
  private yielded = false;
  /** Keep-alive sweeps lived through (see DC_KEEPALIVE_SWEEP_MS); keep-alive is on from the second. */
  private sweeps = 0;
  /**
   * Our obfuscated2 header, until it goes out with the first bytes for the DC (one write, one segment, as a
   * real client sends it); a link with nothing to send by the next turn of the event loop sends it alone.
   */
  private header: Buffer | null;

  constructor(
    socket: net.Socket,
    transport: TransportTag,
    dcId: number,
    sink: ClientSink,
    stats: DcStats,
    registry: Set<DirectLink>,
  ) {
    this.socket = socket;
    this.transport = transport;
    this.sink = sink;
    this.stats = stats;
    this.registry = registry;
    const hs = createInitiatorHeader(transport, dcId, null);
    this.encrypt = hs.encrypt;
    this.decrypt = hs.decrypt;
    registry.add(this);
    stats.linksActive++;
    (socket as LinkSocket)[LINK] = this;
    socket.on('drain', dcDrain);
    socket.on('end', dcEnd);
    socket.on('error', dcError);
    socket.on('close', dcClose);
    this.header = hs.header;
    setImmediate(flushHeader, this);
  }

  writeBytes(plain: Buffer): boolean {
    if (this.closed) return false;
    const out = this.encrypt.update(plain);
    const header = this.header;
    if (header === null) {
      this.stats.bytesToDc += out.length;
      return this.socket.write(out);
    }
    this.header = null;
    const first = Buffer.allocUnsafe(header.length + out.length);
    header.copy(first, 0);
    out.copy(first, header.length);
    this.stats.bytesToDc += first.length;
    return this.socket.write(first);
  }

  /** @internal One more keep-alive sweep lived through: keep-alive goes on at the second. */
  sweptForKeepAlive(): void {
    if (++this.sweeps !== 2 || this.closed) return;
    this.socket.setKeepAlive(true, DC_KEEPALIVE_DELAY_MS);
  }

  /** Whether TCP keep-alive is on for this link's socket (tests). */
  get keepAlive(): boolean {
    return this.sweeps >= 2;
  }

  /** @internal Send the header alone if no data came to carry it. */
  flushHeader(): void {
    const header = this.header;
    if (header === null || this.closed) return;
    this.header = null;
    this.stats.bytesToDc += header.length;
    this.socket.write(header);
  }

  /** Not used by sessions in direct mode (framed = false), but correct if called: frame, then send. */
  writeFrame(payload: Buffer, quickAck: boolean): boolean {
    const codec = this.codec ?? (this.codec = createFrameCodec(this.transport));
    return this.writeBytes(codec.encode(payload, quickAck));
  }

  pause(): void {
    this.pausedBySink = true;
    if (!this.closed) this.socket.pause();
  }

  resume(): void {
    this.pausedBySink = false;
    if (!this.closed && !this.yielded) this.socket.resume();
  }

  /** @internal The next turn of the event loop after a yield. */
  resumeAfterYield(): void {
    this.yielded = false;
    if (!this.closed && !this.pausedBySink) this.socket.resume();
  }

  endInput(): void {
    if (this.closed) return;
    this.flushHeader();
    this.socket.end();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.registry.delete(this);
    this.stats.linksActive--;
    closeAfterFlush(this.socket);
  }

  /** @internal (socket read callback) `chunk` is a view of the shared read buffer: used up before returning. */
  onData(chunk: Buffer): void {
    // A closed link may still be flushing its last bytes to the DC; what the DC says now goes nowhere.
    if (this.closed) return;
    this.stats.bytesFromDc += chunk.length;
    // Backpressure comes back through pause()/resume(): the session calls them when the client's socket
    // fills and drains.
    this.sink.sendBytes(this.decrypt.update(chunk));
    if (overTurnBudget(this, chunk.length) && !this.yielded && !this.pausedBySink && !this.closed) {
      this.yielded = true;
      this.socket.pause();
      setImmediate(resumeLinkAfterYield, this);
    }
  }

  /** @internal (socket listener) */
  onDrain(): void {
    if (!this.closed) this.sink.resumeClient();
  }

  /** @internal (socket listener) */
  onError(err: Error): void {
    this.stats.error(errorCode(err, 'error'));
    this.gone('dc_error');
  }

  /** @internal The DC side ended or failed: close the link and tell the session (once). */
  gone(reason: string): void {
    if (this.closed) return;
    this.close();
    this.sink.close(reason);
  }
}

// Shared DC socket listeners: `this` is the socket.

/**
 * A DC socket read `length` bytes into DC_READ_BUFFER. The link is in place before the DC can answer (it is
 * made in the continuation of the connect, before the event loop polls again). Always true: pausing follows
 * the client socket's backpressure through pause()/resume().
 */
function dcRead(this: net.Socket, length: number): boolean {
  linkOf(this)?.onData(DC_READ_BUFFER.subarray(0, length));
  return true;
}

function dcDrain(this: net.Socket): void {
  linkOf(this)?.onDrain();
}

function dcEnd(this: net.Socket): void {
  linkOf(this)?.gone('dc_end');
}

function dcError(this: net.Socket, err: Error): void {
  linkOf(this)?.onError(err);
}

function dcClose(this: net.Socket): void {
  linkOf(this)?.gone('dc_closed');
}

function resumeLinkAfterYield(link: DirectLink): void {
  link.resumeAfterYield();
}

function flushHeader(link: DirectLink): void {
  link.flushHeader();
}
