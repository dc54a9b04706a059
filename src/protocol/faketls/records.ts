/**
 * TLS record layer after the fake handshake (reference §3.10). Pure: bytes in, payload out.
 *
 * Incoming: application-data records (17 03 03) carry the obfuscated2 stream; record boundaries mean nothing
 * to that stream, so payload is handed out as soon as it arrives (a record split over TCP segments is not
 * reassembled first) and all of a chunk's payload goes out as one view of that chunk: one decrypt and one
 * upstream write per read, however many records the read held. ChangeCipherSpec records are skipped
 * wherever they appear; anything else is a protocol error.
 *
 * Outgoing: payload cut into records of at most 16 KiB, written into one buffer.
 */
import { ProtocolError } from '../errors.ts';

export const CONTENT_CHANGE_CIPHER_SPEC = 0x14;
export const CONTENT_ALERT = 0x15;
export const CONTENT_HANDSHAKE = 0x16;
export const CONTENT_APPLICATION_DATA = 0x17;

export const RECORD_HEADER_LENGTH = 5;
/** Plaintext limit (2^14) for what we send. */
export const MAX_RECORD_PAYLOAD = 16384;
/** What we accept: TLS 1.3 lets a protected record carry 2^14 + 256 bytes (AEAD expansion). */
export const MAX_INCOMING_RECORD_PAYLOAD = 16384 + 256;

/** The one ChangeCipherSpec record of a TLS 1.3 middlebox-compatible handshake (value 01, version 03 03). */
export const CHANGE_CIPHER_SPEC_RECORD = Buffer.from('140303000101', 'hex');

/** Fatal alerts, record version 03 03. */
export const ALERT_DECODE_ERROR = Buffer.from('15030300020232', 'hex');
export const ALERT_UNRECOGNIZED_NAME = Buffer.from('15030300020270', 'hex');

const STATE_HEADER = 0;
const STATE_APP_DATA = 1;
const STATE_CCS = 2;

export class TlsRecordDecoder {
  private state = STATE_HEADER;
  private readonly header = Buffer.alloc(RECORD_HEADER_LENGTH);
  private headerFilled = 0;
  /** Payload bytes of the current record still to come. */
  private remaining = 0;

  /**
   * Feed one chunk; `onAppData` gets the application-data payload it carries, in stream order, at most once
   * per chunk. To hand over one contiguous view without allocating, payload that follows a record header
   * inside the chunk is moved down over that header: `chunk` is rewritten in place and must not be used
   * by the caller afterwards. Throws ProtocolError (MTP_ERR_TLS_BAD_RECORD) on anything that is not an
   * application-data or CCS record (payload decoded before the bad record in the same chunk is dropped).
   */
  decode(chunk: Buffer, onAppData: (payload: Buffer) => void): void {
    let pos = 0;
    const end = chunk.length;
    // Payload collected so far in this chunk lives at [outStart, outEnd).
    let outStart = -1;
    let outEnd = 0;
    while (pos < end) {
      if (this.state === STATE_APP_DATA) {
        const take = Math.min(this.remaining, end - pos);
        if (outStart < 0) {
          outStart = pos;
          outEnd = pos + take;
        } else {
          if (outEnd !== pos) chunk.copy(chunk, outEnd, pos, pos + take);
          outEnd += take;
        }
        pos += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = STATE_HEADER;
        continue;
      }
      if (this.state === STATE_CCS) {
        // Only one CCS value exists (0x01); the length was checked to be 1.
        if (chunk[pos] !== 0x01) throw new ProtocolError('MTP_ERR_TLS_BAD_RECORD', 'bad ChangeCipherSpec');
        pos++;
        this.state = STATE_HEADER;
        continue;
      }
      // Fast path: a whole header inside this chunk.
      let type: number;
      let versionMajor: number;
      let versionMinor: number;
      let length: number;
      if (this.headerFilled === 0 && end - pos >= RECORD_HEADER_LENGTH) {
        type = chunk[pos];
        versionMajor = chunk[pos + 1];
        versionMinor = chunk[pos + 2];
        length = (chunk[pos + 3] << 8) | chunk[pos + 4];
        pos += RECORD_HEADER_LENGTH;
      } else {
        const take = Math.min(RECORD_HEADER_LENGTH - this.headerFilled, end - pos);
        chunk.copy(this.header, this.headerFilled, pos, pos + take);
        this.headerFilled += take;
        pos += take;
        if (this.headerFilled < RECORD_HEADER_LENGTH) break;
        this.headerFilled = 0;
        type = this.header[0];
        versionMajor = this.header[1];
        versionMinor = this.header[2];
        length = (this.header[3] << 8) | this.header[4];
      }
      this.startRecord(type, versionMajor, versionMinor, length);
    }
    if (outStart >= 0 && outEnd > outStart) {
      onAppData(outStart === 0 && outEnd === end ? chunk : chunk.subarray(outStart, outEnd));
    }
  }

  /** True when no record is half-read (a clean point to end the stream). */
  get atRecordBoundary(): boolean {
    return this.state === STATE_HEADER && this.headerFilled === 0;
  }

  private startRecord(type: number, versionMajor: number, versionMinor: number, length: number): void {
    if (type === CONTENT_APPLICATION_DATA) {
      if (versionMajor !== 3 || versionMinor !== 3) {
        throw new ProtocolError('MTP_ERR_TLS_BAD_RECORD', 'unexpected record version');
      }
      if (length > MAX_INCOMING_RECORD_PAYLOAD)
        throw new ProtocolError('MTP_ERR_TLS_BAD_RECORD', 'record too long');
      this.remaining = length;
      this.state = length === 0 ? STATE_HEADER : STATE_APP_DATA;
      return;
    }
    if (type === CONTENT_CHANGE_CIPHER_SPEC) {
      if (versionMajor !== 3 || versionMinor < 1 || versionMinor > 3 || length !== 1) {
        throw new ProtocolError('MTP_ERR_TLS_BAD_RECORD', 'bad ChangeCipherSpec record');
      }
      this.state = STATE_CCS;
      return;
    }
    if (type === CONTENT_ALERT) throw new ProtocolError('MTP_ERR_TLS_BAD_RECORD', 'alert from peer');
    throw new ProtocolError('MTP_ERR_TLS_BAD_RECORD', 'unexpected record type');
  }
}

/** Number of bytes `encodeAppData(payload)` produces for a payload of `length` bytes. */
export function appDataEncodedLength(length: number): number {
  return length + Math.ceil(length / MAX_RECORD_PAYLOAD) * RECORD_HEADER_LENGTH;
}

/** Header of one application-data record carrying `length` (at most MAX_RECORD_PAYLOAD) bytes. */
export function appDataHeader(length: number): Buffer {
  const h = Buffer.allocUnsafe(RECORD_HEADER_LENGTH);
  h[0] = CONTENT_APPLICATION_DATA;
  h[1] = 3;
  h[2] = 3;
  h[3] = length >>> 8;
  h[4] = length & 0xff;
  return h;
}

/**
 * Wrap payload into application-data records of at most 16 KiB each: one allocation and one copy of the
 * payload, whatever its size. An empty payload gives an empty buffer (no empty records on the wire).
 */
export function encodeAppData(payload: Buffer): Buffer {
  const length = payload.length;
  const out = Buffer.allocUnsafe(appDataEncodedLength(length));
  let src = 0;
  let dst = 0;
  while (src < length) {
    const n = Math.min(MAX_RECORD_PAYLOAD, length - src);
    out[dst] = CONTENT_APPLICATION_DATA;
    out[dst + 1] = 3;
    out[dst + 2] = 3;
    out[dst + 3] = n >>> 8;
    out[dst + 4] = n & 0xff;
    payload.copy(out, dst + RECORD_HEADER_LENGTH, src, src + n);
    src += n;
    dst += n + RECORD_HEADER_LENGTH;
  }
  return out;
}
