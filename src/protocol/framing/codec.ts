/**
 * Client transport framings carried inside the obfuscated2 stream: abridged, intermediate and padded
 * intermediate ("secure", `dd`). Pure codecs: plaintext bytes in, frames out.
 *
 * Decoders accept any split of the byte stream. A frame handed to `onFrame` is a view that is only valid
 * during the callback; copy it to keep it.
 */
import { randomFillSync, randomInt } from 'node:crypto';
import { ProtocolError } from '../errors.ts';
import type { TransportTag } from '../obfuscated2.ts';
import { PartialInput } from '../partial-input.ts';

/** Largest frame a client may send (exclusive), as the reference: 1 MiB. */
export const DEFAULT_MAX_FRAME = 1024 * 1024;

/**
 * Smallest payload a client's frame can carry and still be MTProto: every message starts with an 8-byte
 * auth_key_id (an unencrypted one is at least 24 bytes, an encrypted one more). Shorter frames, and
 * intermediate frames whose length is not a multiple of 4, come from probers, not from apps.
 */
export const MIN_CLIENT_PAYLOAD = 8;

export type FrameHandler = (payload: Buffer, quickAck: boolean) => void;

export interface FrameCodecOptions {
  /** Frames of this many bytes or more are rejected. */
  maxFrame?: number;
  /** Reject intermediate frames whose length is not a multiple of 4 (middle-proxy mode needs aligned payloads). */
  requireAligned?: boolean;
  /**
   * Decode what a *server* sends (client side of a connection): a word with the quick-ack bit set is then a
   * 4-byte quick-ack answer, not a frame header. It is reported as `onFrame(token, true)` where `token` is
   * 4 bytes holding the 31-bit token as uint32 LE.
   */
  fromServer?: boolean;
  /** Reject frames whose payload (padding dropped) is shorter than this (client frames: MIN_CLIENT_PAYLOAD). */
  minPayload?: number;
}

export interface FrameCodec {
  readonly transport: TransportTag;
  /** Feed plaintext bytes; calls `onFrame` once per complete frame, in order. Throws ProtocolError. */
  decode(chunk: Buffer, onFrame: FrameHandler): void;
  /**
   * One frame as it goes on the wire (header ‖ payload ‖ padding), in a fresh buffer. `quickAck` sets the
   * quick-ack request bit (client side only; a server never sets it).
   */
  encode(payload: Buffer, quickAck?: boolean): Buffer;
  /**
   * The same frame for a caller that writes `payload` where it lies (no copy of a large payload): the bytes
   * before it and, when the transport pads, the bytes after it (else null). Server side (no quick-ack bit).
   */
  encodeAround(payloadLength: number): FrameParts;
  /** The answer to a quick-ack request, as the server sends it for this transport. */
  encodeQuickAck(token: number): Buffer;
  /** Bytes held back waiting for the rest of a frame. */
  readonly buffered: number;
}

/** Frames up to this size that straddle reads are assembled in one buffer of their exact size. */
const ASSEMBLE_LIMIT = 64 * 1024;

export interface FrameParts {
  head: Buffer;
  tail: Buffer | null;
}

/** Shared partial-frame handling: what a read leaves of a frame waits in a PartialInput. */
abstract class BaseDecoder implements FrameCodec {
  abstract readonly transport: TransportTag;
  private readonly pending = new PartialInput(ASSEMBLE_LIMIT);
  protected readonly maxFrame: number;
  protected readonly requireAligned: boolean;
  protected readonly fromServer: boolean;
  protected readonly minPayload: number;

  constructor(opts: FrameCodecOptions = {}) {
    this.maxFrame = opts.maxFrame ?? DEFAULT_MAX_FRAME;
    this.requireAligned = opts.requireAligned ?? false;
    this.fromServer = opts.fromServer ?? false;
    this.minPayload = opts.minPayload ?? 0;
  }

  get buffered(): number {
    return this.pending.length;
  }

  decode(chunk: Buffer, onFrame: FrameHandler): void {
    const pending = this.pending;
    if (pending.length === 0) {
      this.decodeFrom(chunk, 0, onFrame);
      return;
    }
    const held = pending.take(chunk);
    if (held === null) return;
    const used = pending.used;
    this.decodeFrom(held, 0, onFrame);
    if (used < chunk.length) this.decodeFrom(chunk, used, onFrame);
  }

  /** Decode every frame of `buf[off..]`; what is left of a frame is kept for the next read. */
  private decodeFrom(buf: Buffer, off: number, onFrame: FrameHandler): void {
    while (off < buf.length) {
      const used = this.decodeOne(buf, off, onFrame);
      if (used > 0) {
        off += used;
        continue;
      }
      // used < 0: only the body is incomplete, the frame's size is known; 0: even the header is cut.
      this.pending.keep(buf, off, -used, -used);
      return;
    }
  }

  /**
   * Decode one frame at `off`; returns the bytes consumed, 0 when even its header is incomplete, or minus the
   * frame's whole wire size when only its body is.
   */
  protected abstract decodeOne(buf: Buffer, off: number, onFrame: FrameHandler): number;
  abstract encode(payload: Buffer, quickAck?: boolean): Buffer;
  abstract encodeAround(payloadLength: number): FrameParts;
  abstract encodeQuickAck(token: number): Buffer;

  /** A server's quick-ack answer, handed over as 4 bytes (uint32 LE token without the flag bit). */
  protected emitQuickAckAnswer(token: number, onFrame: FrameHandler): void {
    const out = Buffer.allocUnsafe(4);
    out.writeUInt32LE(token & 0x7fffffff, 0);
    onFrame(out, true);
  }

  protected checkLength(len: number): void {
    if (len >= this.maxFrame) throw new ProtocolError('MTP_ERR_FRAME_TOO_LARGE', `frame of ${len} bytes`);
  }

  protected checkPayload(payloadLength: number): void {
    if (payloadLength < this.minPayload) throw tooSmall(payloadLength);
  }
}

function tooSmall(payloadLength: number): ProtocolError {
  return new ProtocolError('MTP_ERR_FRAME_TOO_SMALL', `frame payload of ${payloadLength} bytes`);
}

function unaligned(len: number): ProtocolError {
  return new ProtocolError('MTP_ERR_FRAME_UNALIGNED', `frame of ${len} bytes is not a multiple of 4`);
}

export class AbridgedCodec extends BaseDecoder {
  readonly transport = 'abridged' as const;

  protected decodeOne(buf: Buffer, off: number, onFrame: FrameHandler): number {
    const first = buf[off];
    const quickAck = first >= 0x80;
    if (quickAck && this.fromServer) {
      if (buf.length - off < 4) return 0;
      this.emitQuickAckAnswer(buf.readUInt32BE(off), onFrame);
      return 4;
    }
    let words = first & 0x7f;
    let head = 1;
    if (words === 0x7f) {
      if (buf.length - off < 4) return 0;
      words = buf.readUIntLE(off + 1, 3);
      head = 4;
    }
    const len = words * 4;
    this.checkLength(len);
    this.checkPayload(len);
    if (buf.length - off < head + len) return -(head + len);
    onFrame(buf.subarray(off + head, off + head + len), quickAck);
    return head + len;
  }

  encode(payload: Buffer, quickAck = false): Buffer {
    const words = payload.length >>> 2;
    if (words > 0xffffff)
      throw new ProtocolError('MTP_ERR_FRAME_TOO_LARGE', `frame of ${payload.length} bytes`);
    const head = words < 0x7f ? 1 : 4;
    const out = Buffer.allocUnsafe(head + payload.length);
    if (head === 1) out[0] = words;
    else {
      out[0] = 0x7f;
      out.writeUIntLE(words, 1, 3);
    }
    if (quickAck) out[0] |= 0x80;
    payload.copy(out, head);
    return out;
  }

  encodeAround(payloadLength: number): FrameParts {
    const words = payloadLength >>> 2;
    if (words > 0xffffff)
      throw new ProtocolError('MTP_ERR_FRAME_TOO_LARGE', `frame of ${payloadLength} bytes`);
    if (words < 0x7f) return { head: Buffer.from([words]), tail: null };
    const head = Buffer.allocUnsafe(4);
    head[0] = 0x7f;
    head.writeUIntLE(words, 1, 3);
    return { head, tail: null };
  }

  encodeQuickAck(token: number): Buffer {
    // Abridged sends the token big-endian so that the first byte carries the high bit and cannot be a length.
    const out = Buffer.allocUnsafe(4);
    out.writeUInt32BE((token | 0x80000000) >>> 0, 0);
    return out;
  }
}

export class IntermediateCodec extends BaseDecoder {
  readonly transport: TransportTag = 'intermediate';

  protected decodeOne(buf: Buffer, off: number, onFrame: FrameHandler): number {
    if (buf.length - off < 4) return 0;
    const raw = buf.readUInt32LE(off);
    const quickAck = raw >= 0x80000000;
    if (quickAck && this.fromServer) {
      this.emitQuickAckAnswer(raw, onFrame);
      return 4;
    }
    const len = raw & 0x7fffffff;
    this.checkLength(len);
    if (this.requireAligned && len % 4 !== 0) throw unaligned(len);
    this.checkPayload(len);
    if (buf.length - off < 4 + len) return -(4 + len);
    onFrame(buf.subarray(off + 4, off + 4 + this.payloadLength(len)), quickAck);
    return 4 + len;
  }

  protected payloadLength(len: number): number {
    return len;
  }

  encode(payload: Buffer, quickAck = false): Buffer {
    const out = Buffer.allocUnsafe(4 + payload.length);
    out.writeUInt32LE((quickAck ? payload.length | 0x80000000 : payload.length) >>> 0, 0);
    payload.copy(out, 4);
    return out;
  }

  encodeAround(payloadLength: number): FrameParts {
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32LE(payloadLength, 0);
    return { head, tail: null };
  }

  encodeQuickAck(token: number): Buffer {
    const out = Buffer.allocUnsafe(4);
    out.writeUInt32LE((token | 0x80000000) >>> 0, 0);
    return out;
  }
}

/** Padded intermediate: like intermediate, with 0-3 random bytes after the payload counted in the length. */
export class PaddedCodec extends IntermediateCodec {
  override readonly transport: TransportTag = 'padded';

  protected override decodeOne(buf: Buffer, off: number, onFrame: FrameHandler): number {
    // Padding makes any length legal here; alignment is restored by dropping len % 4 bytes.
    if (buf.length - off < 4) return 0;
    const raw = buf.readUInt32LE(off);
    const quickAck = raw >= 0x80000000;
    if (quickAck && this.fromServer) {
      this.emitQuickAckAnswer(raw, onFrame);
      return 4;
    }
    const len = raw & 0x7fffffff;
    this.checkLength(len);
    this.checkPayload(len - (len % 4));
    if (buf.length - off < 4 + len) return -(4 + len);
    onFrame(buf.subarray(off + 4, off + 4 + len - (len % 4)), quickAck);
    return 4 + len;
  }

  override encode(payload: Buffer, quickAck = false): Buffer {
    const pad = randomInt(4);
    const out = Buffer.allocUnsafe(4 + payload.length + pad);
    const len = payload.length + pad;
    out.writeUInt32LE((quickAck ? len | 0x80000000 : len) >>> 0, 0);
    payload.copy(out, 4);
    if (pad > 0) randomFillSync(out, 4 + payload.length, pad);
    return out;
  }

  override encodeAround(payloadLength: number): FrameParts {
    const pad = randomInt(4);
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32LE(payloadLength + pad, 0);
    return { head, tail: pad > 0 ? randomFillSync(Buffer.allocUnsafe(pad)) : null };
  }
}

export function createFrameCodec(transport: TransportTag, opts?: FrameCodecOptions): FrameCodec {
  switch (transport) {
    case 'abridged':
      return new AbridgedCodec(opts);
    case 'intermediate':
      return new IntermediateCodec(opts);
    case 'padded':
      return new PaddedCodec(opts);
  }
}

/**
 * Follows the frame boundaries of a client's plaintext stream without decoding it, for sessions whose bytes go
 * to the DC as they are (direct mode): a frame that cannot be MTProto (see MIN_CLIENT_PAYLOAD; unaligned
 * intermediate; too large) throws before the chunk that holds its header is passed on. Only a few header bytes
 * are kept between chunks; the bodies are skipped, not copied.
 */
export class ClientFrameScanner {
  private readonly abridged: boolean;
  private readonly padded: boolean;
  private readonly maxFrame: number;
  /** Body bytes of the current frame still to come. */
  private skip = 0;
  /** Header bytes of the next frame seen so far, and their value (little-endian). */
  private have = 0;
  private value = 0;

  constructor(transport: TransportTag, maxFrame = DEFAULT_MAX_FRAME) {
    this.abridged = transport === 'abridged';
    this.padded = transport === 'padded';
    this.maxFrame = maxFrame;
  }

  /** Throws ProtocolError when a frame whose header ends in `chunk` cannot be MTProto. */
  scan(chunk: Buffer): void {
    const n = chunk.length;
    let off = 0;
    while (off < n) {
      const skip = this.skip;
      if (skip > 0) {
        const k = Math.min(skip, n - off);
        this.skip = skip - k;
        off += k;
        continue;
      }
      const b = chunk[off++];
      if (this.abridged) {
        if (this.have === 0) {
          const words = b & 0x7f;
          if (words !== 0x7f) this.frame(words * 4);
          else this.have = 1;
          continue;
        }
        this.value += b * 2 ** (8 * (this.have - 1));
        if (++this.have === 4) this.frame(this.value * 4);
        continue;
      }
      // Intermediate and padded: 4 bytes little-endian, the top bit asks for a quick ack.
      this.value += (this.have === 3 ? b & 0x7f : b) * 2 ** (8 * this.have);
      if (++this.have === 4) this.frame(this.value);
    }
  }

  private frame(len: number): void {
    this.have = 0;
    this.value = 0;
    if (len >= this.maxFrame) throw new ProtocolError('MTP_ERR_FRAME_TOO_LARGE', `frame of ${len} bytes`);
    if (this.padded) {
      if (len - (len % 4) < MIN_CLIENT_PAYLOAD) throw tooSmall(len - (len % 4));
    } else {
      if (len % 4 !== 0) throw unaligned(len);
      if (len < MIN_CLIENT_PAYLOAD) throw tooSmall(len);
    }
    this.skip = len;
  }
}
