/**
 * A fake Telegram DC on loopback for tests. Strict like a real DC: it parses the 64-byte obfuscated2 header
 * WITHOUT a secret, refuses headers whose first words a DC would read as another protocol, refuses an
 * unknown transport tag, and decodes every frame with the client's framing (a broken frame closes the
 * connection). It then answers:
 *   - an unencrypted req_pq / req_pq_multi with a resPQ (so a real MTProto library moves on to req_DH_params);
 *   - anything else by echoing the frame back (or by a custom handler).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { createFrameCodec, type FrameCodec } from '../../src/protocol/framing/codec.ts';
import {
  type CtrStream,
  deriveKeys,
  HEADER_LENGTH,
  type TransportTag,
  transportFromTag,
} from '../../src/protocol/obfuscated2.ts';
import { createDecipheriv, createCipheriv, randomBytes } from 'node:crypto';

export const CTOR_REQ_PQ = 0x60469778;
export const CTOR_REQ_PQ_MULTI = 0xbe7e8ef1;
export const CTOR_RES_PQ = 0x05162463;
export const CTOR_REQ_DH_PARAMS = 0xd712e4be;
/** A key both GramJS and mtcute know (production RSA key, fingerprint 0xd09d1d85de64fd85). */
export const SERVER_KEY_FINGERPRINT = 0xd09d1d85de64fd85n;
/** pq = 1229739323 * 1402015859, the example from the MTProto documentation. */
export const RES_PQ_PQ = Buffer.from('17ed48941a08f981', 'hex');

export interface DcConnection {
  transport: TransportTag;
  dcId: number;
  /** Client frames seen, in order (copies). */
  frames: Buffer[];
  /** Constructor ids of unencrypted MTProto requests seen (auth_key_id = 0). */
  plainRequests: number[];
  socket: net.Socket;
  /** Send one frame to the client (framed, encrypted). */
  send(payload: Buffer): boolean;
  /** Send raw plaintext transport bytes (encrypted only). */
  sendPlain(plain: Buffer): boolean;
}

export type FrameHandler = (conn: DcConnection, payload: Buffer, quickAck: boolean) => void;

export interface FakeDcOptions {
  host?: string;
  /** Replaces the default answer (resPQ or echo). */
  onFrame?: FrameHandler;
  /** Remember at most this many frames per connection (large transfers). Default 1000. */
  keepFrames?: number;
}

function isForbiddenStart(h: Buffer): boolean {
  if (h[0] === 0xef) return true;
  switch (h.readUInt32LE(0)) {
    case 0x44414548:
    case 0x54534f50:
    case 0x20544547:
    case 0x4954504f:
    case 0xeeeeeeee:
    case 0xdddddddd:
    case 0x02010316:
      return true;
  }
  return h.readUInt32LE(4) === 0;
}

/** An unencrypted MTProto message: auth_key_id 0 ‖ msg_id ‖ length ‖ body. */
export function plainMessage(body: Buffer, msgId: bigint): Buffer {
  const out = Buffer.alloc(20 + body.length);
  out.writeBigUInt64LE(msgId, 8);
  out.writeUInt32LE(body.length, 16);
  body.copy(out, 20);
  return out;
}

/** A server message id: unix time in the high half, low bits ≡ 1 (mod 4). */
export function serverMsgId(): bigint {
  const now = BigInt(Math.floor(Date.now() / 1000));
  return (now << 32n) | ((BigInt(randomBytes(4).readUInt32LE(0)) & ~3n) | 1n);
}

export function buildResPq(nonce: Buffer, serverNonce: Buffer = randomBytes(16)): Buffer {
  const body = Buffer.alloc(4 + 16 + 16 + 12 + 4 + 4 + 8);
  let o = body.writeUInt32LE(CTOR_RES_PQ, 0);
  o += nonce.copy(body, o);
  o += serverNonce.copy(body, o);
  body[o] = RES_PQ_PQ.length;
  RES_PQ_PQ.copy(body, o + 1);
  o += 12;
  o = body.writeUInt32LE(0x1cb5c415, o);
  o = body.writeUInt32LE(1, o);
  body.writeBigUInt64LE(SERVER_KEY_FINGERPRINT, o);
  return plainMessage(body, serverMsgId());
}

/** Constructor of an unencrypted MTProto message, or null. */
export function plainConstructor(payload: Buffer): number | null {
  if (payload.length < 24 || payload.readBigUInt64LE(0) !== 0n) return null;
  return payload.readUInt32LE(20);
}

export class FakeDc extends EventEmitter {
  readonly server: net.Server;
  readonly connections: DcConnection[] = [];
  /** Headers refused, by reason. */
  readonly rejected: string[] = [];
  private readonly opts: FakeDcOptions;
  private readonly sockets = new Set<net.Socket>();

  private constructor(opts: FakeDcOptions) {
    super();
    this.opts = opts;
    this.server = net.createServer((s) => this.accept(s));
  }

  static async start(opts: FakeDcOptions = {}): Promise<FakeDc> {
    const dc = new FakeDc(opts);
    await new Promise<void>((resolve, reject) => {
      dc.server.once('error', reject);
      dc.server.listen(0, opts.host ?? '127.0.0.1', () => resolve());
    });
    return dc;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get address(): string {
    return `${this.opts.host ?? '127.0.0.1'}:${this.port}`;
  }

  /** Resolves with the first connection (existing or future) that matches. */
  waitForConnection(
    match: (c: DcConnection) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<DcConnection> {
    const found = this.connections.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('connection', onConn);
        reject(new Error('no matching DC connection'));
      }, timeoutMs);
      const onConn = (c: DcConnection): void => {
        if (!match(c)) return;
        clearTimeout(timer);
        this.off('connection', onConn);
        resolve(c);
      };
      this.on('connection', onConn);
    });
  }

  /** Resolves when a client frame satisfies `match`. */
  waitForFrame(
    match: (c: DcConnection, payload: Buffer) => boolean,
    timeoutMs = 10_000,
  ): Promise<DcConnection> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('frame', onFrame);
        reject(new Error('no matching frame at the DC'));
      }, timeoutMs);
      const onFrame = (c: DcConnection, payload: Buffer): void => {
        if (!match(c, payload)) return;
        clearTimeout(timer);
        this.off('frame', onFrame);
        resolve(c);
      };
      this.on('frame', onFrame);
    });
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true);
    let header: Buffer | null = Buffer.alloc(0);
    let decrypt: CtrStream;
    let encrypt: CtrStream;
    let codec: FrameCodec;
    let conn: DcConnection;
    const keep = this.opts.keepFrames ?? 1000;
    const refuse = (reason: string): void => {
      this.rejected.push(reason);
      this.emit('rejected', reason);
      socket.destroy();
    };
    const onFrame = (payload: Buffer, quickAck: boolean): void => {
      const copy = Buffer.from(payload);
      if (conn.frames.length < keep) conn.frames.push(copy);
      const ctor = plainConstructor(copy);
      if (ctor !== null) conn.plainRequests.push(ctor);
      this.emit('frame', conn, copy, quickAck);
      if (this.opts.onFrame) {
        this.opts.onFrame(conn, copy, quickAck);
        return;
      }
      if (ctor === CTOR_REQ_PQ_MULTI || ctor === CTOR_REQ_PQ) {
        conn.send(buildResPq(copy.subarray(24, 40)));
        return;
      }
      // Our resPQ's key fingerprint leads a real client to req_DH_params; there the test has seen enough.
      if (ctor === CTOR_REQ_DH_PARAMS) return;
      conn.send(copy);
    };
    socket.on('data', (chunk: Buffer) => {
      try {
        if (header !== null) {
          header = Buffer.concat([header, chunk]);
          if (header.length < HEADER_LENGTH) return;
          const h = header.subarray(0, HEADER_LENGTH);
          const rest = header.subarray(HEADER_LENGTH);
          header = null;
          if (isForbiddenStart(h)) return refuse('forbidden-start');
          const k = deriveKeys(h, null);
          decrypt = createDecipheriv('aes-256-ctr', k.readKey, k.readIv);
          encrypt = createCipheriv('aes-256-ctr', k.writeKey, k.writeIv);
          const plain = decrypt.update(h);
          const transport = transportFromTag(plain.readUInt32LE(56));
          if (transport === null) return refuse('unknown-transport');
          codec = createFrameCodec(transport);
          conn = {
            transport,
            dcId: plain.readInt16LE(60),
            frames: [],
            plainRequests: [],
            socket,
            send: (payload) => socket.write(encrypt.update(codec.encode(payload))),
            sendPlain: (p) => socket.write(encrypt.update(p)),
          };
          this.connections.push(conn);
          this.emit('connection', conn);
          if (rest.length > 0) codec.decode(decrypt.update(rest), onFrame);
          return;
        }
        codec.decode(decrypt.update(chunk), onFrame);
      } catch {
        refuse('bad-frame');
      }
    });
  }
}
