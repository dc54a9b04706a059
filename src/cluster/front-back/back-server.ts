/**
 * The back end of front→back links: accepts TLS links from fronts holding a certificate of the cluster CA,
 * and serves each stream with its own upstream (direct: a DC connection; middle: a client on the middle-proxy
 * pools), exactly as a session of this machine would be served. The ad tag travels with the stream.
 */
import tls from 'node:tls';
import type { Config, HostPort, ListenerConfig } from '../../config/types.ts';
import type { Logger } from '../../log.ts';
import { createFrameCodec, type FrameCodec, MIN_CLIENT_PAYLOAD } from '../../protocol/framing/codec.ts';
import type { TransportTag } from '../../protocol/obfuscated2.ts';
import { errorCode } from '../../runtime/errors.ts';
import type { ClientInfo, ClientSink, Upstream, UpstreamHandle } from '../../upstream/types.ts';
import { decodeOpen, encodeFrame, FRAME_OPENED, type OpenMeta, type UpstreamMode } from './codec.ts';
import { LINK_ALPN, Link, type LinkOwner, LinkStream } from './link.ts';
import type { LinkCredentials } from './tls.ts';

export interface BackServerOptions {
  getConfig: () => Config;
  /** The upstream of this machine for a session in `mode` (what the front decided). */
  upstreamFor: (mode: UpstreamMode) => Upstream;
  log: Logger;
}

/** Counters for the admin status (and tests). */
export interface BackCounters {
  linksAccepted: number;
  linksRefused: number;
  streamsOpened: number;
  streamsFailed: number;
}

export class BackServer implements LinkOwner {
  readonly links = new Set<Link>();
  readonly counters: BackCounters = { linksAccepted: 0, linksRefused: 0, streamsOpened: 0, streamsFailed: 0 };
  private readonly server: tls.Server;
  private readonly opts: BackServerOptions;
  /** Synthetic listeners by name and ad tag (a stream's metadata names them), bounded. */
  private readonly listenerCache = new Map<string, ListenerConfig>();
  private listenerBase: ListenerConfig | null = null;

  constructor(credentials: LinkCredentials, opts: BackServerOptions) {
    this.opts = opts;
    this.server = tls.createServer({
      ...credentials,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      ALPNProtocols: [LINK_ALPN],
    });
    this.server.on('secureConnection', (socket) => this.onLink(socket));
    this.server.on('tlsClientError', (err, socket) => {
      this.counters.linksRefused++;
      this.opts.log.debug(
        { remote: socket.remoteAddress, code: errorCode(err, 'tls') },
        'front link refused (TLS handshake)',
      );
    });
  }

  listen(at: HostPort): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(at.port, at.host, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.opts.log.warn({ err: err.message }, 'link listener error'));
        resolve();
      });
    });
  }

  address(): HostPort {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('the link listener is not listening');
    return { host: a.address, port: a.port };
  }

  private onLink(socket: tls.TLSSocket): void {
    if (!socket.authorized || socket.alpnProtocol !== LINK_ALPN) {
      this.counters.linksRefused++;
      socket.destroy();
      return;
    }
    this.counters.linksAccepted++;
    const link = new Link(socket, this);
    this.links.add(link);
    this.opts.log.info({ front: link.peerName, remote: socket.remoteAddress }, 'front linked');
  }

  /** @internal (link) */
  onOpen(link: Link, id: number, payload: Buffer): void {
    const meta = decodeOpen(payload);
    const stream = new BackStream(link, id);
    if (meta === null) {
      this.counters.streamsFailed++;
      stream.close('MTP_ERR_LINK_BAD_OPEN');
      return;
    }
    const listener = this.listenerFor(meta);
    const info: ClientInfo = {
      listener,
      transport: meta.transport,
      dcId: meta.dcId,
      remoteAddress: meta.remoteAddress,
      remotePort: meta.remotePort,
      localAddress: meta.localAddress,
      localPort: meta.localPort,
      tlsDomain: meta.tlsDomain,
      user: meta.user,
    };
    let opening: Promise<UpstreamHandle>;
    try {
      opening = this.opts.upstreamFor(meta.mode).open(info, stream);
    } catch (err) {
      opening = Promise.reject(err);
    }
    opening.then(
      (handle) => {
        this.counters.streamsOpened++;
        stream.attach(handle, meta.transport);
      },
      (err: unknown) => {
        this.counters.streamsFailed++;
        this.opts.log.debug(
          { dc: meta.dcId, user: meta.user ?? undefined, code: errorCode(err) },
          'stream upstream open failed',
        );
        stream.close(errorCode(err, 'MTP_ERR_UPSTREAM_CONNECT'));
      },
    );
  }

  /**
   * A listener as the upstreams read it: this machine's first listener, named and tagged as the front's
   * (what upstreams read of it is the name, for logs, and the ad tag).
   */
  private listenerFor(meta: OpenMeta): ListenerConfig {
    const config = this.opts.getConfig();
    const base = config.listeners[0];
    if (base !== this.listenerBase) {
      this.listenerBase = base;
      this.listenerCache.clear();
    }
    const key = `${meta.listener}\n${meta.adTag?.toString('hex') ?? ''}`;
    let l = this.listenerCache.get(key);
    if (l === undefined) {
      l = { ...base, name: meta.listener || base.name, adTag: meta.adTag };
      if (this.listenerCache.size >= 1024) this.listenerCache.clear();
      this.listenerCache.set(key, l);
    }
    return l;
  }

  /** @internal (link) */
  onLinkClosed(link: Link, reason: string): void {
    this.links.delete(link);
    this.opts.log.info({ front: link.peerName, reason }, 'front link closed');
  }

  status(): Record<string, unknown> {
    return {
      role: 'back',
      fronts: [...this.links].map((l) => ({ name: l.peerName, streams: l.streams.size })),
      ...this.counters,
    };
  }

  /** Stop accepting and close every link (their streams end). */
  close(): Promise<void> {
    for (const link of [...this.links]) link.destroy('shutdown');
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** One session served here: front ⇄ this stream ⇄ its upstream. */
class BackStream extends LinkStream implements ClientSink {
  private handle: UpstreamHandle | null = null;
  /** Middle mode: the client's frames are decoded here and answers framed (the front relays raw bytes). */
  private codec: FrameCodec | null = null;
  private upstreamAccepting = true;
  /** We asked the upstream to pause (the front's window is used up, or the link is full). */
  private upstreamPaused = false;
  /** Data that came before the upstream was ready (the front sends none before OPENED; bounded anyway). */
  private early: Buffer[] | null = [];
  private readonly onClientFrame = (payload: Buffer, quickAck: boolean): void => {
    if (this.handle !== null && !this.handle.writeFrame(payload, quickAck)) this.upstreamAccepting = false;
  };

  attach(handle: UpstreamHandle, transport: TransportTag): void {
    if (this.ended) {
      handle.close();
      return;
    }
    this.handle = handle;
    if (handle.framed)
      this.codec = createFrameCodec(transport, { requireAligned: true, minPayload: MIN_CLIENT_PAYLOAD });
    this.link.send(encodeFrame(FRAME_OPENED, this.id));
    const early = this.early;
    this.early = null;
    if (early !== null) for (const b of early) this.onData(b);
  }

  // ---- front -> upstream ----

  onData(payload: Buffer): void {
    const handle = this.handle;
    if (handle === null) {
      if (this.early !== null) this.early.push(Buffer.from(payload));
      return;
    }
    let accepting: boolean;
    try {
      if (this.codec !== null) {
        this.upstreamAccepting = true;
        this.codec.decode(payload, this.onClientFrame);
        accepting = this.upstreamAccepting;
      } else accepting = handle.writeBytes(payload);
    } catch (err) {
      // A client frame that cannot be MTProto: this session only.
      this.close(errorCode(err, 'MTP_ERR_BAD_FRAME'));
      handle.close();
      return;
    }
    if (!accepting) this.hold();
    this.consumed(payload.length);
  }

  override onPeerEnd(): void {
    if (this.handle?.endInput) this.handle.endInput();
    // An upstream that cannot half-close (middle): the session ends here, and the front is told so.
    else this.close('client_end');
  }

  onPeerClose(_reason: string): void {
    this.early = null;
    this.handle?.close();
    this.handle = null;
  }

  // ---- ClientSink: upstream -> front ----

  sendBytes(plain: Buffer): boolean {
    if (this.ended) return false;
    return this.afterSend(this.send(plain));
  }

  sendFrame(payload: Buffer): boolean {
    if (this.ended) return false;
    const codec = this.codec ?? (this.codec = createFrameCodec('intermediate'));
    return this.afterSend(this.send(codec.encode(payload)));
  }

  sendQuickAck(token: number): void {
    if (this.ended || this.codec === null) return;
    this.afterSend(this.send(this.codec.encodeQuickAck(token)));
  }

  private afterSend(ok: boolean): boolean {
    if (!ok && !this.upstreamPaused) {
      this.upstreamPaused = true;
      this.handle?.pause();
    }
    // A shared (middle) upstream cannot stop reading for one client: bound what waits for it.
    if (this.codec !== null && this.queued > MAX_STREAM_BACKLOG) {
      this.close('client_backlog');
      this.handle?.close();
      this.handle = null;
      return false;
    }
    return ok;
  }

  onSendable(): void {
    if (!this.upstreamPaused) return;
    this.upstreamPaused = false;
    this.handle?.resume();
  }

  resumeClient(): void {
    this.release();
  }

  override close(reason: string): void {
    super.close(reason);
    // Called by the upstream (it is gone) or by us; either way the handle is released.
    const handle = this.handle;
    this.handle = null;
    handle?.close();
  }
}

/** Bytes a middle-mode stream may queue towards a front that does not take them, before it is dropped. */
const MAX_STREAM_BACKLOG = 1024 * 1024;
