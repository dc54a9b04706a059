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

/** Largest frame a client may send (exclusive), as the reference: 1 MiB. */
export const DEFAULT_MAX_FRAME = 1024 * 1024;

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
  /** The answer to a quick-ack request, as the server sends it for this transport. */
  encodeQuickAck(token: number): Buffer;
  /** Bytes held back waiting for the rest of a frame. */
  readonly buffered: number;
}

/** Shared partial-frame handling: a decoder works on `chunk`, or on `pending ‖ chunk` when a frame straddles reads. */
abstract class BaseDecoder implements FrameCodec {
  abstract readonly transport: TransportTag;
  protected pending: Buffer | null = null;
  protected readonly maxFrame: number;
  protected readonly requireAligned: boolean;
  protected readonly fromServer: boolean;

  constructor(opts: FrameCodecOptions = {}) {
    this.maxFrame = opts.maxFrame ?? DEFAULT_MAX_FRAME;
    this.requireAligned = opts.requireAligned ?? false;
    this.fromServer = opts.fromServer ?? false;
  }

  get buffered(): number {
    return this.pending ? this.pending.length : 0;
  }

  decode(chunk: Buffer, onFrame: FrameHandler): void {
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let off = 0;
    while (off < buf.length) {
      const used = this.decodeOne(buf, off, onFrame);
      if (used === 0) break;
      off += used;
    }
    // Copy the tail: a view would pin the whole read buffer for as long as the frame stays incomplete.
    if (off < buf.length) this.pending = Buffer.from(buf.subarray(off));
  }

  /** Decode one frame at `off`; returns the bytes consumed, or 0 when the frame is incomplete. */
  protected abstract decodeOne(buf: Buffer, off: number, onFrame: FrameHandler): number;
  abstract encode(payload: Buffer, quickAck?: boolean): Buffer;
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
    if (buf.length - off < head + len) return 0;
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
    if (this.requireAligned && len % 4 !== 0) {
      throw new ProtocolError('MTP_ERR_FRAME_UNALIGNED', `frame of ${len} bytes is not a multiple of 4`);
    }
    if (buf.length - off < 4 + len) return 0;
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
    if (buf.length - off < 4 + len) return 0;
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
