/**
 * The frames of a front→back link: one TLS connection between a front and a back carries many client
 * sessions, each as a stream of plaintext transport data (what the front decrypted from the client's
 * obfuscated2 leg; the back encrypts it again for Telegram).
 *
 * Every frame is a 9-byte header, then `length` bytes of payload:
 *
 *     type u8 | stream u32 (big-endian) | length u32 (big-endian) | payload
 *
 * - OPEN (front → back): a new session on `stream`; the payload is its metadata (see encodeOpen).
 * - OPENED (back → front): the back reached Telegram for that session; data may flow.
 * - DATA (both ways): transport bytes of the session, within the receiver's window.
 * - WINDOW (both ways): 4-byte increment of the sender's window for `stream` (per-stream flow control: a
 *   slow client never stalls the link, it only stops its own stream).
 * - END (front → back): the client half-closed.
 * - CLOSE (both ways): the session ended; the payload is the reason (ASCII, at most 64 bytes).
 * - PING / PONG (stream 0): 8 opaque bytes echoed, so a dead peer is noticed.
 *
 * This module is pure: no sockets, no timers. The decoder never throws on any input: it reports the first
 * error as a stable code and decodes nothing after it.
 */

import type { TransportTag } from '../../protocol/obfuscated2.ts';
import { PartialInput } from '../../protocol/partial-input.ts';

export const FRAME_OPEN = 1;
export const FRAME_OPENED = 2;
export const FRAME_DATA = 3;
export const FRAME_WINDOW = 4;
export const FRAME_END = 5;
export const FRAME_CLOSE = 6;
export const FRAME_PING = 7;
export const FRAME_PONG = 8;
const LAST_TYPE = FRAME_PONG;

export const HEADER_LENGTH = 9;
/** Largest DATA payload a sender produces and a receiver accepts. */
export const MAX_DATA = 64 * 1024;
export const MAX_OPEN = 1024;
export const MAX_REASON = 64;
export const PING_LENGTH = 8;
/** Bytes a receiver lets each stream send before the first WINDOW (and the most it grants at once). */
export const INITIAL_WINDOW = 256 * 1024;

export type LinkDecodeError = 'MTP_ERR_LINK_FRAME_TYPE' | 'MTP_ERR_LINK_FRAME_SIZE';

/** Largest payload of each frame type (index = type); -1: a fixed size, given by FIXED. */
const MAX_PAYLOAD = [0, MAX_OPEN, 0, MAX_DATA, 4, 0, MAX_REASON, PING_LENGTH, PING_LENGTH];
/** Exact payload size of fixed-size frame types, else -1. */
const FIXED = [-1, -1, 0, -1, 4, 0, -1, PING_LENGTH, PING_LENGTH];

/** What a decoder delivers frames to. `payload` is a view valid only during the call: copy what you keep. */
export interface FrameHandler {
  onFrame(type: number, stream: number, payload: Buffer): void;
}

export class LinkDecoder {
  readonly #partial = new PartialInput(HEADER_LENGTH + MAX_DATA);
  #error: LinkDecodeError | null = null;

  /** The first error seen, if any (then nothing more is decoded). */
  get error(): LinkDecodeError | null {
    return this.#error;
  }

  /**
   * Decode what `chunk` completes. Returns null, or the error that makes the rest of the input meaningless
   * (the link must be closed). Never throws, except what the handler throws.
   */
  push(chunk: Buffer, handler: FrameHandler): LinkDecodeError | null {
    if (this.#error !== null) return this.#error;
    let buf = chunk;
    let off = 0;
    if (this.#partial.length > 0) {
      const input = this.#partial.take(chunk);
      if (input === null) return null;
      const used = this.#partial.used;
      if (used < chunk.length) {
        // `input` is exactly one frame (filled) or everything held plus this chunk.
        if (this.#decode(input, 0, handler, true) !== null) return this.#error;
        buf = chunk;
        off = used;
      } else {
        buf = input;
      }
    }
    this.#decode(buf, off, handler, false);
    return this.#error;
  }

  /** Decode frames of buf[off..]; keep an incomplete tail. `whole`: buf is one complete frame. */
  #decode(buf: Buffer, off: number, handler: FrameHandler, whole: boolean): LinkDecodeError | null {
    const end = buf.length;
    while (off < end) {
      if (end - off < HEADER_LENGTH) {
        this.#partial.keep(buf, off, 0, HEADER_LENGTH);
        return null;
      }
      const type = buf[off];
      if (type === 0 || type > LAST_TYPE) return (this.#error = 'MTP_ERR_LINK_FRAME_TYPE');
      const stream = buf.readUInt32BE(off + 1);
      const length = buf.readUInt32BE(off + 5);
      const fixed = FIXED[type];
      if (fixed >= 0 ? length !== fixed : length > MAX_PAYLOAD[type]) {
        return (this.#error = 'MTP_ERR_LINK_FRAME_SIZE');
      }
      const size = HEADER_LENGTH + length;
      if (end - off < size) {
        this.#partial.keep(buf, off, size, size);
        return null;
      }
      handler.onFrame(type, stream, buf.subarray(off + HEADER_LENGTH, off + size));
      off += size;
      if (whole) return null;
    }
    return null;
  }
}

/** A frame header for `length` payload bytes (DATA is sent as header + the caller's buffer, no copy). */
export function frameHeader(type: number, stream: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_LENGTH);
  h[0] = type;
  h.writeUInt32BE(stream >>> 0, 1);
  h.writeUInt32BE(length, 5);
  return h;
}

/** A whole frame in one buffer (control frames). */
export function encodeFrame(type: number, stream: number, payload: Buffer | null = null): Buffer {
  const n = payload === null ? 0 : payload.length;
  const out = Buffer.allocUnsafe(HEADER_LENGTH + n);
  out[0] = type;
  out.writeUInt32BE(stream >>> 0, 1);
  out.writeUInt32BE(n, 5);
  if (payload !== null) payload.copy(out, HEADER_LENGTH);
  return out;
}

export function encodeWindow(stream: number, increment: number): Buffer {
  const out = Buffer.allocUnsafe(HEADER_LENGTH + 4);
  out[0] = FRAME_WINDOW;
  out.writeUInt32BE(stream >>> 0, 1);
  out.writeUInt32BE(4, 5);
  out.writeUInt32BE(increment >>> 0, HEADER_LENGTH);
  return out;
}

/** CLOSE with a reason cut to MAX_REASON printable ASCII bytes. */
export function encodeClose(stream: number, reason: string): Buffer {
  const text = reason.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_REASON);
  return encodeFrame(FRAME_CLOSE, stream, Buffer.from(text, 'latin1'));
}

export function decodeReason(payload: Buffer): string {
  return payload.toString('latin1').replace(/[^\x20-\x7e]/g, '?');
}

// ---- OPEN metadata ------------------------------------------------------------------------------------

const OPEN_VERSION = 2;
const TRANSPORTS: readonly TransportTag[] = ['abridged', 'intermediate', 'padded'];
const MODES: readonly UpstreamMode[] = ['direct', 'middle'];

/** How the back reaches Telegram for a session: as the front's own config would have (see upstreamKind). */
export type UpstreamMode = 'direct' | 'middle';

/** What a back learns about a session: enough to reach Telegram as the front would have. */
export interface OpenMeta {
  dcId: number;
  transport: TransportTag;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  /** The listener (or user) name, for the back's logs and metrics. */
  listener: string;
  /** The ad tag in force for the session (the user's or the listener's), 16 bytes, or null. */
  adTag: Buffer | null;
  tlsDomain: string | null;
  /** Direct DC link or a client of the middle-proxy pools (the front's decision). */
  mode: UpstreamMode;
  /** The user whose secret opened the session (the front enforces its limits), or null. */
  user: string | null;
}

/** Text fields are cut to this many bytes (a name, an address, a domain). */
const MAX_TEXT = 255;

function textBytes(s: string | null): Buffer {
  const b = Buffer.from(s ?? '', 'utf8');
  return b.length > MAX_TEXT ? b.subarray(0, MAX_TEXT) : b;
}

/**
 * version u8 | dc i16 | transport u8 | mode u8 | remote port u16 | local port u16 | tag len u8 + tag |
 * 5 × (len u8 + utf8: remote address, local address, listener, TLS domain, user)
 */
export function encodeOpen(m: OpenMeta): Buffer {
  const texts = [m.remoteAddress, m.localAddress, m.listener, m.tlsDomain, m.user].map(textBytes);
  const tag = m.adTag ?? Buffer.alloc(0);
  let n = 1 + 2 + 1 + 1 + 2 + 2 + 1 + tag.length;
  for (const t of texts) n += 1 + t.length;
  const out = Buffer.allocUnsafe(n);
  let o = out.writeUInt8(OPEN_VERSION, 0);
  o = out.writeInt16BE(m.dcId, o);
  o = out.writeUInt8(TRANSPORTS.indexOf(m.transport), o);
  o = out.writeUInt8(MODES.indexOf(m.mode), o);
  o = out.writeUInt16BE(m.remotePort & 0xffff, o);
  o = out.writeUInt16BE(m.localPort & 0xffff, o);
  o = out.writeUInt8(tag.length, o);
  o += tag.copy(out, o);
  for (const t of texts) {
    o = out.writeUInt8(t.length, o);
    o += t.copy(out, o);
  }
  return out;
}

/** The metadata of an OPEN payload, or null when it is not one (never throws). */
export function decodeOpen(p: Buffer): OpenMeta | null {
  if (p.length < 10 || p[0] !== OPEN_VERSION) return null;
  const dcId = p.readInt16BE(1);
  const transport = TRANSPORTS[p[3]];
  const mode = MODES[p[4]];
  if (transport === undefined || mode === undefined) return null;
  const remotePort = p.readUInt16BE(5);
  const localPort = p.readUInt16BE(7);
  const tagLength = p[9];
  if (tagLength !== 0 && tagLength !== 16) return null;
  let o = 10;
  if (o + tagLength > p.length) return null;
  const adTag = tagLength === 0 ? null : Buffer.from(p.subarray(o, o + tagLength));
  o += tagLength;
  const texts: string[] = [];
  for (let i = 0; i < 5; i++) {
    if (o >= p.length) return null;
    const n = p[o++];
    if (o + n > p.length) return null;
    texts.push(p.toString('utf8', o, o + n));
    o += n;
  }
  if (o !== p.length) return null;
  return {
    dcId,
    transport,
    remotePort,
    localPort,
    adTag,
    remoteAddress: texts[0],
    localAddress: texts[1],
    listener: texts[2],
    tlsDomain: texts[3] === '' ? null : texts[3],
    mode,
    user: texts[4] === '' ? null : texts[4],
  };
}
