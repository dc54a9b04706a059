/**
 * Load-generator side of a proxied session, kept as cheap as possible so the proxy stays the bottleneck:
 * - 'plain': no handshake (the ceiling relay).
 * - 'o2': obfuscated2 header with the listener secret, then real intermediate (TLS: padded) frames, encrypted:
 *   the proxy checks the frame boundaries of every client (and decodes them in middle mode).
 * - 'tls': a fake-TLS ClientHello, the server flight checked, then everything above inside TLS records.
 * Inbound bytes are only counted (TLS: application-data payload bytes), never decrypted.
 */
import { createHmac, createSecretKey, type KeyObject, randomFillSync } from 'node:crypto';
import net from 'node:net';
import {
  buildClientHello,
  helloRandom,
  readServerFlight,
  x25519PublicKey,
} from '../../src/client/tls-hello.ts';
import {
  type CtrStream,
  createInitiatorHeader,
  type InitiatorHandshake,
} from '../../src/protocol/obfuscated2.ts';

export interface Target {
  host: string;
  port: number;
  wire: 'plain' | 'o2' | 'tls';
  /** 16-byte secret, hex. */
  secret?: string;
  domain?: string;
  /** The proxy decodes frames on this path (middle mode): send real encrypted intermediate frames. */
  framed?: boolean;
  dcId?: number;
}

const MAX_RECORD = 16384;
let helloTemplate: { key: string; record: Buffer } | null = null;
const hmacKeys = new Map<string, KeyObject>();
/** Offset of the hello's random and of its 32-byte session id (after the random and its length byte). */
const RANDOM_OFFSET = 5 + 4 + 2;
const SESSION_ID_OFFSET = RANDOM_OFFSET + 32 + 1;

/**
 * A fresh, correctly signed ClientHello. Building the modern shape is far dearer than the proxy's check of it,
 * so the load generator builds one per process and only renews the session id and the digest each time
 * (HMAC with a KeyObject: a raw Buffer key costs several times more on Node 24).
 */
function nextHello(secret: Buffer, domain: string): Buffer {
  const key = `${secret.toString('hex')}/${domain}`;
  if (helloTemplate?.key !== key) {
    const record = buildClientHello({
      shape: 'modern',
      secret,
      domain,
      unixTime: Math.floor(Date.now() / 1000),
      // One key share for every hello: the proxy never completes a real key exchange, and keygen is not free.
      x25519Key: x25519PublicKey(),
      fixedOrder: true,
    });
    helloTemplate = { key, record };
  }
  let hmacKey = hmacKeys.get(key);
  if (!hmacKey) hmacKeys.set(key, (hmacKey = createSecretKey(secret)));
  const record = Buffer.from(helloTemplate.record);
  randomFillSync(record, SESSION_ID_OFFSET, 32);
  // random = HMAC(secret, hello with zero random) XOR (28 zero bytes ‖ uint32le(unix time)).
  record.fill(0, RANDOM_OFFSET, RANDOM_OFFSET + 32);
  const digest = createHmac('sha256', hmacKey).update(record).digest();
  digest.writeUInt32LE((digest.readUInt32LE(28) ^ Math.floor(Date.now() / 1000)) >>> 0, 28);
  digest.copy(record, RANDOM_OFFSET);
  return record;
}

interface PreparedHandshake {
  o2: InitiatorHandshake;
  hello: Buffer | null;
}

/** Handshakes made ahead of time (session-rate runs), so the timed loop spends nothing on them. */
const prepared: PreparedHandshake[] = [];
/** The target they were made for: a handshake for another secret or port is useless elsewhere. */
let preparedFor = '';

function targetKey(t: Target): string {
  return `${t.host}:${t.port}/${t.wire}/${t.secret ?? ''}/${t.domain ?? ''}/${t.dcId ?? 2}`;
}

function makeHandshake(t: Target, secret: Buffer): PreparedHandshake {
  // Inside fake-TLS, clients speak padded intermediate (what `ee` clients do); elsewhere plain intermediate.
  const o2 = createInitiatorHeader(t.wire === 'tls' ? 'padded' : 'intermediate', t.dcId ?? 2, secret);
  return { o2, hello: t.wire === 'tls' ? nextHello(secret, t.domain ?? 'example.com') : null };
}

export function prepareHandshakes(t: Target, count: number): void {
  prepared.length = 0;
  preparedFor = targetKey(t);
  if (t.wire === 'plain') return;
  const secret = Buffer.from(t.secret ?? '', 'hex');
  for (let i = 0; i < count; i++) prepared.push(makeHandshake(t, secret));
}

/** Turn transport payload into what goes on the socket (encryption when framed, TLS records when tls). */
export class ClientSession {
  readonly socket: net.Socket;
  readonly #encrypt: CtrStream | null;
  readonly #tls: boolean;
  /** Inbound counting: bytes left in the current TLS record, and header bytes still to read. */
  #recordLeft = 0;
  #headerLeft = 5;
  #headerLen = [0, 0];
  received = 0;
  onReceived: ((total: number) => void) | null = null;
  /** obfuscated2 header held back to leave with the first send (TLS: after the ChangeCipherSpec, in one record). */
  #heldHeader: Buffer | null;

  constructor(
    socket: net.Socket,
    encrypt: CtrStream | null,
    tls: boolean,
    leftover: Buffer | null,
    heldHeader: Buffer | null = null,
  ) {
    this.socket = socket;
    this.#encrypt = encrypt;
    this.#tls = tls;
    this.#heldHeader = heldHeader;
    socket.on('data', (chunk: Buffer) => this.#count(chunk));
    if (leftover && leftover.length > 0) this.#count(leftover);
  }

  #count(chunk: Buffer): void {
    if (!this.#tls) {
      this.received += chunk.length;
    } else {
      let i = 0;
      while (i < chunk.length) {
        if (this.#headerLeft > 0) {
          // Record header: type, version (2), length (2); only the length matters here.
          const at = 5 - this.#headerLeft;
          if (at === 3) this.#headerLen[0] = chunk[i];
          if (at === 4) this.#headerLen[1] = chunk[i];
          i++;
          if (--this.#headerLeft === 0) this.#recordLeft = (this.#headerLen[0] << 8) | this.#headerLen[1];
          continue;
        }
        const n = Math.min(this.#recordLeft, chunk.length - i);
        this.received += n;
        i += n;
        this.#recordLeft -= n;
        if (this.#recordLeft === 0) this.#headerLeft = 5;
      }
    }
    this.onReceived?.(this.received);
  }

  /** Send transport bytes (already framed when the target is framed). */
  send(payload: Buffer): boolean {
    const header = this.#heldHeader;
    if (header !== null) {
      this.#heldHeader = null;
      const first = Buffer.concat([header, this.#encrypt ? this.#encrypt.update(payload) : payload]);
      return this.socket.write(this.#tls ? Buffer.concat([CHANGE_CIPHER_SPEC, wrapRecords(first)]) : first);
    }
    if (this.#tls && !this.#encrypt) return this.socket.write(wrappedOnce(payload));
    const data = this.#encrypt ? this.#encrypt.update(payload) : payload;
    return this.socket.write(this.#tls ? wrapRecords(data) : data);
  }

  /** Bytes the peer sends back for `payloadLength` bytes echoed by a framed (middle) upstream. */
  static framedReplyLength(payloadLength: number): number {
    return 4 + payloadLength;
  }
}

/**
 * Unencrypted payload sent again and again (the throughput block) is wrapped once: a copy per send would make
 * the generator, not the proxy, the bottleneck of the fake-TLS figure.
 */
const wrapped = new WeakMap<Buffer, Buffer>();

function wrappedOnce(data: Buffer): Buffer {
  let out = wrapped.get(data);
  if (!out) {
    out = wrapRecords(data);
    wrapped.set(data, out);
  }
  return out;
}

export function wrapRecords(data: Buffer): Buffer {
  const records = Math.max(1, Math.ceil(data.length / MAX_RECORD));
  const out = Buffer.allocUnsafe(data.length + records * 5);
  let o = 0;
  for (let i = 0; i < data.length || o === 0; i += MAX_RECORD) {
    const n = Math.min(MAX_RECORD, data.length - i);
    out[o] = 0x17;
    out[o + 1] = 0x03;
    out[o + 2] = 0x03;
    out.writeUInt16BE(n, o + 3);
    data.copy(out, o + 5, i, i + n);
    o += 5 + n;
  }
  return out;
}

/** Intermediate frames carrying `total` payload bytes in frames of at most `frameSize` (multiple of 4). */
export function buildFrames(total: number, frameSize: number): Buffer {
  const frames = Math.ceil(total / frameSize);
  const out = Buffer.alloc(total + frames * 4, 0x33);
  let o = 0;
  for (let left = total; left > 0; left -= frameSize) {
    const n = Math.min(frameSize, left);
    out.writeUInt32LE(n, o);
    o += 4 + n;
  }
  return out;
}

function connect(t: Target): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: t.host, port: t.port, noDelay: true });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/**
 * Wait for the proxy's three-record flight (ServerHello, ChangeCipherSpec, one application-data record).
 * `verify` also checks its digest; the timed session-rate loop skips that (tests check it elsewhere).
 */
function readFlight(socket: net.Socket, random: Buffer, secret: Buffer, verify: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let length = -1;
      if (verify) {
        const r = readServerFlight(buf, random, secret);
        if (r.kind === 'need-more') return;
        if (r.kind !== 'proxy') return fail(new Error(`fake-TLS handshake: ${r.kind}`));
        length = r.length;
      } else {
        let pos = 0;
        for (const type of [0x16, 0x14, 0x17]) {
          if (buf.length < pos + 5) return;
          if (buf[pos] !== type) return fail(new Error('fake-TLS handshake: unexpected answer'));
          pos += 5 + buf.readUInt16BE(pos + 3);
        }
        if (buf.length < pos) return;
        length = pos;
      }
      done();
      resolve(buf.subarray(length));
    };
    const fail = (e: Error) => {
      done();
      reject(e);
    };
    const done = () => {
      socket.off('data', onData);
      socket.off('close', onClose);
    };
    const onClose = () => fail(new Error('closed during fake-TLS handshake'));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

const CHANGE_CIPHER_SPEC = Buffer.from('140303000101', 'hex');

/**
 * Connect and complete the client side of the handshake; the session is ready for `send`. `holdHeader`: the
 * obfuscated2 header (and, in TLS, the ChangeCipherSpec) leaves with the first send in one write, as
 * Telegram clients send them with their first request; only for sessions that send at once.
 */
export async function openSession(t: Target, holdHeader = false): Promise<ClientSession> {
  const socket = await connect(t);
  socket.on('error', () => {});
  if (t.wire === 'plain') return new ClientSession(socket, null, false, null);
  const secret = Buffer.from(t.secret ?? '', 'hex');
  const ready = prepared.length > 0 && preparedFor === targetKey(t) ? prepared.pop() : undefined;
  const hs = ready ?? makeHandshake(t, secret);
  if (t.wire === 'o2') {
    if (holdHeader)
      return new ClientSession(socket, hs.o2.encrypt, false, null, hs.o2.header);
    socket.write(hs.o2.header);
    return new ClientSession(socket, hs.o2.encrypt, false, null);
  }
  const hello = hs.hello!;
  socket.write(hello);
  const leftover = await readFlight(socket, helloRandom(hello), secret, ready === undefined);
  const encrypt = hs.o2.encrypt;
  if (holdHeader) return new ClientSession(socket, encrypt, true, leftover, hs.o2.header);
  // Telegram's clients send a ChangeCipherSpec before the first application-data record.
  socket.write(CHANGE_CIPHER_SPEC);
  socket.write(wrapRecords(hs.o2.header));
  return new ClientSession(socket, encrypt, true, leftover);
}
