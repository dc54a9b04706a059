/**
 * The "full" framing of the middle-proxy RPC link: `len ‖ seq ‖ body ‖ crc32`, then padding words so that the
 * stream stays 16-byte aligned for AES-CBC. Pure: bytes in, frames out.
 *
 *   len   uint32 LE = 12 + body length (counts itself, seq and the CRC)
 *   seq   int32 LE, starts at -2 in each direction (nonce -2, handshake -1, data 0, 1, ...)
 *   crc   CRC32 (IEEE) of len ‖ seq ‖ body, uint32 LE
 *   pad   `04 00 00 00` words up to the next multiple of 16 (a len of 4 can never be a real frame)
 */
import { crc32 } from 'node:zlib';
import { ProtocolError } from '../errors.ts';
import { PartialInput } from '../partial-input.ts';

export const FULL_HEADER = 8;
export const FULL_OVERHEAD = 12;
/** Largest frame accepted from the peer (len field), as the reference. */
export const FULL_MAX_FRAME = 16 * 1024 * 1024;
export const FIRST_SEQ = -2;
const PAD_WORD = 4;

/** Bytes of padding after a frame of `len` bytes. */
export function fullPadding(len: number): number {
  return (16 - (len % 16)) % 16;
}

/** Total wire size of a frame with a body of `bodyLength` bytes, padding included. */
export function fullWireSize(bodyLength: number): number {
  const len = FULL_OVERHEAD + bodyLength;
  return len + fullPadding(len);
}

/**
 * Seal a frame whose body was already written at `out[8, 8 + bodyLength)`: fills len, seq, CRC and padding.
 * `out` must be exactly `fullWireSize(bodyLength)` bytes. Lets hot paths build a frame in one allocation.
 */
export function sealFullFrame(out: Buffer, bodyLength: number, seq: number): void {
  sealFullFrameAt(out, 0, bodyLength, seq);
}

/**
 * sealFullFrame for a frame that starts at `out[at]` (its body at `out[at + 8]`) and may be followed by other
 * frames in the same buffer. Returns the frame's wire size, padding included.
 */
export function sealFullFrameAt(out: Buffer, at: number, bodyLength: number, seq: number): number {
  if (bodyLength % 4 !== 0) {
    throw new ProtocolError('MTP_ERR_RPC_BAD_FRAME', `body of ${bodyLength} bytes is not a multiple of 4`);
  }
  const len = FULL_OVERHEAD + bodyLength;
  const crcAt = at + FULL_HEADER + bodyLength;
  out.writeUInt32LE(len, at);
  out.writeInt32LE(seq, at + 4);
  out.writeUInt32LE(crc32(out.subarray(at, crcAt)), crcAt);
  const end = at + len + fullPadding(len);
  for (let off = at + len; off < end; off += 4) out.writeUInt32LE(PAD_WORD, off);
  return end - at;
}

/**
 * The same frame as sealFullFrame, for a body split in two: `head` holds 8 reserved bytes then the first part
 * of the body, `tail` the rest (a large payload, left where it is instead of being copied). Fills len and seq
 * in `head` and returns the trailer (CRC and padding). The frame on the wire is head ‖ tail ‖ trailer.
 */
export function sealFullFrameParts(head: Buffer, tail: Buffer, seq: number): Buffer {
  const bodyLength = head.length - FULL_HEADER + tail.length;
  if (bodyLength % 4 !== 0) {
    throw new ProtocolError('MTP_ERR_RPC_BAD_FRAME', `body of ${bodyLength} bytes is not a multiple of 4`);
  }
  const len = FULL_OVERHEAD + bodyLength;
  head.writeUInt32LE(len, 0);
  head.writeInt32LE(seq, 4);
  const trailer = Buffer.allocUnsafe(4 + fullPadding(len));
  trailer.writeUInt32LE(crc32(tail, crc32(head)), 0);
  for (let off = 4; off < trailer.length; off += 4) trailer.writeUInt32LE(PAD_WORD, off);
  return trailer;
}

/** One frame with padding, in a fresh buffer. */
export function encodeFullFrame(body: Buffer, seq: number): Buffer {
  const out = Buffer.allocUnsafe(fullWireSize(body.length));
  body.copy(out, FULL_HEADER);
  sealFullFrame(out, body.length, seq);
  return out;
}

/** Numbers outgoing frames: one per direction of a link. */
export class FullEncoder {
  seq: number;
  constructor(firstSeq = FIRST_SEQ) {
    this.seq = firstSeq;
  }

  /** Frame `body` with the next sequence number. */
  encode(body: Buffer): Buffer {
    return encodeFullFrame(body, this.nextSeq());
  }

  /** Take the next sequence number (for callers that build the frame themselves with sealFullFrame). */
  nextSeq(): number {
    const seq = this.seq;
    this.seq = (this.seq + 1) | 0;
    return seq;
  }
}

/** Plaintext a FullBatch gathers before it must be taken (frames larger than this go out on their own). */
export const FULL_BATCH_CAPACITY = 128 * 1024;
const BATCH_FIRST_SIZE = 4096;
const EMPTY = Buffer.alloc(0);

/**
 * Outgoing frames gathered back to back in one reusable buffer, so that everything a link sends in one tick
 * is encrypted by one cipher call and leaves in one socket write (per-frame cipher calls, writes and buffers
 * cost more than the copy into the batch). Pure: the caller encrypts what `take()` returns.
 *
 * Writing a frame: `const at = batch.reserve(bodyLength)`, write the body at `batch.buffer[at..]`, then
 * `batch.commit(bodyLength)` numbers and seals it. The buffer is allocated on first use.
 */
export class FullBatch {
  readonly capacity: number;
  private readonly encoder: FullEncoder;
  private buf: Buffer | null = null;
  private length = 0;

  constructor(encoder: FullEncoder, capacity = FULL_BATCH_CAPACITY) {
    this.encoder = encoder;
    this.capacity = capacity;
  }

  /** Plaintext bytes queued (always a multiple of 16). */
  get pending(): number {
    return this.length;
  }

  /** Where frames are written; replaced when `reserve` grows it, so read it after `reserve`. */
  get buffer(): Buffer {
    return this.buf ?? EMPTY;
  }

  /** Room for a frame with a body of `bodyLength` bytes behind what is queued. */
  fits(bodyLength: number): boolean {
    return this.length + fullWireSize(bodyLength) <= this.capacity;
  }

  /** Where the body of the next frame goes in `buffer`; the caller checked `fits`. */
  reserve(bodyLength: number): number {
    // Checked here rather than when sealing, which would have taken a sequence number already.
    if (bodyLength % 4 !== 0) {
      throw new ProtocolError('MTP_ERR_RPC_BAD_FRAME', `body of ${bodyLength} bytes is not a multiple of 4`);
    }
    if (!this.fits(bodyLength)) {
      throw new ProtocolError('MTP_ERR_RPC_BAD_FRAME', `frame of ${bodyLength} bytes does not fit the batch`);
    }
    const end = this.length + fullWireSize(bodyLength);
    if (this.buf === null || this.buf.length < end) this.grow(end);
    return this.length + FULL_HEADER;
  }

  /** Seal the frame whose body was written at `reserve(bodyLength)`, with the next sequence number. */
  commit(bodyLength: number): void {
    this.length += sealFullFrameAt(this.buffer, this.length, bodyLength, this.encoder.nextSeq());
  }

  /** Queue a frame carrying a copy of `body`. */
  push(body: Buffer): void {
    const at = this.reserve(body.length);
    body.copy(this.buffer, at);
    this.commit(body.length);
  }

  /** The queued frames, as a view valid until the next frame is queued; the batch is empty afterwards. */
  take(): Buffer {
    const out = this.buffer.subarray(0, this.length);
    this.length = 0;
    return out;
  }

  /** A link that only ever sends control messages keeps a small buffer; bulk traffic grows it to capacity. */
  private grow(atLeast: number): void {
    let size = Math.max(BATCH_FIRST_SIZE, this.buf ? this.buf.length * 2 : 0);
    while (size < atLeast) size *= 2;
    const next = Buffer.allocUnsafeSlow(Math.min(size, this.capacity));
    if (this.buf !== null) this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
}

export type FullFrameHandler = (body: Buffer, seq: number) => void;

/** Frames up to this size that straddle reads are assembled in one buffer of their exact size. */
const ASSEMBLE_LIMIT = 256 * 1024;

/**
 * Streaming decoder for frames coming from the peer. Any split of the stream decodes the same. Requires the
 * exact expected sequence number, a valid CRC and a sane length; anything else throws ProtocolError and the
 * link must be closed (its state can no longer be trusted).
 *
 * A frame cut by the end of a read waits in a PartialInput (filled in a buffer of its own up to
 * ASSEMBLE_LIMIT, else as a list of chunks).
 */
export class FullDecoder {
  expectedSeq: number;
  private readonly pending = new PartialInput(ASSEMBLE_LIMIT);
  private readonly maxFrame: number;

  constructor(firstSeq = FIRST_SEQ, maxFrame = FULL_MAX_FRAME) {
    this.expectedSeq = firstSeq;
    this.maxFrame = maxFrame;
  }

  get buffered(): number {
    return this.pending.length;
  }

  /** Bytes received but not yet part of a complete frame; the decoder forgets them. */
  takeRemainder(): Buffer {
    return this.pending.takeAll();
  }

  /**
   * Feed bytes. `onFrame` gets a view of each body, valid only during the call. With `maxFrames`, stops after
   * that many frames and keeps the rest buffered (used to split the plaintext nonce from the encrypted stream).
   * Returns the number of frames delivered.
   */
  decode(chunk: Buffer, onFrame: FullFrameHandler, maxFrames = Number.POSITIVE_INFINITY): number {
    const pending = this.pending;
    if (pending.length === 0) return this.decodeFrom(chunk, 0, onFrame, maxFrames);
    const held = pending.take(chunk);
    if (held === null) return 0;
    const used = pending.used;
    const frames = this.decodeFrom(held, 0, onFrame, maxFrames);
    if (used === chunk.length) return frames;
    return frames + this.decodeFrom(chunk, used, onFrame, maxFrames - frames);
  }

  /** Decode up to `maxFrames` frames of `buf[off..]`; what is left is kept for the next read. */
  private decodeFrom(buf: Buffer, off: number, onFrame: FullFrameHandler, maxFrames: number): number {
    let frames = 0;
    let needed = 4;
    while (frames < maxFrames && buf.length - off >= 4) {
      const len = buf.readUInt32LE(off);
      if (len === PAD_WORD) {
        off += 4;
        continue;
      }
      if (len % 4 !== 0 || len < FULL_OVERHEAD || len > this.maxFrame) {
        throw new ProtocolError('MTP_ERR_RPC_BAD_FRAME', `bad frame length ${len}`);
      }
      if (buf.length - off < len) {
        needed = len;
        break;
      }
      this.deliver(buf, off, len, onFrame);
      frames++;
      off += len;
    }
    if (off < buf.length) {
      // A frame of known size is filled in a buffer of its own, unless the caller asked to stop here.
      this.pending.keep(buf, off, needed > 4 && frames < maxFrames ? needed : 0, needed);
    }
    return frames;
  }

  /** Check the frame of `len` bytes at `off` (sequence, CRC) and hand its body over. */
  private deliver(buf: Buffer, off: number, len: number, onFrame: FullFrameHandler): void {
    const seq = buf.readInt32LE(off + 4);
    if (seq !== this.expectedSeq) {
      throw new ProtocolError('MTP_ERR_RPC_BAD_SEQ', `sequence ${seq}, expected ${this.expectedSeq}`);
    }
    const crcAt = off + len - 4;
    if (crc32(buf.subarray(off, crcAt)) !== buf.readUInt32LE(crcAt)) {
      throw new ProtocolError('MTP_ERR_RPC_BAD_CRC', 'frame checksum mismatch');
    }
    this.expectedSeq = (this.expectedSeq + 1) | 0;
    onFrame(buf.subarray(off + FULL_HEADER, crcAt), seq);
  }
}
