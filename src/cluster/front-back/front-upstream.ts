/**
 * The front's upstream: each session becomes a stream on a link to one of the backs, which reaches Telegram
 * for it. Sessions are spread over the backs whose link is up (fewest streams first); a back that goes away
 * ends its sessions, and new ones go to the others while its link reconnects with backoff.
 */
import tls from 'node:tls';
import { formatHostPort, upstreamKind } from '../../config/addresses.ts';
import type { Config, HostPort } from '../../config/types.ts';
import type { Logger } from '../../log.ts';
import { errorCode } from '../../runtime/errors.ts';
import { UpstreamError } from '../../upstream/errors.ts';
import type { ClientInfo, ClientSink, Upstream, UpstreamHandle } from '../../upstream/types.ts';
import { encodeFrame, encodeOpen, FRAME_END, FRAME_OPEN } from './codec.ts';
import { LINK_ALPN, Link, type LinkOwner, LinkStream } from './link.ts';
import type { LinkCredentials } from './tls.ts';

/** Reconnect delays: from the first to the last, doubling, with ±25% jitter. */
const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 15_000;
/** A TLS link that is not up after this long is abandoned and tried again. */
const LINK_CONNECT_TIMEOUT_MS = 10_000;
/** The back has this long to reach Telegram for a session (it has its own, shorter, connect timeouts). */
const OPEN_TIMEOUT_MS = 30_000;

/** One configured back and its link (while up). */
class BackPeer implements LinkOwner {
  readonly address: HostPort;
  link: Link | null = null;
  private connecting: tls.TLSSocket | null = null;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly owner: BackUpstream;

  constructor(address: HostPort, owner: BackUpstream) {
    this.address = address;
    this.owner = owner;
  }

  get name(): string {
    return formatHostPort(this.address);
  }

  connect(): void {
    if (this.stopped || this.link !== null || this.connecting !== null) return;
    const socket = tls.connect({
      host: this.address.host,
      port: this.address.port,
      ...this.owner.credentials,
      ALPNProtocols: [LINK_ALPN],
      minVersion: 'TLSv1.3',
      // Backs are addressed by IP as often as by name: the chain to the cluster CA is what identifies them.
      checkServerIdentity: () => undefined,
      timeout: LINK_CONNECT_TIMEOUT_MS,
    });
    this.connecting = socket;
    const failed = (err: Error | null) => {
      if (this.connecting !== socket) return;
      this.connecting = null;
      socket.destroy();
      this.owner.log.debug({ back: this.name, code: errorCode(err, 'timeout') }, 'back link failed');
      this.retryLater();
    };
    socket.once('error', failed);
    socket.once('timeout', () => failed(null));
    socket.once('close', () => failed(null));
    socket.once('secureConnect', () => {
      if (this.connecting !== socket) return;
      this.connecting = null;
      socket.off('error', failed);
      socket.setTimeout(0);
      socket.removeAllListeners('timeout');
      socket.removeAllListeners('close');
      if (!socket.authorized || socket.alpnProtocol !== LINK_ALPN) {
        socket.destroy();
        this.owner.log.warn({ back: this.name }, 'back link refused: not a cluster peer');
        this.retryLater();
        return;
      }
      this.attempt = 0;
      this.link = new Link(socket, this);
      this.owner.log.info({ back: this.name, peer: this.link.peerName }, 'back linked');
      this.owner.onPeerUp();
    });
  }

  private retryLater(): void {
    if (this.stopped || this.timer !== null) return;
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 16);
    const delay = base * (0.75 + Math.random() * 0.5);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
    this.timer.unref();
  }

  /** @internal (link) */
  onLinkClosed(_link: Link, reason: string): void {
    this.link = null;
    this.owner.log.warn({ back: this.name, reason }, 'back link lost; its sessions ended');
    this.retryLater();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.connecting?.destroy();
    this.connecting = null;
    this.link?.destroy('shutdown');
  }
}

export class BackUpstream implements Upstream {
  readonly kind = 'back' as const;
  readonly credentials: LinkCredentials;
  readonly log: Logger;
  private peers: BackPeer[] = [];
  private readonly getConfig: () => Config;
  private readonly upWaiters: (() => void)[] = [];
  private started = false;
  /** Where the next tie between equally loaded backs starts (so that they take turns). */
  private turn = 0;

  constructor(getConfig: () => Config, credentials: LinkCredentials, log: Logger) {
    this.getConfig = getConfig;
    this.credentials = credentials;
    this.log = log;
  }

  /** Connect to every back; resolves once one link is up, or after `waitMs` (links keep trying). */
  start(waitMs = LINK_CONNECT_TIMEOUT_MS): Promise<void> {
    if (!this.started) {
      this.started = true;
      this.followBacks();
    }
    if (this.readyCount() > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, waitMs);
      timer.unref();
      this.upWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Links up now. */
  readyCount(): number {
    let n = 0;
    for (const p of this.peers) if (p.link !== null) n++;
    return n;
  }

  /** @internal */
  onPeerUp(): void {
    for (const w of this.upWaiters.splice(0)) w();
  }

  /** Follow `cluster.backs` after a reload: new backs are linked, removed ones closed. */
  configChanged(): void {
    if (this.started) this.followBacks();
  }

  private followBacks(): void {
    const wanted = this.getConfig().cluster.backs;
    const keys = new Set(wanted.map(formatHostPort));
    const kept: BackPeer[] = [];
    for (const p of this.peers) {
      if (keys.has(p.name)) kept.push(p);
      else p.stop();
    }
    for (const a of wanted) {
      if (!kept.some((p) => p.name === formatHostPort(a))) kept.push(new BackPeer(a, this));
    }
    this.peers = kept;
    for (const p of kept) p.connect();
  }

  /** The link of the back with the fewest streams (ties taken in turn), or null. */
  private pick(): Link | null {
    let best: Link | null = null;
    const n = this.peers.length;
    for (let i = 0; i < n; i++) {
      const link = this.peers[(this.turn + i) % n].link;
      if (link === null || link.closed) continue;
      if (best === null || link.streams.size < best.streams.size) best = link;
    }
    this.turn = (this.turn + 1) % Math.max(1, n);
    return best;
  }

  open(client: ClientInfo, sink: ClientSink): Promise<UpstreamHandle> {
    const link = this.pick();
    if (link === null) {
      return Promise.reject(new UpstreamError('MTP_ERR_NO_BACK', 'no back is linked'));
    }
    const stream = new FrontStream(link, link.allocateId(), sink);
    link.send(
      encodeFrame(
        FRAME_OPEN,
        stream.id,
        encodeOpen({
          dcId: client.dcId,
          transport: client.transport,
          remoteAddress: client.remoteAddress,
          remotePort: client.remotePort,
          localAddress: client.localAddress,
          localPort: client.localPort,
          listener: client.listener.name,
          adTag: client.listener.adTag,
          tlsDomain: client.tlsDomain,
          // Decided here, as this machine would for the listener (or user) and its ad tag.
          mode: upstreamKind(this.getConfig(), client.listener),
          user: client.user ?? null,
        }),
      ),
    );
    return stream.opened;
  }

  status(): Record<string, unknown> {
    return {
      mode: 'front',
      backs: this.peers.map((p) => ({
        back: p.name,
        up: p.link !== null,
        peer: p.link?.peerName ?? null,
        streams: p.link?.streams.size ?? 0,
      })),
    };
  }

  async close(): Promise<void> {
    for (const p of this.peers) p.stop();
    this.peers = [];
    for (const w of this.upWaiters.splice(0)) w();
  }
}

/** A session's stream on the front: the session's upstream handle (raw transport bytes both ways). */
class FrontStream extends LinkStream implements UpstreamHandle {
  readonly framed = false;
  readonly opened: Promise<UpstreamHandle>;
  private readonly sink: ClientSink;
  private settle: ((err: Error | null) => void) | null;
  private readonly openTimer: NodeJS.Timeout;
  /** The session's client socket is backlogged (pause()). */
  private clientBacklogged = false;

  constructor(link: Link, id: number, sink: ClientSink) {
    super(link, id);
    this.sink = sink;
    let settle: (err: Error | null) => void = () => {};
    this.opened = new Promise<UpstreamHandle>((resolve, reject) => {
      settle = (err) => (err === null ? resolve(this) : reject(err));
    });
    this.settle = settle;
    this.openTimer = setTimeout(() => {
      this.close('MTP_ERR_UPSTREAM_TIMEOUT');
      this.settleOpen(new UpstreamError('MTP_ERR_UPSTREAM_TIMEOUT', 'the back did not answer in time'));
    }, OPEN_TIMEOUT_MS);
    this.openTimer.unref();
  }

  private settleOpen(err: Error | null): boolean {
    const settle = this.settle;
    if (settle === null) return false;
    this.settle = null;
    clearTimeout(this.openTimer);
    settle(err);
    return true;
  }

  override onOpened(): void {
    this.settleOpen(null);
  }

  // ---- back -> client ----

  onData(payload: Buffer): void {
    // The session encrypts into a fresh buffer: the view is not kept.
    this.sink.sendBytes(payload);
    this.consumed(payload.length);
  }

  onPeerClose(reason: string): void {
    const code = /^MTP_ERR_[A-Z0-9_]+$/.test(reason) ? reason : 'MTP_ERR_UPSTREAM_CONNECT';
    if (this.settleOpen(new UpstreamError(code, `the back could not serve the session (${reason})`))) return;
    this.sink.close(reason);
  }

  onSendable(): void {
    this.sink.resumeClient();
  }

  // ---- UpstreamHandle: client -> back ----

  writeBytes(plain: Buffer): boolean {
    return this.send(plain);
  }

  writeFrame(_payload: Buffer, _quickAck: boolean): boolean {
    // Not framed: the session never calls this.
    this.close('MTP_ERR_FRAMED');
    this.sink.close('MTP_ERR_FRAMED');
    return false;
  }

  pause(): void {
    this.clientBacklogged = true;
    this.hold();
  }

  resume(): void {
    if (!this.clientBacklogged) return;
    this.clientBacklogged = false;
    this.release();
  }

  endInput(): void {
    if (!this.ended) this.link.send(encodeFrame(FRAME_END, this.id));
  }

  override close(reason = 'client_closed'): void {
    if (this.ended) return;
    super.close(reason);
    this.settleOpen(new UpstreamError('MTP_ERR_UPSTREAM_CLOSED', 'session closed'));
  }
}
