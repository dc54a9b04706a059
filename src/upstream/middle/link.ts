/**
 * One RPC connection to a Telegram middle proxy, shared by many clients (each known by a conn_id).
 *
 * Life: TCP connect -> plaintext RPC_NONCE both ways -> AES-256-CBC keys -> RPC_HANDSHAKE both ways -> ready.
 * Every frame from the peer must have the right length, sequence number and CRC; anything else means the link
 * can no longer be trusted and is closed (its clients are closed too). When the peer simply closes a ready
 * link (Telegram rotates them), the clients are handed back to the pool for migration.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Logger } from '../../log.ts';
import type { DcStats } from '../../metrics/stats.ts';
import { isProtocolError, ProtocolError } from '../../protocol/errors.ts';
import {
  type CbcStream,
  createCbcDecryptor,
  createCbcEncryptor,
  deriveMiddleKey,
  ipv4ToInt,
  type MiddleKeyInput,
} from '../../protocol/middle/crypto.ts';
import {
  FULL_HEADER,
  FullBatch,
  FullDecoder,
  FullEncoder,
  sealFullFrameParts,
} from '../../protocol/middle/full.ts';
import {
  CRYPTO_SCHEMA_AES,
  decodeHandshake,
  decodeNonce,
  decodeProcessId,
  decodeServerMessage,
  encodeCloseConn,
  encodeHandshake,
  encodeIpPort,
  encodeNonce,
  encodePing,
  encodePong,
  encodeProcessId,
  HANDSHAKE_FLAG_CRC32C,
  type ProcessId,
  processIdMatches,
  proxyReqFlags,
  proxyReqHeaderLength,
  writeProxyReqHeader,
} from '../../protocol/middle/rpc.ts';
import type { TransportTag } from '../../protocol/obfuscated2.ts';
import { isFdExhaustion, reportFdExhaustion } from '../../runtime/fd-pressure.ts';
import { relayAllocated } from '../../runtime/gc-tuning.ts';
import { overTurnBudget, type TurnBudget } from '../../runtime/read-budget.ts';

/** What a link needs from a client it carries (implemented by the middle upstream's client handle). */
export interface LinkClient {
  /** Assigned by the link on attach; unique per process. */
  connId: number;
  readonly transport: TransportTag;
  /** 20-byte encoded client address. */
  readonly clientAddress: Buffer;
  readonly adTag: Buffer | null;
  onAnswer(payload: Buffer): void;
  onQuickAck(confirm: number): void;
  /** Telegram closed this client (RPC_CLOSE_EXT) or the link failed: close the client. */
  onClosedByUpstream(reason: string): void;
  /** The link was backlogged for this client and can take writes again. */
  onWritable(): void;
}

export interface LinkOptions {
  host: string;
  port: number;
  dcId: number;
  secret: Buffer;
  /** Maps the link's local IP to the one Telegram sees (external / NAT). */
  clientIpFor(localIp: string): string;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  /**
   * A ready link that has received nothing for this long is stalled: it is closed with its clients (the apps
   * reconnect). A ping goes out after half of it, so a healthy idle link always has something to answer. 0 = off.
   * Read at every check, so a reload applies to the links already open.
   */
  stallTimeoutMs(): number;
  log: Logger;
  stats: DcStats;
  onReady(link: RpcLink): void;
  /**
   * The link is gone. `orphans` are the clients it still carried: the pool migrates them when `migrate` is true
   * (the peer closed a working link), else they were already told to close.
   */
  onClosed(link: RpcLink, orphans: LinkClient[], migrate: boolean, reason: string): void;
}

const STATE_CONNECTING = 0;
const STATE_NONCE = 1;
const STATE_HANDSHAKE = 2;
const STATE_READY = 3;
const STATE_CLOSED = 4;

const KEEPALIVE_MS = 40_000;
/** While the stall check is off, how often a link looks whether a reload turned it on. */
const LIVENESS_OFF_RECHECK_MS = 5_000;
/** A retired link waits this long for the peer's FIN before its socket is destroyed anyway. */
const RETIRE_LINGER_MS = 5_000;

/**
 * Every link of this thread reads into this one buffer: a read is decrypted (into a new buffer) before the
 * callback returns and nothing refers to it afterwards, so no read allocates a block of its own. Large, so
 * that a busy link carrying many clients' answers takes them in few reads and cipher calls.
 */
const LINK_READ_BUFFER = Buffer.allocUnsafeSlow(128 * 1024);

let nextConnId = 1 + Math.floor(Math.random() * 0x10000) * 0x10000;
const processStart = Math.floor(Date.now() / 1000);

export class RpcLink implements TurnBudget {
  readonly id: number;
  readonly host: string;
  readonly port: number;
  readonly dcId: number;
  readonly clients = new Map<number, LinkClient>();
  /** Clients whose last write hit a full socket buffer; told when it drains. */
  private readonly waitingForDrain = new Set<LinkClient>();
  private state = STATE_CONNECTING;
  private readonly opts: LinkOptions;
  private readonly socket: net.Socket;
  private readonly encoder = new FullEncoder();
  /** Frames queued in this tick; encrypted and written together (flush). */
  private readonly batch = new FullBatch(this.encoder);
  private flushQueued = false;
  private readonly decoder = new FullDecoder();
  /** Reads of this turn (see read-budget.ts). */
  turnEpoch = 0;
  turnBytes = 0;
  private encryptor: CbcStream | null = null;
  private decryptor: CbcStream | null = null;
  private clientNonce = randomBytes(16);
  private clientTimestamp = 0;
  private ourPid: ProcessId | null = null;
  private proxyAddress: Buffer = Buffer.alloc(20);
  private timer: NodeJS.Timeout | null = null;
  /** Right after the plaintext nonce answer (see onData). */
  private mayHavePlainPadding = true;
  /** Became ready at some point (a closed link that never did was a failed attempt). */
  wasReady = false;
  /** performance.now() when the link last became empty (or ready); meaningful while `load` is 0. */
  emptySince = 0;
  /** performance.now() of the last read from the peer (liveness). */
  private lastInput = 0;
  /** A ping went out since the last read. */
  private pinged = false;
  private liveness: NodeJS.Timeout | null = null;
  /** Bytes from Telegram, for stats. */
  bytesIn = 0;
  bytesOut = 0;

  private static nextLinkId = 1;

  constructor(opts: LinkOptions) {
    this.opts = opts;
    this.id = RpcLink.nextLinkId++;
    this.host = opts.host;
    this.port = opts.port;
    this.dcId = opts.dcId;
    this.socket = net.connect({
      host: opts.host,
      port: opts.port,
      noDelay: true,
      // One closure per link (links are few), not per read.
      onread: { buffer: LINK_READ_BUFFER, callback: (length) => this.onRead(length) },
    });
    this.timer = setTimeout(
      () => this.fail('MTP_ERR_UPSTREAM_TIMEOUT'),
      opts.connectTimeoutMs + opts.handshakeTimeoutMs,
    );
    this.socket.once('connect', this.onConnect);
    this.socket.on('drain', this.onDrain);
    this.socket.on('end', this.onEnd);
    this.socket.on('error', this.onError);
    this.socket.on('close', this.onSocketClose);
  }

  get ready(): boolean {
    return this.state === STATE_READY;
  }

  get closed(): boolean {
    return this.state === STATE_CLOSED;
  }

  get load(): number {
    return this.clients.size;
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  /** Register a client on this link (new conn_id). Only on a ready link. */
  attach(client: LinkClient): void {
    client.connId = nextConnId++;
    this.clients.set(client.connId, client);
  }

  /** The client ended: forget it and tell Telegram. */
  detach(client: LinkClient): void {
    if (this.clients.get(client.connId) !== client) return;
    this.clients.delete(client.connId);
    this.waitingForDrain.delete(client);
    if (this.clients.size === 0) this.emptySince = performance.now();
    if (this.state === STATE_READY) this.sendBody(encodeCloseConn(client.connId));
  }

  /** One client packet as RPC_PROXY_REQ. Returns false when the socket is backlogged (the client should pause). */
  sendRequest(client: LinkClient, payload: Buffer, quickAck: boolean): boolean {
    if (this.state !== STATE_READY) return false;
    const head = proxyReqHeaderLength(client.adTag);
    const header = {
      flags: proxyReqFlags(client.transport, client.adTag !== null, payload, quickAck),
      connId: client.connId,
      clientAddress: client.clientAddress,
      proxyAddress: this.proxyAddress,
      adTag: client.adTag,
    };
    const bodyLength = head + payload.length;
    const batch = this.batch;
    if (!batch.fits(bodyLength)) this.flush();
    if (batch.fits(bodyLength)) {
      const at = batch.reserve(bodyLength);
      writeProxyReqHeader(batch.buffer, at, header);
      payload.copy(batch.buffer, at + head);
      batch.commit(bodyLength);
      this.queueFlush();
    } else {
      // Larger than a whole batch: encrypted where it lies rather than copied (the batch went out just before).
      const headBuf = Buffer.allocUnsafe(FULL_HEADER + head);
      writeProxyReqHeader(headBuf, FULL_HEADER, header);
      const trailer = sealFullFrameParts(headBuf, payload, this.encoder.nextSeq());
      const enc = this.encryptor!;
      this.socket.cork();
      this.writePlain(enc.update(headBuf));
      this.writePlain(enc.update(payload));
      this.writePlain(enc.update(trailer));
      this.socket.uncork();
    }
    // Full when the socket itself holds its bound of unsent bytes. The batch is not counted: it is bounded on
    // its own and leaves at the tick's end (counting it paused and resumed a bulk client on every read).
    const ok = this.socket.writableLength < this.socket.writableHighWaterMark;
    if (!ok) {
      this.waitingForDrain.add(client);
      // The tick's end tells the client when the write goes through without filling the socket: no 'drain'
      // comes then. Never from in here: the session only pauses the client after this call returns.
      this.queueFlush();
    }
    return ok;
  }

  /** Close the link; clients still on it are closed (not migrated). */
  close(reason = 'closed'): void {
    this.shutdown(reason, false);
  }

  /**
   * Give back an empty ready link without cutting it: what is queued (the last clients' RPC_CLOSE_CONN) is
   * sent, then a FIN. Refused (false) while the link carries a client, so no client is ever cut off this way.
   * The link counts as closed at once (the pool forgets it before this returns); only the socket lingers until
   * the peer closes its side.
   */
  retire(): boolean {
    if (this.state !== STATE_READY || this.clients.size > 0) return false;
    this.flush();
    this.shutdown('idle', false, true);
    return true;
  }

  // ---- handshake ---------------------------------------------------------------------------------------

  private readonly onConnect = (): void => {
    if (this.state !== STATE_CONNECTING) return;
    this.socket.setKeepAlive(true, KEEPALIVE_MS);
    this.opts.stats.connects++;
    this.state = STATE_NONCE;
    this.clientTimestamp = Math.floor(Date.now() / 1000);
    const nonce = encodeNonce({
      keySelector: this.opts.secret.subarray(0, 4),
      schema: CRYPTO_SCHEMA_AES,
      timestamp: this.clientTimestamp,
      nonce: this.clientNonce,
    });
    this.writePlain(this.encoder.encode(nonce));
  };

  private onNonce(body: Buffer): void {
    const answer = decodeNonce(body);
    if (answer.schema !== CRYPTO_SCHEMA_AES)
      throw new ProtocolError('MTP_ERR_RPC_HANDSHAKE', 'unsupported crypto schema');
    if (!answer.keySelector.equals(this.opts.secret.subarray(0, 4))) {
      throw new ProtocolError('MTP_ERR_RPC_HANDSHAKE', 'peer uses another proxy secret');
    }
    const s = this.socket;
    const localIp = s.localAddress ?? '';
    const clientIp = this.opts.clientIpFor(localIp);
    const input: MiddleKeyInput = {
      serverNonce: answer.nonce,
      clientNonce: this.clientNonce,
      clientTimestamp: this.clientTimestamp,
      serverIp: s.remoteAddress ?? '',
      serverPort: s.remotePort ?? 0,
      clientIp,
      clientPort: s.localPort ?? 0,
      secret: this.opts.secret,
    };
    this.encryptor = createCbcEncryptor(deriveMiddleKey(input, 'CLIENT'));
    this.decryptor = createCbcDecryptor(deriveMiddleKey(input, 'SERVER'));
    this.proxyAddress = encodeIpPort(clientIp, s.localPort ?? 0);
    this.ourPid = {
      ip: net.isIPv4(clientIp) ? ipv4ToInt(clientIp) : 0,
      port: 0,
      pid: process.pid & 0xffff,
      utime: processStart,
    };
    const pid = encodeProcessId(this.ourPid);
    // Peer PID as far as we know it: its address and port (ip 0 = any).
    const peer = encodeProcessId({ ip: 0, port: s.remotePort ?? 0, pid: 0, utime: 0 });
    this.state = STATE_HANDSHAKE;
    this.sendBody(encodeHandshake({ flags: 0, senderPid: pid, peerPid: peer }));
  }

  private onHandshake(body: Buffer): void {
    const answer = decodeHandshake(body);
    if ((answer.flags & 0xff) !== 0 || (answer.flags & HANDSHAKE_FLAG_CRC32C) !== 0) {
      throw new ProtocolError('MTP_ERR_RPC_HANDSHAKE', 'unsupported handshake flags');
    }
    const sender = decodeProcessId(answer.senderPid);
    if (sender.port !== 0 && sender.port !== this.socket.remotePort) {
      // Worth knowing (a middle proxy behind a port mapping), not worth refusing: the keys already proved the peer.
      this.opts.log.debug(
        { dc: this.dcId, link: this.id, port: sender.port },
        'middle proxy reports another port',
      );
    }
    if (!this.ourPid || !processIdMatches(this.ourPid, decodeProcessId(answer.peerPid))) {
      throw new ProtocolError('MTP_ERR_RPC_HANDSHAKE', 'peer does not echo our process id');
    }
    this.state = STATE_READY;
    this.wasReady = true;
    this.emptySince = performance.now();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.opts.stats.linksActive++;
    this.lastInput = performance.now();
    this.armLiveness();
    this.opts.onReady(this);
  }

  // ---- input -------------------------------------------------------------------------------------------

  private onRead(length: number): boolean {
    this.onData(LINK_READ_BUFFER.subarray(0, length));
    // Never paused for backpressure: a link serves many clients, each bounded on its own side. It only yields
    // the rest of a turn to the other sockets once it has read the share of the clients it carries (up to 8:
    // a client socket reads one share per turn, and the link carries all of their answers).
    const shares = Math.min(MAX_LINK_SHARES, Math.max(1, this.clients.size));
    if (overTurnBudget(this, length, shares) && this.state !== STATE_CLOSED) {
      this.socket.pause();
      setImmediate(resumeLink, this.socket);
    }
    return true;
  }

  private onData(chunk: Buffer): void {
    this.lastInput = performance.now();
    this.pinged = false;
    this.bytesIn += chunk.length;
    this.opts.stats.bytesFromDc += chunk.length;
    try {
      if (this.state === STATE_NONCE) {
        // The nonce answer is plaintext and must be exactly one frame; whatever follows it is already encrypted.
        // A copy: a nonce cut by the end of a read is kept by the decoder, and the read buffer is reused.
        this.decoder.decode(Buffer.from(chunk), this.onPlainFrame, 1);
        if (this.state === STATE_NONCE) return;
        chunk = this.decoder.takeRemainder();
        if (chunk.length === 0) return;
      }
      if (this.decryptor === null || this.state === STATE_CLOSED) return;
      if (this.mayHavePlainPadding) {
        // Telegram sends its nonce answer unpadded, but a peer that pads it to 16 bytes (as proxies do with their
        // own nonce) sends one plaintext padding word before the encrypted stream.
        this.mayHavePlainPadding = false;
        if (chunk.length >= 4 && chunk.readUInt32LE(0) === 4) chunk = chunk.subarray(4);
      }
      // Young collections paced by what this read makes short-lived (its decryption; the read itself is no
      // longer a fresh buffer). Measured, 32-stream bench, proxy CPU-s per GB after the batched writes and the
      // shared read buffer: 1x 2.64-2.76 (about one mark-compact per run), 2x 2.90-2.95, 3x 2.85-3.05,
      // 6x 2.91-3.01, 12x 2.92-3.14; none at all brings the mark-compacts back (12-26 per run, 3.1-3.75).
      relayAllocated(chunk.length);
      this.decoder.decode(this.decryptor.update(chunk), this.onFrame);
    } catch (err) {
      this.fail(isProtocolError(err) ? err.code : 'MTP_ERR_INTERNAL', err);
    }
  }

  private readonly onPlainFrame = (body: Buffer): void => {
    this.onNonce(body);
  };

  private readonly onFrame = (body: Buffer): void => {
    if (this.state === STATE_HANDSHAKE) {
      this.onHandshake(body);
      return;
    }
    if (this.state !== STATE_READY) return;
    const msg = decodeServerMessage(body);
    switch (msg.kind) {
      case 'answer': {
        const c = this.clients.get(msg.connId);
        if (c) c.onAnswer(msg.payload);
        break;
      }
      case 'simple-ack':
        this.clients.get(msg.connId)?.onQuickAck(msg.confirm);
        break;
      case 'close-ext': {
        const c = this.clients.get(msg.connId);
        if (c) {
          // Telegram already forgot it: no RPC_CLOSE_CONN back.
          this.clients.delete(msg.connId);
          this.waitingForDrain.delete(c);
          if (this.clients.size === 0) this.emptySince = performance.now();
          c.onClosedByUpstream('closed_by_telegram');
        }
        break;
      }
      case 'ping':
        this.sendBody(encodePong(msg.pingId));
        break;
      case 'pong':
        // Liveness only: any read counts, the id does not matter.
        break;
      case 'unknown':
        this.opts.log.debug(
          { dc: this.dcId, type: msg.type >>> 0, length: msg.length },
          'unknown RPC message ignored',
        );
        break;
    }
  };

  // ---- liveness ----------------------------------------------------------------------------------------

  /**
   * The check runs every quarter of the stall timeout, so a stall is noticed within 1.25 times it; while the
   * check is off, every LIVENESS_OFF_RECHECK_MS in case a reload turns it on.
   */
  private armLiveness(): void {
    if (this.state !== STATE_READY) return;
    const timeoutMs = this.opts.stallTimeoutMs();
    const every = timeoutMs > 0 ? Math.max(10, Math.ceil(timeoutMs / 4)) : LIVENESS_OFF_RECHECK_MS;
    this.liveness = setTimeout(this.checkLiveness, every);
    this.liveness.unref();
  }

  private readonly checkLiveness = (): void => {
    this.liveness = null;
    if (this.state !== STATE_READY) return;
    const timeoutMs = this.opts.stallTimeoutMs();
    if (timeoutMs <= 0) {
      // Off: silence is not measured (a link turned on later counts from then).
      this.lastInput = performance.now();
      this.armLiveness();
      return;
    }
    const silentMs = performance.now() - this.lastInput;
    if (silentMs >= timeoutMs) {
      this.opts.stats.stalledLinks++;
      this.opts.stats.error('MTP_ERR_LINK_STALLED');
      this.opts.log.warn(
        {
          dc: this.dcId,
          link: this.id,
          host: this.host,
          port: this.port,
          clients: this.clients.size,
          silentMs: Math.round(silentMs),
        },
        'middle-proxy link stalled (no answer, not even to a ping); closing it',
      );
      // Its clients are closed at once, so the apps reconnect (to a working link, or directly) and resend what
      // was lost in it. Moving them instead would keep them on the same unresponsive middle proxy, perhaps
      // forever when its new links complete the handshake and then stall as well.
      this.shutdown('MTP_ERR_LINK_STALLED', false);
      return;
    }
    if (!this.pinged && silentMs >= timeoutMs / 2) {
      this.pinged = true;
      this.sendBody(encodePing(randomBytes(8)));
    }
    this.armLiveness();
  };

  // ---- output ------------------------------------------------------------------------------------------

  /** A control message (close, pong) joins the frames of this tick. */
  private sendBody(body: Buffer): void {
    if (!this.batch.fits(body.length)) this.flush();
    this.batch.push(body);
    this.queueFlush();
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    process.nextTick(this.flushQueuedBatch);
  }

  private readonly flushQueuedBatch = (): void => {
    this.flushQueued = false;
    this.flush();
    // Clients refused while the batch was filling wait for a 'drain' that only a refused write brings.
    if (this.waitingForDrain.size > 0 && !this.socket.writableNeedDrain && this.state !== STATE_CLOSED)
      this.onDrain();
  };

  /** Encrypt and send every frame queued so far: one cipher call, one write, no Nagle delay. */
  private flush(): void {
    if (this.batch.pending === 0 || this.state === STATE_CLOSED) return;
    this.writeEncrypted(this.batch.take());
  }

  private writePlain(data: Buffer): boolean {
    this.bytesOut += data.length;
    this.opts.stats.bytesToDc += data.length;
    return this.socket.write(data);
  }

  private writeEncrypted(frames: Buffer): boolean {
    return this.writePlain(this.encryptor!.update(frames));
  }

  private readonly onDrain = (): void => {
    if (this.waitingForDrain.size === 0) return;
    const waiting = [...this.waitingForDrain];
    this.waitingForDrain.clear();
    for (const c of waiting) {
      if (this.socket.writableNeedDrain) {
        this.waitingForDrain.add(c);
        continue;
      }
      c.onWritable();
    }
  };

  // ---- the end -----------------------------------------------------------------------------------------

  private readonly onEnd = (): void => {
    // Telegram closed a working link: its clients move elsewhere.
    this.shutdown('closed_by_peer', this.state === STATE_READY);
  };

  private readonly onError = (err: Error): void => {
    const code = (err as { code?: string }).code ?? 'MTP_ERR_UPSTREAM';
    if (this.state === STATE_CONNECTING) this.opts.stats.connectErrors++;
    if (isFdExhaustion(code)) reportFdExhaustion(code, 'middle-connect');
    // A reset of a working link is Telegram rotating it as well; the clients can move.
    this.shutdown(code, this.state === STATE_READY && (code === 'ECONNRESET' || code === 'EPIPE'));
  };

  private readonly onSocketClose = (): void => {
    // A retired link's linger timer is no longer needed.
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.shutdown('closed', this.state === STATE_READY);
  };

  private readonly destroySocket = (): void => {
    this.timer = null;
    this.socket.destroy();
  };

  private fail(code: string, err?: unknown): void {
    if (this.state === STATE_CLOSED) return;
    this.opts.stats.error(code);
    this.opts.log.info(
      { dc: this.dcId, link: this.id, code, err: err && !isProtocolError(err) ? String(err) : undefined },
      'middle-proxy link failed',
    );
    this.shutdown(code, false);
  }

  private shutdown(reason: string, migrate: boolean, graceful = false): void {
    if (this.state === STATE_CLOSED) return;
    const wasReady = this.state === STATE_READY;
    this.state = STATE_CLOSED;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.liveness) clearTimeout(this.liveness);
    this.liveness = null;
    if (wasReady) this.opts.stats.linksActive--;
    if (graceful) {
      this.socket.end();
      this.timer = setTimeout(this.destroySocket, RETIRE_LINGER_MS);
      this.timer.unref();
    } else {
      this.socket.destroy();
    }
    const orphans = [...this.clients.values()];
    this.clients.clear();
    this.waitingForDrain.clear();
    if (!migrate) for (const c of orphans) c.onClosedByUpstream(reason);
    this.opts.onClosed(this, orphans, migrate, reason);
  }
}

/** A link's read budget per turn, in client shares (see onRead). */
const MAX_LINK_SHARES = 8;

function resumeLink(socket: net.Socket): void {
  if (!socket.destroyed) socket.resume();
}
