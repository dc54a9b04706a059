/**
 * A fake Telegram middle proxy on loopback, as strict as the real one:
 * - checks the client's RPC_NONCE (type, key selector, crypto schema, timestamp within 30 s), consumes the
 *   padding words after it, answers with its own nonce and *no* padding;
 * - derives the CBC keys from its own view of the addresses (or a simulated NAT public IP), so a proxy that
 *   used the wrong external IP fails to decrypt;
 * - checks RPC_HANDSHAKE (type, flags, the peer PID must name this process) and answers with its own PID
 *   (listening port included), echoing the client's PID as the peer PID;
 * - requires exact sequence numbers, CRCs and lengths on every frame and a valid RPC_PROXY_REQ / CLOSE_CONN /
 *   PONG; any violation is recorded in `violations` and the connection is dropped.
 * It echoes each request payload back as RPC_PROXY_ANS, answers quick-ack requests with RPC_SIMPLE_ACK, records
 * ad tags, client addresses and conn ids, can ping, send RPC_CLOSE_EXT, and rotate (close) its connections.
 *
 * `stall()` makes it stop answering on the links it has (and, if asked, on every later one after its
 * handshake): input is read and dropped, nothing is sent back, not even a pong; the TCP connection stays up.
 *
 * Test commands inside a payload (first 8 bytes):
 *   "FLOODCMD" count u32 size u32 -> `count` answers of `size` bytes (byte value = answer index & 0xff)
 *   "CLOSEEXT"                     -> RPC_CLOSE_EXT for that conn id instead of an echo
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { isProtocolError } from '../../src/protocol/errors.ts';
import {
  type CbcStream,
  createCbcDecryptor,
  createCbcEncryptor,
  deriveMiddleKey,
  ipv4ToInt,
} from '../../src/protocol/middle/crypto.ts';
import {
  encodeFullFrame,
  FULL_HEADER,
  FullBatch,
  FullDecoder,
  FullEncoder,
  sealFullFrameParts,
} from '../../src/protocol/middle/full.ts';
import {
  CRYPTO_SCHEMA_AES,
  decodeHandshake,
  decodeNonce,
  decodeProcessId,
  decodeProxyMessage,
  encodeCloseExt,
  encodeHandshake,
  encodeNonce,
  encodePing,
  encodePong,
  encodeProcessId,
  encodeSimpleAck,
  FLAG_ABRIDGED,
  FLAG_EXTMODE2,
  FLAG_INTERMEDIATE,
  FLAG_MAGIC,
  FLAG_QUICKACK,
  HANDSHAKE_FLAG_CRC32C,
  PROXY_ANS_HEADER,
  type ProcessId,
  processIdMatches,
  writeProxyAnsHeader,
} from '../../src/protocol/middle/rpc.ts';

export interface FakeMiddleOptions {
  /** The proxy secret both sides share (normally 128 bytes). */
  secret: Buffer;
  /** Simulated NAT: the client address this "Telegram" sees instead of the socket's remote address. */
  clientPublicIp?: string;
  /** Close every connection on this period (Telegram rotating its middle-proxy connections). */
  rotateEveryMs?: number;
  /** Ping every connection on this period. */
  pingEveryMs?: number;
  /** Pad the nonce answer to 16 bytes like some proxies do (the real middle proxy does not). */
  padNonceAnswer?: boolean;
}

export interface SeenRequest {
  link: number;
  connId: number;
  flags: number;
  client: { ip: string; port: number };
  proxy: { ip: string; port: number };
  adTag: string | null;
  length: number;
}

const STAGE_NONCE = 0;
const STAGE_PAD = 1;
const STAGE_HANDSHAKE = 2;
const STAGE_READY = 3;

class FakeLink {
  readonly id: number;
  readonly socket: net.Socket;
  stage = STAGE_NONCE;
  readonly conns = new Set<number>();
  private readonly fake: FakeMiddleProxy;
  private readonly decoder = new FullDecoder();
  private readonly encoder = new FullEncoder();
  /** Frames answered while handling one read; they leave in one cipher call and one write. */
  private readonly batch = new FullBatch(this.encoder);
  private handlingInput = false;
  private encryptor: CbcStream | null = null;
  private decryptor: CbcStream | null = null;
  /** Padding bytes a client may still send after its plaintext nonce (up to three words). */
  private padLeft = 12;
  private pendingPlain: Buffer = Buffer.alloc(0);
  /** Reads and drops everything, answers nothing (a middle proxy that hangs). */
  stalled = false;
  /**
   * Both ends' addresses, taken on accept: the kernel forgets the peer's once the connection is closed on
   * both sides, which happens before input still buffered is read when a link is rotated during its nonce.
   */
  private readonly addresses: { localIp: string; localPort: number; remoteIp: string; remotePort: number };

  constructor(fake: FakeMiddleProxy, id: number, socket: net.Socket) {
    this.fake = fake;
    this.id = id;
    this.socket = socket;
    this.addresses = {
      localIp: socket.localAddress ?? '',
      localPort: socket.localPort ?? 0,
      remoteIp: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
    };
    socket.on('error', () => {});
    // Reset before it was accepted: nothing to serve.
    if (!this.addresses.remoteIp || !this.addresses.localIp) {
      socket.destroy();
      return;
    }
    socket.on('data', (chunk) => this.onData(chunk));
  }

  send(body: Buffer): void {
    if (this.stage !== STAGE_READY || this.socket.destroyed || this.stalled) return;
    this.queue(body);
  }

  private queue(body: Buffer): void {
    if (!this.batch.fits(body.length)) this.flush();
    this.batch.push(body);
    if (!this.handlingInput) this.flush();
  }

  /** RPC_PROXY_ANS without building the body first; a payload larger than a batch is encrypted where it lies. */
  sendAnswer(connId: number, payload: Buffer): void {
    if (this.stage !== STAGE_READY || this.socket.destroyed || this.stalled) return;
    const bodyLength = PROXY_ANS_HEADER + payload.length;
    const batch = this.batch;
    if (!batch.fits(bodyLength)) this.flush();
    if (batch.fits(bodyLength)) {
      const at = batch.reserve(bodyLength);
      writeProxyAnsHeader(batch.buffer, at, connId);
      payload.copy(batch.buffer, at + PROXY_ANS_HEADER);
      batch.commit(bodyLength);
      if (!this.handlingInput) this.flush();
      return;
    }
    const enc = this.encryptor!;
    const head = Buffer.allocUnsafe(FULL_HEADER + PROXY_ANS_HEADER);
    writeProxyAnsHeader(head, FULL_HEADER, connId);
    const trailer = sealFullFrameParts(head, payload, this.encoder.nextSeq());
    this.socket.write(enc.update(head));
    this.socket.write(enc.update(payload));
    this.socket.write(enc.update(trailer));
  }

  private flush(): void {
    if (this.batch.pending === 0 || this.socket.destroyed) return;
    this.socket.write(this.encryptor!.update(this.batch.take()));
  }

  sendBroken(kind: 'crc' | 'seq' | 'length'): void {
    this.flush();
    const frame = this.encoder.encode(encodePing(randomBytes(8)));
    if (kind === 'crc') frame[12] ^= 0xff;
    if (kind === 'seq') frame.writeInt32LE(frame.readInt32LE(4) + 5, 4);
    if (kind === 'length') frame.writeUInt32LE(13, 0);
    this.socket.write(this.encryptor!.update(frame));
  }

  private violation(what: string): void {
    this.fake.violations.push(`link ${this.id}: ${what}`);
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    const s = this.socket;
    // Everything answered for this read leaves in one write.
    s.cork();
    this.handlingInput = true;
    try {
      this.onInput(chunk);
      this.flush();
    } finally {
      this.handlingInput = false;
      s.uncork();
    }
    // Answers the proxy is not reading yet: stop taking its requests until they drain, as TCP would make a
    // real middle proxy do, instead of queueing without bound.
    if (s.writableNeedDrain && !s.destroyed) {
      s.pause();
      s.once('drain', () => s.resume());
    }
  }

  private onInput(chunk: Buffer): void {
    try {
      if (this.stage === STAGE_NONCE) {
        if (this.decoder.decode(chunk, (body) => this.onNonce(body), 1) === 0) return;
        this.stage = STAGE_PAD;
        chunk = this.decoder.takeRemainder();
      }
      if (this.stage === STAGE_PAD) {
        // The real middle proxy consumes the padding words after a plaintext nonce before decrypting.
        const data = this.pendingPlain.length ? Buffer.concat([this.pendingPlain, chunk]) : chunk;
        this.pendingPlain = Buffer.alloc(0);
        let off = 0;
        while (this.padLeft > 0 && data.length - off >= 4 && data.readUInt32LE(off) === 4) {
          off += 4;
          this.padLeft -= 4;
        }
        if (this.padLeft > 0 && data.length - off < 4) {
          this.pendingPlain = Buffer.from(data.subarray(off));
          return;
        }
        this.stage = STAGE_HANDSHAKE;
        chunk = data.subarray(off);
        if (chunk.length === 0) return;
      }
      this.decoder.decode(this.decryptor!.update(chunk), (body) => this.onFrame(body));
    } catch (err) {
      this.violation(isProtocolError(err) ? err.code : String(err));
    }
  }

  private clientNonce: Buffer = Buffer.alloc(16);
  private clientTs = 0;

  private onNonce(body: Buffer): void {
    const n = decodeNonce(body);
    if (!n.keySelector.equals(this.fake.secret.subarray(0, 4))) throw new Error('wrong key selector');
    if (n.schema !== CRYPTO_SCHEMA_AES) throw new Error('wrong crypto schema');
    if (Math.abs(n.timestamp - Date.now() / 1000) > 30) throw new Error('nonce timestamp out of range');
    this.clientNonce = n.nonce;
    this.clientTs = n.timestamp;
    const serverNonce = randomBytes(16);
    // No padding after the nonce answer: the real middle proxy sends exactly the 44-byte frame.
    const answer = encodeFullFrame(
      encodeNonce({
        keySelector: this.fake.secret.subarray(0, 4),
        schema: CRYPTO_SCHEMA_AES,
        timestamp: n.timestamp,
        nonce: serverNonce,
      }),
      this.encoder.nextSeq(),
    ).subarray(0, this.fake.padNonceAnswer ? 48 : 44);
    this.socket.write(answer);
    const a = this.addresses;
    const input = {
      serverNonce,
      clientNonce: this.clientNonce,
      clientTimestamp: this.clientTs,
      serverIp: a.localIp,
      serverPort: a.localPort,
      clientIp: this.fake.clientPublicIp ?? a.remoteIp,
      clientPort: a.remotePort,
      secret: this.fake.secret,
    };
    this.decryptor = createCbcDecryptor(deriveMiddleKey(input, 'CLIENT'));
    this.encryptor = createCbcEncryptor(deriveMiddleKey(input, 'SERVER'));
  }

  private onFrame(body: Buffer): void {
    if (this.stage === STAGE_HANDSHAKE) {
      const h = decodeHandshake(body);
      if ((h.flags & 0xff) !== 0 || (h.flags & HANDSHAKE_FLAG_CRC32C) !== 0)
        throw new Error('bad handshake flags');
      if (!processIdMatches(this.fake.pid, decodeProcessId(h.peerPid)))
        throw new Error('handshake names another peer');
      this.stage = STAGE_READY;
      this.fake.clientPids.push(decodeProcessId(h.senderPid));
      this.queue(
        encodeHandshake({ flags: 0, senderPid: encodeProcessId(this.fake.pid), peerPid: h.senderPid }),
      );
      this.fake.onReady(this);
      if (this.fake.stallNewLinks) this.stalled = true;
      return;
    }
    if (this.stalled) return;
    const m = decodeProxyMessage(body);
    if (m.kind === 'ping') {
      this.fake.pingsFromProxy++;
      this.send(encodePong(m.pingId));
      return;
    }
    if (m.kind === 'pong') {
      this.fake.pongs.push(m.pingId.toString('hex'));
      return;
    }
    if (m.kind === 'close-conn') {
      this.fake.closedConns.push(m.connId);
      this.conns.delete(m.connId);
      return;
    }
    if ((m.flags & (FLAG_MAGIC | FLAG_EXTMODE2)) !== (FLAG_MAGIC | FLAG_EXTMODE2))
      throw new Error('missing flags');
    if ((m.flags & (FLAG_ABRIDGED | FLAG_INTERMEDIATE)) === 0) throw new Error('no transport flag');
    if (m.payload.length % 4 !== 0) throw new Error('unaligned payload');
    this.conns.add(m.connId);
    this.fake.requests.push({
      link: this.id,
      connId: m.connId,
      flags: m.flags,
      client: m.client,
      proxy: m.proxy,
      adTag: m.adTag ? m.adTag.toString('hex') : null,
      length: m.payload.length,
    });
    if (m.flags & FLAG_QUICKACK) this.send(encodeSimpleAck(m.connId, (0x80000000 | m.payload.length) >>> 0));
    const command = m.payload.subarray(0, 8).toString('latin1');
    if (command === 'FLOODCMD' && m.payload.length >= 16) {
      const count = m.payload.readUInt32LE(8);
      const size = m.payload.readUInt32LE(12);
      for (let i = 0; i < count; i++) this.sendAnswer(m.connId, Buffer.alloc(size, i & 0xff));
      return;
    }
    if (command === 'CLOSEEXT') {
      this.conns.delete(m.connId);
      this.send(encodeCloseExt(m.connId));
      return;
    }
    this.sendAnswer(m.connId, m.payload);
  }
}

export class FakeMiddleProxy {
  readonly secret: Buffer;
  readonly clientPublicIp: string | undefined;
  readonly padNonceAnswer: boolean;
  readonly violations: string[] = [];
  readonly requests: SeenRequest[] = [];
  readonly closedConns: number[] = [];
  readonly pongs: string[] = [];
  readonly clientPids: ProcessId[] = [];
  readonly links = new Set<FakeLink>();
  /** RPC_PING frames the proxy sent us (answered with RPC_PONG unless stalled). */
  pingsFromProxy = 0;
  /** Links that complete their handshake from now on stall right after it. */
  stallNewLinks = false;
  /** Connections that completed the handshake, ever. */
  handshakes = 0;
  accepted = 0;
  pid: ProcessId = { ip: ipv4ToInt('127.0.0.1'), port: 0, pid: 0, utime: 0 };
  private readonly server: net.Server;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly opts: FakeMiddleOptions;

  constructor(opts: FakeMiddleOptions) {
    this.opts = opts;
    this.secret = opts.secret;
    this.clientPublicIp = opts.clientPublicIp;
    this.padNonceAnswer = opts.padNonceAnswer ?? false;
    this.server = net.createServer((socket) => {
      this.accepted++;
      const link = new FakeLink(this, this.accepted, socket);
      this.links.add(link);
      socket.on('close', () => this.links.delete(link));
    });
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** The ad tags seen, hex. */
  get adTags(): Set<string | null> {
    return new Set(this.requests.map((r) => r.adTag));
  }

  async start(port = 0, host = '127.0.0.1'): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(port, host, resolve));
    this.pid = {
      ip: ipv4ToInt('127.0.0.1'),
      port: this.port,
      pid: 1 + Math.floor(Math.random() * 60000),
      utime: Math.floor(Date.now() / 1000),
    };
    if (this.opts.rotateEveryMs) this.timers.push(setInterval(() => this.rotate(), this.opts.rotateEveryMs));
    if (this.opts.pingEveryMs) this.timers.push(setInterval(() => this.ping(), this.opts.pingEveryMs));
    return this;
  }

  onReady(_link: FakeLink): void {
    this.handshakes++;
  }

  /** Ready links and the conn ids they carry. */
  readyLinks(): FakeLink[] {
    return [...this.links].filter((l) => l.stage === STAGE_READY);
  }

  /** Close every connection (graceful FIN), as Telegram does when it rotates them. */
  rotate(): void {
    for (const l of this.links) l.socket.end();
  }

  /** Stop answering on every ready link (and on later ones too with `newLinks`), keeping the TCP up. */
  stall(opts: { newLinks?: boolean } = {}): void {
    for (const l of this.readyLinks()) l.stalled = true;
    if (opts.newLinks) this.stallNewLinks = true;
  }

  /** Refuse new connections from now on (the port closes); the links it has stay as they are. */
  stopAccepting(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** RPC_PING on every ready link; returns the ping ids sent (hex). */
  ping(): string[] {
    const ids: string[] = [];
    for (const l of this.readyLinks()) {
      const id = randomBytes(8);
      ids.push(id.toString('hex'));
      l.send(encodePing(id));
    }
    return ids;
  }

  /** Send a frame that breaks the full framing on every ready link (the proxy must drop the link). */
  sendBroken(kind: 'crc' | 'seq' | 'length'): void {
    for (const l of this.readyLinks()) l.sendBroken(kind);
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    for (const l of this.links) l.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A proxy config text pointing the given DC ids at a fake. */
export function fakeProxyConfigText(
  port: number,
  dcs: number[] = [1, 2, 3, 4, 5, -1, -2, -3, -4, -5],
  defaultDc = 2,
): string {
  return `# test config\ndefault ${defaultDc};\n${dcs.map((dc) => `proxy_for ${dc} 127.0.0.1:${port};`).join('\n')}\n`;
}
