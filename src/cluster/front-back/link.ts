/**
 * One front→back link: a mutually authenticated TLS connection multiplexing many sessions (streams). Both
 * ends use this class; the front opens streams, the back serves them.
 *
 * Flow control is per stream: a sender never has more than INITIAL_WINDOW unacknowledged bytes in flight on
 * a stream, and the receiver acknowledges (WINDOW) only what its consumer took without backpressure. The
 * link socket itself is always read, so one slow client stops its own stream and never the link.
 */
import type tls from 'node:tls';
import {
  decodeReason,
  encodeClose,
  encodeFrame,
  encodeWindow,
  FRAME_CLOSE,
  FRAME_DATA,
  FRAME_END,
  FRAME_OPEN,
  FRAME_OPENED,
  FRAME_PING,
  FRAME_PONG,
  FRAME_WINDOW,
  type FrameHandler,
  frameHeader,
  INITIAL_WINDOW,
  LinkDecoder,
  MAX_DATA,
  PING_LENGTH,
} from './codec.ts';

/** The protocol name both ends offer through ALPN (a peer speaking anything else is refused). */
export const LINK_ALPN = 'mtproxy-link/1';
/** A link pings this often and is closed when nothing at all arrived for DEAD_AFTER_MS. */
export const PING_EVERY_MS = 5_000;
export const DEAD_AFTER_MS = 20_000;
/** A receiver acknowledges once this much was consumed (fewer, larger WINDOW frames). */
const GRANT_AT = INITIAL_WINDOW / 4;

/** How a link tells its owner about streams and its own end. */
export interface LinkOwner {
  /** Back: a peer opened stream `id` (`meta` is the raw OPEN payload). Front: never called. */
  onOpen?(link: Link, id: number, meta: Buffer): void;
  /** The link is gone (every stream was told already). */
  onLinkClosed(link: Link, reason: string): void;
}

/** One session on a link; subclasses connect it to a session (front) or an upstream (back). */
export abstract class LinkStream {
  readonly id: number;
  readonly link: Link;
  /** Bytes we may still send before the peer's next WINDOW. */
  private sendCredit = INITIAL_WINDOW;
  /** What waits for credit (the producer was told to stop). */
  private queue: Buffer[] = [];
  /** Bytes in `queue`. */
  queued = 0;
  /** Bytes the peer may still send us (it must never go below 0). */
  private recvOutstanding = INITIAL_WINDOW;
  /** Bytes consumed and not acknowledged yet. */
  private recvUnacked = 0;
  /** Our consumer is backlogged: acknowledge nothing until it drains. */
  private holding = false;
  /** A producer was told to stop (queue or a full link) and waits for onSendable. */
  private blocked = false;
  ended = false;

  constructor(link: Link, id: number) {
    this.link = link;
    this.id = id;
    link.streams.set(id, this);
  }

  // ---- what subclasses implement ----

  /** DATA from the peer (a view, valid during the call). */
  abstract onData(payload: Buffer): void;
  /** The peer ended the stream (CLOSE) or the link died. */
  abstract onPeerClose(reason: string): void;
  /** Everything queued went out and the link takes more: a stopped producer may go on. */
  abstract onSendable(): void;
  onOpened(): void {}
  onPeerEnd(): void {}

  // ---- sending ----

  /** Send transport bytes (kept, not copied, when they must wait). False: stop producing until onSendable. */
  send(buf: Buffer): boolean {
    if (this.ended) return false;
    if (this.queued === 0) {
      if (buf.length <= this.sendCredit) {
        this.sendCredit -= buf.length;
        if (this.link.sendData(this.id, buf)) return true;
        this.link.waitForDrain(this);
        this.blocked = true;
        return false;
      }
      if (this.sendCredit > 0) {
        const n = this.sendCredit;
        this.sendCredit = 0;
        this.link.sendData(this.id, buf.subarray(0, n));
        buf = buf.subarray(n);
      }
    }
    this.queue.push(buf);
    this.queued += buf.length;
    this.blocked = true;
    return false;
  }

  /** @internal WINDOW from the peer. */
  onWindow(increment: number): void {
    this.sendCredit += increment;
    if (this.queued > 0) this.flushQueue();
    if (this.queued === 0 && this.blocked && !this.link.full) {
      this.blocked = false;
      this.onSendable();
    }
  }

  private flushQueue(): void {
    let ok = true;
    while (this.queue.length > 0 && this.sendCredit > 0) {
      let buf = this.queue[0];
      if (buf.length > this.sendCredit) {
        const n = this.sendCredit;
        this.queue[0] = buf.subarray(n);
        buf = buf.subarray(0, n);
      } else this.queue.shift();
      this.sendCredit -= buf.length;
      this.queued -= buf.length;
      ok = this.link.sendData(this.id, buf);
    }
    if (!ok) this.link.waitForDrain(this);
  }

  /** @internal The link socket drained. */
  onLinkDrain(): void {
    if (this.ended || this.queued > 0 || !this.blocked) return;
    this.blocked = false;
    this.onSendable();
  }

  // ---- receiving ----

  /** @internal DATA arrived: false when the peer overran its window (the stream must be closed). */
  accept(length: number): boolean {
    this.recvOutstanding -= length;
    return this.recvOutstanding >= 0;
  }

  /** `length` received bytes were taken by the consumer; acknowledge them unless it is backlogged. */
  consumed(length: number): void {
    this.recvUnacked += length;
    if (!this.holding && this.recvUnacked >= GRANT_AT) this.grant();
  }

  /** The consumer is backlogged: stop acknowledging (the peer stops within a window). */
  hold(): void {
    this.holding = true;
  }

  /** The consumer drained: acknowledge what it took meanwhile. */
  release(): void {
    this.holding = false;
    if (this.recvUnacked > 0) this.grant();
  }

  private grant(): void {
    if (this.ended) return;
    const n = this.recvUnacked;
    this.recvUnacked = 0;
    this.recvOutstanding += n;
    this.link.send(encodeWindow(this.id, n));
  }

  // ---- the end ----

  /** End the stream from our side (CLOSE to the peer). Idempotent. */
  close(reason: string): void {
    if (this.ended) return;
    this.finish();
    this.link.send(encodeClose(this.id, reason));
  }

  /** @internal Forget the stream without telling the peer. */
  finish(): void {
    this.ended = true;
    this.queue = [];
    this.queued = 0;
    this.link.streams.delete(this.id);
  }
}

export class Link implements FrameHandler {
  readonly socket: tls.TLSSocket;
  readonly streams = new Map<number, LinkStream>();
  /** Peer certificate's common name (logs and status). */
  readonly peerName: string;
  private readonly owner: LinkOwner;
  private readonly decoder = new LinkDecoder();
  private readonly drainWaiters = new Set<LinkStream>();
  private readonly pinger: NodeJS.Timeout;
  private lastHeard = performance.now();
  /** The socket's buffer is full: streams hold their data until it drains. */
  full = false;
  closed = false;
  /** Front: next stream id (odd numbers). */
  private nextId = 1;

  constructor(socket: tls.TLSSocket, owner: LinkOwner) {
    this.socket = socket;
    this.owner = owner;
    const cert = socket.getPeerCertificate();
    this.peerName = (cert && typeof cert.subject?.CN === 'string' ? cert.subject.CN : '') || '?';
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on('data', (chunk: Buffer) => this.onRead(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', () => this.destroy('link_error'));
    socket.on('close', () => this.destroy('link_closed'));
    socket.on('end', () => this.destroy('link_end'));
    this.pinger = setInterval(() => this.tick(), PING_EVERY_MS);
    this.pinger.unref();
  }

  /** A fresh stream id (front). */
  allocateId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0x7fff_ffff ? 1 : this.nextId + 2;
    return id;
  }

  send(frame: Buffer): boolean {
    if (this.closed) return false;
    const ok = this.socket.write(frame);
    if (!ok) this.full = true;
    return ok;
  }

  /** DATA frames for `buf` (split at MAX_DATA), without copying it. */
  sendData(id: number, buf: Buffer): boolean {
    if (this.closed) return false;
    const s = this.socket;
    let ok = true;
    s.cork();
    for (let off = 0; off < buf.length; off += MAX_DATA) {
      const n = Math.min(MAX_DATA, buf.length - off);
      s.write(frameHeader(FRAME_DATA, id, n));
      ok = s.write(n === buf.length ? buf : buf.subarray(off, off + n));
    }
    s.uncork();
    if (!ok) this.full = true;
    return ok;
  }

  waitForDrain(stream: LinkStream): void {
    this.drainWaiters.add(stream);
  }

  private onDrain(): void {
    this.full = false;
    const waiting = [...this.drainWaiters];
    this.drainWaiters.clear();
    for (const s of waiting) s.onLinkDrain();
  }

  private onRead(chunk: Buffer): void {
    this.lastHeard = performance.now();
    if (this.decoder.push(chunk, this) !== null) this.destroy(this.decoder.error ?? 'link_error');
  }

  /** @internal (decoder) */
  onFrame(type: number, id: number, payload: Buffer): void {
    if (this.closed) return;
    if (type === FRAME_PING) {
      this.send(encodeFrame(FRAME_PONG, 0, payload));
      return;
    }
    if (type === FRAME_PONG) return;
    const stream = this.streams.get(id);
    if (type === FRAME_OPEN) {
      if (stream !== undefined || this.owner.onOpen === undefined) {
        this.destroy('MTP_ERR_LINK_PROTOCOL');
        return;
      }
      this.owner.onOpen(this, id, payload);
      return;
    }
    // Frames of a stream that ended here may still be under way from the peer: ignored.
    if (stream === undefined) return;
    switch (type) {
      case FRAME_DATA:
        if (!stream.accept(payload.length)) {
          stream.close('MTP_ERR_LINK_WINDOW');
          stream.onPeerClose('MTP_ERR_LINK_WINDOW');
          return;
        }
        stream.onData(payload);
        return;
      case FRAME_WINDOW:
        stream.onWindow(payload.readUInt32BE(0));
        return;
      case FRAME_OPENED:
        stream.onOpened();
        return;
      case FRAME_END:
        stream.onPeerEnd();
        return;
      case FRAME_CLOSE:
        stream.finish();
        stream.onPeerClose(decodeReason(payload) || 'closed');
        return;
    }
  }

  private tick(): void {
    if (this.closed) return;
    if (performance.now() - this.lastHeard > DEAD_AFTER_MS) {
      this.destroy('link_timeout');
      return;
    }
    const ping = Buffer.allocUnsafe(PING_LENGTH);
    ping.writeDoubleBE(Date.now(), 0);
    this.send(encodeFrame(FRAME_PING, 0, ping));
  }

  /** Close the link: every stream ends with `reason`. Idempotent. */
  destroy(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pinger);
    this.socket.destroy();
    const streams = [...this.streams.values()];
    this.streams.clear();
    this.drainWaiters.clear();
    for (const s of streams) {
      s.finish();
      try {
        s.onPeerClose(reason);
      } catch {
        // one stream's failure must not keep the others open
      }
    }
    this.owner.onLinkClosed(this, reason);
  }
}
