/**
 * Messages of the middle-proxy RPC protocol (the bodies carried by full frames). Pure codecs; all integers
 * little-endian. Both roles are here: the proxy side (what `src/upstream/middle` sends and receives) and the
 * Telegram side (used by the test suite's fake middle proxy and by diagnostics).
 *
 * conn_id values are int64 on the wire; this project allocates them below 2^53 and handles them as numbers.
 */
import { isIPv4 } from 'node:net';
import { ProtocolError } from '../errors.ts';
import type { TransportTag } from '../obfuscated2.ts';
import { unmapIpv4 } from '../../runtime/sockets.ts';
import { ipv4ToInt, ipv6Bytes } from './crypto.ts';

export const RPC_NONCE = 0x7acb87aa;
export const RPC_HANDSHAKE = 0x7682eef5;
export const RPC_HANDSHAKE_ERROR = 0x6a27beda;
export const RPC_PROXY_REQ = 0x36cef1ee;
export const RPC_PROXY_ANS = 0x4403da0d;
export const RPC_CLOSE_CONN = 0x1fcf425d;
export const RPC_CLOSE_EXT = 0x5eb634a2;
export const RPC_SIMPLE_ACK = 0x3bac409b;
export const RPC_PING = 0x5730a2df;
export const RPC_PONG = 0x8430eaa7;
export const TL_PROXY_TAG = 0xdb1e26ae;

export const CRYPTO_SCHEMA_AES = 1;
export const NONCE_BODY_LENGTH = 32;
export const HANDSHAKE_BODY_LENGTH = 32;
/** Handshake flag asking for CRC32C instead of CRC32; we never offer it, so a peer must not select it. */
export const HANDSHAKE_FLAG_CRC32C = 0x800;

export const FLAG_NOT_ENCRYPTED = 0x2;
export const FLAG_HAS_AD_TAG = 0x8;
export const FLAG_MAGIC = 0x1000;
export const FLAG_EXTMODE2 = 0x20000;
export const FLAG_PAD = 0x8000000;
export const FLAG_INTERMEDIATE = 0x20000000;
export const FLAG_ABRIDGED = 0x40000000;
export const FLAG_QUICKACK = 0x80000000;

export const AD_TAG_LENGTH = 16;
export const IP_PORT_LENGTH = 20;
/** RPC_PROXY_REQ header without / with the extra block carrying the ad tag. */
export const PROXY_REQ_HEADER = 56;
export const PROXY_REQ_HEADER_WITH_TAG = 84;

const TWO_32 = 0x1_0000_0000;

function readConnId(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * TWO_32;
}

function writeConnId(buf: Buffer, connId: number, off: number): void {
  buf.writeUInt32LE((connId % TWO_32) >>> 0, off);
  buf.writeUInt32LE(Math.floor(connId / TWO_32) >>> 0, off + 4);
}

// ---------------------------------------------------------------------------------------------------------------
// Addresses

/** 20 bytes: IPv4 as 10 zero bytes ‖ ff ff ‖ 4 octets, or IPv6 as 16 bytes; then the port as uint32 LE. */
export function writeIpPort(out: Buffer, off: number, ip: string, port: number): void {
  const plain = unmapIpv4(ip);
  if (isIPv4(plain)) {
    out.fill(0, off, off + 10);
    out.writeUInt16BE(0xffff, off + 10);
    out.writeUInt32BE(ipv4ToInt(plain), off + 12);
  } else {
    ipv6Bytes(plain).copy(out, off);
  }
  out.writeUInt32LE(port >>> 0, off + 16);
}

export function encodeIpPort(ip: string, port: number): Buffer {
  const out = Buffer.alloc(IP_PORT_LENGTH);
  writeIpPort(out, 0, ip, port);
  return out;
}

export function decodeIpPort(buf: Buffer, off: number): { ip: string; port: number } {
  const port = buf.readUInt32LE(off + 16);
  const mapped =
    buf.readUInt32BE(off) === 0 && buf.readUInt32BE(off + 4) === 0 && buf.readUInt32BE(off + 8) === 0xffff;
  if (mapped) {
    return { ip: `${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`, port };
  }
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(off + i * 2).toString(16));
  return { ip: groups.join(':'), port };
}

// ---------------------------------------------------------------------------------------------------------------
// Nonce

export interface NoncePacket {
  /** First 4 bytes of the proxy secret. */
  keySelector: Buffer;
  schema: number;
  /** Unix seconds. */
  timestamp: number;
  nonce: Buffer;
}

export function encodeNonce(p: NoncePacket): Buffer {
  const out = Buffer.alloc(NONCE_BODY_LENGTH);
  out.writeUInt32LE(RPC_NONCE, 0);
  p.keySelector.copy(out, 4, 0, 4);
  out.writeUInt32LE(p.schema >>> 0, 8);
  out.writeUInt32LE(p.timestamp >>> 0, 12);
  p.nonce.copy(out, 16, 0, 16);
  return out;
}

export function decodeNonce(body: Buffer): NoncePacket {
  if (body.length < 4 || body.readUInt32LE(0) !== RPC_NONCE) {
    throw new ProtocolError('MTP_ERR_RPC_HANDSHAKE', 'expected RPC_NONCE');
  }
  if (body.length !== NONCE_BODY_LENGTH) {
    throw new ProtocolError('MTP_ERR_RPC_HANDSHAKE', `RPC_NONCE of ${body.length} bytes`);
  }
  return {
    keySelector: Buffer.from(body.subarray(4, 8)),
    schema: body.readUInt32LE(8),
    timestamp: body.readUInt32LE(12),
    nonce: Buffer.from(body.subarray(16, 32)),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Handshake

/** A process id as the RPC layer knows it: 12 bytes (ip u32, port u16, pid u16, start time i32). */
export interface ProcessId {
  ip: number;
  port: number;
  pid: number;
  utime: number;
}

export function encodeProcessId(p: ProcessId): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt32LE(p.ip >>> 0, 0);
  out.writeUInt16LE(p.port & 0xffff, 4);
  out.writeUInt16LE(p.pid & 0xffff, 6);
  out.writeInt32LE(p.utime | 0, 8);
  return out;
}

export function decodeProcessId(buf: Buffer): ProcessId {
  return {
    ip: buf.readUInt32LE(0),
    port: buf.readUInt16LE(4),
    pid: buf.readUInt16LE(6),
    utime: buf.readInt32LE(8),
  };
}

/** X matches Y when every non-zero field of Y equals X's (zero = "any"). */
export function processIdMatches(x: ProcessId, y: ProcessId): boolean {
  return (
    (y.ip === 0 || x.ip === y.ip) &&
    (y.port === 0 || x.port === y.port) &&
    (y.pid === 0 || x.pid === y.pid) &&
    (y.utime === 0 || x.utime === y.utime)
  );
}

export interface HandshakePacket {
  flags: number;
  senderPid: Buffer;
  peerPid: Buffer;
}

export function encodeHandshake(p: HandshakePacket): Buffer {
  const out = Buffer.alloc(HANDSHAKE_BODY_LENGTH);
  out.writeUInt32LE(RPC_HANDSHAKE, 0);
  out.writeUInt32LE(p.flags >>> 0, 4);
  p.senderPid.copy(out, 8, 0, 12);
  p.peerPid.copy(out, 20, 0, 12);
  return out;
}

export function decodeHandshake(body: Buffer): HandshakePacket {
  if (body.length >= 4 && body.readUInt32LE(0) === RPC_HANDSHAKE_ERROR) {
    throw new ProtocolError('MTP_ERR_RPC_HANDSHAKE', 'peer answered RPC_HANDSHAKE_ERROR');
  }
  if (body.length < 4 || body.readUInt32LE(0) !== RPC_HANDSHAKE) {
    throw new ProtocolError('MTP_ERR_RPC_HANDSHAKE', 'expected RPC_HANDSHAKE');
  }
  if (body.length !== HANDSHAKE_BODY_LENGTH) {
    throw new ProtocolError('MTP_ERR_RPC_HANDSHAKE', `RPC_HANDSHAKE of ${body.length} bytes`);
  }
  return {
    flags: body.readUInt32LE(4),
    senderPid: Buffer.from(body.subarray(8, 20)),
    peerPid: Buffer.from(body.subarray(20, 32)),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Proxy -> Telegram

/** RPC_PROXY_REQ flags for one client packet. */
export function proxyReqFlags(
  transport: TransportTag,
  hasAdTag: boolean,
  payload: Buffer,
  quickAck: boolean,
): number {
  let flags = FLAG_MAGIC | FLAG_EXTMODE2;
  if (hasAdTag) flags |= FLAG_HAS_AD_TAG;
  if (transport === 'abridged') flags |= FLAG_ABRIDGED;
  else if (transport === 'intermediate') flags |= FLAG_INTERMEDIATE;
  else flags |= FLAG_INTERMEDIATE | FLAG_PAD;
  // auth_key_id 0: an unencrypted MTProto message (the auth key exchange).
  if (payload.length >= 8 && payload.readUInt32LE(0) === 0 && payload.readUInt32LE(4) === 0)
    flags |= FLAG_NOT_ENCRYPTED;
  if (quickAck) flags |= FLAG_QUICKACK;
  return flags >>> 0;
}

export function proxyReqHeaderLength(adTag: Buffer | null): number {
  return adTag ? PROXY_REQ_HEADER_WITH_TAG : PROXY_REQ_HEADER;
}

export interface ProxyReqHeader {
  flags: number;
  connId: number;
  /** 20-byte encoded client address (writeIpPort). */
  clientAddress: Buffer;
  /** 20-byte encoded proxy address: external IP + local port of the link. */
  proxyAddress: Buffer;
  /** 16 bytes or null (then no extra block and no HAS_AD_TAG flag). */
  adTag: Buffer | null;
}

/**
 * Write an RPC_PROXY_REQ header at `out[off..]`; the payload goes right after, at `off + proxyReqHeaderLength`.
 * Returns the header length. Lets the link build frame + header + payload in one buffer.
 */
export function writeProxyReqHeader(out: Buffer, off: number, h: ProxyReqHeader): number {
  out.writeUInt32LE(RPC_PROXY_REQ, off);
  out.writeUInt32LE(h.flags >>> 0, off + 4);
  writeConnId(out, h.connId, off + 8);
  h.clientAddress.copy(out, off + 16, 0, IP_PORT_LENGTH);
  h.proxyAddress.copy(out, off + 36, 0, IP_PORT_LENGTH);
  if (!h.adTag) return PROXY_REQ_HEADER;
  if (h.adTag.length !== AD_TAG_LENGTH)
    throw new ProtocolError('MTP_ERR_RPC_BAD_MESSAGE', 'ad tag must be 16 bytes');
  // Extra block: TL_PROXY_TAG then the tag as a TL string (length byte, bytes, zero padding to 4).
  out.writeUInt32LE(24, off + 56);
  out.writeUInt32LE(TL_PROXY_TAG, off + 60);
  out[off + 64] = AD_TAG_LENGTH;
  h.adTag.copy(out, off + 65);
  out[off + 81] = 0;
  out[off + 82] = 0;
  out[off + 83] = 0;
  return PROXY_REQ_HEADER_WITH_TAG;
}

export function encodeProxyReq(h: ProxyReqHeader, payload: Buffer): Buffer {
  const head = proxyReqHeaderLength(h.adTag);
  const out = Buffer.allocUnsafe(head + payload.length);
  writeProxyReqHeader(out, 0, h);
  payload.copy(out, head);
  return out;
}

/** A 12-byte message: its type, then a connection id (close messages). */
function encodeConnMessage(type: number, connId: number): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt32LE(type, 0);
  writeConnId(out, connId, 4);
  return out;
}

/** A 12-byte message: its type, then an 8-byte ping id (ping and pong). */
function encodePingMessage(type: number, pingId: Buffer): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt32LE(type, 0);
  pingId.copy(out, 4, 0, 8);
  return out;
}

export function encodeCloseConn(connId: number): Buffer {
  return encodeConnMessage(RPC_CLOSE_CONN, connId);
}

export function encodePong(pingId: Buffer): Buffer {
  return encodePingMessage(RPC_PONG, pingId);
}

// ---------------------------------------------------------------------------------------------------------------
// Telegram -> proxy

export type ServerMessage =
  | { kind: 'answer'; flags: number; connId: number; payload: Buffer }
  | { kind: 'simple-ack'; connId: number; confirm: number }
  | { kind: 'close-ext'; connId: number }
  | { kind: 'ping'; pingId: Buffer }
  | { kind: 'pong'; pingId: Buffer }
  | { kind: 'unknown'; type: number; length: number };

/**
 * Decode one message from Telegram. Unknown types, or known types with an unexpected length, come back as
 * `unknown` (to be logged and ignored, as Telegram may add messages). `answer.payload` is a view into `body`.
 */
export function decodeServerMessage(body: Buffer): ServerMessage {
  const type = body.length >= 4 ? body.readUInt32LE(0) : -1;
  switch (type) {
    case RPC_PROXY_ANS:
      if (body.length >= 16) {
        return {
          kind: 'answer',
          flags: body.readUInt32LE(4),
          connId: readConnId(body, 8),
          payload: body.subarray(16),
        };
      }
      break;
    case RPC_SIMPLE_ACK:
      if (body.length === 16)
        return { kind: 'simple-ack', connId: readConnId(body, 4), confirm: body.readUInt32LE(12) };
      break;
    case RPC_CLOSE_EXT:
      if (body.length === 12) return { kind: 'close-ext', connId: readConnId(body, 4) };
      break;
    case RPC_PING:
      if (body.length === 12) return { kind: 'ping', pingId: Buffer.from(body.subarray(4, 12)) };
      break;
    case RPC_PONG:
      if (body.length === 12) return { kind: 'pong', pingId: Buffer.from(body.subarray(4, 12)) };
      break;
  }
  return { kind: 'unknown', type, length: body.length };
}

// Telegram's side of the protocol (the test suite's fake middle proxy, diagnostics).

/** RPC_PROXY_ANS header length; the payload follows it. */
export const PROXY_ANS_HEADER = 16;

/** Write an RPC_PROXY_ANS header at `out[off..]` (for a sender that writes the payload apart). */
export function writeProxyAnsHeader(out: Buffer, off: number, connId: number, flags = 0): void {
  out.writeUInt32LE(RPC_PROXY_ANS, off);
  out.writeUInt32LE(flags >>> 0, off + 4);
  writeConnId(out, connId, off + 8);
}

export function encodeProxyAns(connId: number, payload: Buffer, flags = 0): Buffer {
  const out = Buffer.allocUnsafe(PROXY_ANS_HEADER + payload.length);
  writeProxyAnsHeader(out, 0, connId, flags);
  payload.copy(out, PROXY_ANS_HEADER);
  return out;
}

export function encodeSimpleAck(connId: number, confirm: number): Buffer {
  const out = Buffer.alloc(16);
  out.writeUInt32LE(RPC_SIMPLE_ACK, 0);
  writeConnId(out, connId, 4);
  out.writeUInt32LE(confirm >>> 0, 12);
  return out;
}

export function encodeCloseExt(connId: number): Buffer {
  return encodeConnMessage(RPC_CLOSE_EXT, connId);
}

export function encodePing(pingId: Buffer): Buffer {
  return encodePingMessage(RPC_PING, pingId);
}

export type ProxyMessage =
  | {
      kind: 'request';
      flags: number;
      connId: number;
      client: { ip: string; port: number };
      proxy: { ip: string; port: number };
      adTag: Buffer | null;
      payload: Buffer;
    }
  | { kind: 'close-conn'; connId: number }
  | { kind: 'ping'; pingId: Buffer }
  | { kind: 'pong'; pingId: Buffer };

/** Decode one message a proxy sent (strict: anything malformed throws ProtocolError). */
export function decodeProxyMessage(body: Buffer): ProxyMessage {
  const type = body.length >= 4 ? body.readUInt32LE(0) : -1;
  if (type === RPC_CLOSE_CONN && body.length === 12)
    return { kind: 'close-conn', connId: readConnId(body, 4) };
  if (type === RPC_PONG && body.length === 12)
    return { kind: 'pong', pingId: Buffer.from(body.subarray(4, 12)) };
  if (type === RPC_PING && body.length === 12)
    return { kind: 'ping', pingId: Buffer.from(body.subarray(4, 12)) };
  if (type !== RPC_PROXY_REQ || body.length < PROXY_REQ_HEADER) {
    throw new ProtocolError(
      'MTP_ERR_RPC_BAD_MESSAGE',
      `unexpected message type ${type >>> 0} of ${body.length} bytes`,
    );
  }
  const flags = body.readUInt32LE(4);
  let off = PROXY_REQ_HEADER;
  let adTag: Buffer | null = null;
  if (flags & (FLAG_HAS_AD_TAG | 0x4)) {
    if (body.length < off + 4) throw new ProtocolError('MTP_ERR_RPC_BAD_MESSAGE', 'truncated extra block');
    const extra = body.readUInt32LE(off);
    off += 4;
    if (extra % 4 !== 0 || body.length < off + extra) {
      throw new ProtocolError('MTP_ERR_RPC_BAD_MESSAGE', 'bad extra block size');
    }
    if (flags & FLAG_HAS_AD_TAG) {
      if (extra < 24 || body.readUInt32LE(off) !== TL_PROXY_TAG || body[off + 4] !== AD_TAG_LENGTH) {
        throw new ProtocolError('MTP_ERR_RPC_BAD_MESSAGE', 'bad ad tag block');
      }
      adTag = Buffer.from(body.subarray(off + 5, off + 5 + AD_TAG_LENGTH));
    }
    off += extra;
  }
  return {
    kind: 'request',
    flags,
    connId: readConnId(body, 8),
    client: decodeIpPort(body, 16),
    proxy: decodeIpPort(body, 36),
    adTag,
    payload: body.subarray(off),
  };
}
