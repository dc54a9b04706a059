/**
 * Our own MTProto-proxy client: connects to a proxy with a plain or `dd` secret, sends the obfuscated2
 * header for any transport and DC id, then sends and receives frames. Used by the tests, `mtproxy ping`,
 * the doctor and the benchmarks.
 *
 * The obfuscated stream can be carried inside another layer: `ee` secrets get the fake-TLS handshake and
 * records by default, or pass a `StreamLayer` that wraps outgoing bytes and unwraps incoming ones.
 */
import net from 'node:net';
import { type ClientSecret, parseClientSecret } from '../config/secrets.ts';
import { createFrameCodec, type FrameCodec } from '../protocol/framing/codec.ts';
import { type CtrStream, createInitiatorHeader, type TransportTag } from '../protocol/obfuscated2.ts';
import { fakeTlsHandshake } from './fake-tls-client.ts';
import type { HelloShape } from './tls-hello.ts';

/** A layer under obfuscated2 (e.g. fake-TLS records). */
export interface StreamLayer {
  /** Wrap obfuscated bytes for the wire. */
  wrap(data: Buffer): Buffer;
  /** Unwrap wire bytes; calls `onData` with the obfuscated stream. Throws on a broken stream. */
  unwrap(chunk: Buffer, onData: (data: Buffer) => void): void;
}

export interface ObfuscatedClientOptions {
  host: string;
  port: number;
  /** Link form (32 hex, `dd` + hex; `ee` needs `layer`) or the raw 16 bytes. */
  secret: string | Buffer;
  /** Default: padded for `dd` (and `ee`) secrets, intermediate otherwise. */
  transport?: TransportTag;
  /** Signed DC id; default 2. */
  dcId?: number;
  connectTimeoutMs?: number;
  /** 64 bytes that make the header deterministic (tests). */
  headerRandom?: Buffer;
  /** Set up the layer under obfuscated2 on the fresh socket (e.g. run a fake-TLS handshake). */
  layer?: (socket: net.Socket) => Promise<StreamLayer>;
  /** `ee` secrets without a custom `layer`: the ClientHello shape (default modern). */
  tlsShape?: HelloShape;
  /** `ee` secrets: client clock in Unix seconds for the hello (default now). */
  tlsUnixTime?: number;
  /** Local address to connect from (tests use 127.0.0.x to be several clients). */
  localAddress?: string;
}

export interface ReceivedFrame {
  payload: Buffer;
  /** A quick-ack answer from the server: `payload` is the token (uint32 LE). */
  quickAck: boolean;
}

function parseSecretOption(secret: string | Buffer): ClientSecret {
  if (Buffer.isBuffer(secret)) {
    if (secret.length !== 16) throw new Error('secret must be 16 bytes');
    return { kind: 'plain', secret, domain: null };
  }
  const parsed = parseClientSecret(secret);
  if (!parsed) throw new Error('secret is not a valid proxy secret');
  return parsed;
}

function connectSocket(
  host: string,
  port: number,
  timeoutMs: number,
  localAddress?: string,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, ...(localAddress ? { localAddress } : {}) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${host}:${port} timed out`));
    }, timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
  });
}

/** Connect through a proxy and send the obfuscated2 header; resolves when the header is on its way. */
export async function connectObfuscated(opts: ObfuscatedClientOptions): Promise<ObfuscatedConnection> {
  const parsed = parseSecretOption(opts.secret);
  const setupLayer =
    opts.layer ??
    (parsed.kind === 'ee'
      ? async (socket: net.Socket): Promise<StreamLayer> =>
          (
            await fakeTlsHandshake(socket, {
              secret: parsed.secret,
              domain: parsed.domain ?? '',
              shape: opts.tlsShape,
              unixTime: opts.tlsUnixTime,
              timeoutMs: opts.connectTimeoutMs,
            })
          ).framing
      : undefined);
  const transport = opts.transport ?? (parsed.kind === 'plain' ? 'intermediate' : 'padded');
  const socket = await connectSocket(
    opts.host,
    opts.port,
    opts.connectTimeoutMs ?? 10_000,
    opts.localAddress,
  );
  socket.setNoDelay(true);
  let layer: StreamLayer | null = null;
  try {
    if (setupLayer) layer = await setupLayer(socket);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return new ObfuscatedConnection(socket, parsed.secret, transport, opts.dcId ?? 2, layer, opts.headerRandom);
}

export class ObfuscatedConnection {
  readonly socket: net.Socket;
  readonly transport: TransportTag;
  readonly dcId: number;
  /** Resolves when the socket has closed (for any reason). */
  readonly closed: Promise<void>;
  /** Set when the server's stream could not be decoded or the socket failed. */
  error: Error | null = null;
  /** Total plaintext bytes received (transport bytes, before frame decoding). */
  bytesReceived = 0;
  /** When set, frames go here instead of the queue used by nextFrame(). */
  onFrame: ((frame: ReceivedFrame) => void) | null = null;

  private readonly encrypt: CtrStream;
  private readonly decrypt: CtrStream;
  private readonly codec: FrameCodec;
  private readonly layer: StreamLayer | null;
  private readonly queue: ReceivedFrame[] = [];
  private readonly waiters: { resolve: (f: ReceivedFrame) => void; reject: (e: Error) => void }[] = [];
  private ended = false;

  constructor(
    socket: net.Socket,
    secret: Buffer,
    transport: TransportTag,
    dcId: number,
    layer: StreamLayer | null,
    headerRandom?: Buffer,
  ) {
    this.socket = socket;
    this.transport = transport;
    this.dcId = dcId;
    this.layer = layer;
    this.codec = createFrameCodec(transport, { fromServer: true });
    const hs = createInitiatorHeader(transport, dcId, secret, headerRandom);
    this.encrypt = hs.encrypt;
    this.decrypt = hs.decrypt;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', this.onData);
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed')));
    this.writeWire(hs.header);
  }

  /** Send one frame (framed for this transport, encrypted). */
  sendFrame(payload: Buffer, quickAck = false): boolean {
    return this.sendPlain(this.codec.encode(payload, quickAck));
  }

  /** Send plaintext transport bytes as they are (already framed, or deliberately broken). */
  sendPlain(plain: Buffer): boolean {
    return this.writeWire(this.encrypt.update(plain));
  }

  /** The next received frame, in order. Rejects on timeout or when the connection fails first. */
  nextFrame(timeoutMs = 10_000): Promise<ReceivedFrame> {
    const ready = this.queue.shift();
    if (ready) return Promise.resolve(ready);
    if (this.ended) return Promise.reject(this.error ?? new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (f: ReceivedFrame) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no frame within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Half-close: no more bytes from us. */
  end(): void {
    this.socket.end();
  }

  close(): void {
    this.socket.destroy();
  }

  private writeWire(obfuscated: Buffer): boolean {
    return this.socket.write(this.layer ? this.layer.wrap(obfuscated) : obfuscated);
  }

  private readonly onData = (chunk: Buffer): void => {
    try {
      if (this.layer) this.layer.unwrap(chunk, this.onObfuscated);
      else this.onObfuscated(chunk);
    } catch (err) {
      this.fail(err as Error);
      this.socket.destroy();
    }
  };

  private readonly onObfuscated = (data: Buffer): void => {
    const plain = this.decrypt.update(data);
    this.bytesReceived += plain.length;
    this.codec.decode(plain, this.onDecoded);
  };

  private readonly onDecoded = (payload: Buffer, quickAck: boolean): void => {
    const frame = { payload: Buffer.from(payload), quickAck };
    if (this.onFrame) {
      this.onFrame(frame);
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(frame);
    else this.queue.push(frame);
  };

  private fail(err: Error): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.error && err.message !== 'connection closed') this.error = err;
    const e = this.error ?? err;
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
}
