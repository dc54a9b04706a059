/**
 * Fake-TLS ClientHello: reassembly, strict parsing and digest check (reference §3.2–§3.5, §3.8). Pure.
 *
 * Accepted: what Telegram clients send in 2026 (tdlib's Chrome-like ~1.7 KB hello with an X25519MLKEM768
 * key share, GREASE, ECH GREASE, ALPS, extensions in any order) and the older 517-byte hello. The handshake
 * message may arrive split over several handshake records (middleboxes and anti-DPI tools re-fragment it);
 * the client computed its digest over one record, so the digest is checked over the reassembled message
 * under a single record header, with the first record's version bytes.
 */
import { timingSafeEqual } from 'node:crypto';
import { ProtocolError } from '../errors.ts';
import { HMAC_PAD_LENGTH, hmacSha256Padded } from './hmac.ts';
import { CONTENT_HANDSHAKE, RECORD_HEADER_LENGTH } from './records.ts';

/** Offset of the 32-byte random inside the single-record form of the hello. */
export const RANDOM_OFFSET = 11;
export const RANDOM_LENGTH = 32;
/** A ClientHello longer than one maximal record is not something any client sends. */
export const MAX_HELLO_MESSAGE = 16384;
/**
 * Handshake records per hello we reassemble: any legal record length (down to one byte) is fine for a
 * modern hello; the session bounds the bytes it buffers for a hello anyway.
 */
const MAX_HELLO_RECORDS = 4096;
/** Smallest hello worth parsing: record header + handshake header + version + random + 4 length fields. */
const MIN_HELLO_MESSAGE = 4 + 2 + 32 + 1 + 2 + 1 + 2;

export const EXT_SERVER_NAME = 0x0000;
export const EXT_SUPPORTED_GROUPS = 0x000a;
export const EXT_SIGNATURE_ALGORITHMS = 0x000d;
export const EXT_ALPN = 0x0010;
export const EXT_SUPPORTED_VERSIONS = 0x002b;
export const EXT_KEY_SHARE = 0x0033;

export const GROUP_X25519 = 0x001d;
export const GROUP_X25519_MLKEM768 = 0x11ec;

export type HelloAssembly =
  | { kind: 'need-more' }
  /** `record`: the hello as one record (a view of the input when it came as one record). */
  | { kind: 'complete'; record: Buffer; consumed: number };

function bad(message: string): ProtocolError {
  return new ProtocolError('MTP_ERR_TLS_BAD_HELLO', message);
}

/** GREASE values (RFC 8701): 0x?a?a with both bytes equal. */
export function isGrease(value: number): boolean {
  return (value & 0x0f0f) === 0x0a0a && value >> 8 === (value & 0xff);
}

/**
 * Collect the ClientHello from the start of `buffered`. Throws ProtocolError when the bytes cannot be a
 * ClientHello (not a handshake record, wrong version, oversized, a non-handshake record in the middle).
 */
export function assembleClientHello(buffered: Buffer): HelloAssembly {
  if (buffered.length === 0) return { kind: 'need-more' };
  if (buffered[0] !== CONTENT_HANDSHAKE)
    throw new ProtocolError('MTP_ERR_TLS_EXPECTED', 'not a TLS handshake');
  if (buffered.length < RECORD_HEADER_LENGTH) {
    // Reject early what cannot become a hello, so probes don't sit in the buffer.
    if (buffered.length >= 2 && buffered[1] !== 3) throw bad('record version');
    return { kind: 'need-more' };
  }
  const firstLength = buffered.readUInt16BE(3);
  checkRecordHeader(buffered, 0, firstLength);
  // Fast path: the whole hello in the first record.
  if (firstLength >= 4 && buffered.length >= RECORD_HEADER_LENGTH + 4) {
    const messageLength = 4 + buffered.readUIntBE(RECORD_HEADER_LENGTH + 1, 3);
    checkHandshakeHeader(buffered[RECORD_HEADER_LENGTH], messageLength);
    if (messageLength === firstLength) {
      const total = RECORD_HEADER_LENGTH + firstLength;
      if (buffered.length < total) return { kind: 'need-more' };
      return { kind: 'complete', record: buffered.subarray(0, total), consumed: total };
    }
    if (firstLength > messageLength) throw bad('trailing bytes after ClientHello');
  }
  // The message spans several records: walk them until it is complete.
  const pieces: Buffer[] = [];
  let collected = 0;
  let messageLength = -1;
  let pos = 0;
  for (let records = 0; ; records++) {
    if (records >= MAX_HELLO_RECORDS) throw bad('too many records');
    if (buffered.length < pos + RECORD_HEADER_LENGTH) return { kind: 'need-more' };
    const length = buffered.readUInt16BE(pos + 3);
    checkRecordHeader(buffered, pos, length);
    if (buffered.length < pos + RECORD_HEADER_LENGTH + length) return { kind: 'need-more' };
    pieces.push(buffered.subarray(pos + RECORD_HEADER_LENGTH, pos + RECORD_HEADER_LENGTH + length));
    collected += length;
    pos += RECORD_HEADER_LENGTH + length;
    if (messageLength < 0 && collected >= 4) {
      const head = Buffer.concat(pieces, 4);
      messageLength = 4 + head.readUIntBE(1, 3);
      checkHandshakeHeader(head[0], messageLength);
    }
    if (messageLength >= 0) {
      if (collected === messageLength) break;
      if (collected > messageLength) throw bad('trailing bytes after ClientHello');
    }
  }
  const record = Buffer.allocUnsafe(RECORD_HEADER_LENGTH + messageLength);
  record[0] = CONTENT_HANDSHAKE;
  record[1] = buffered[1];
  record[2] = buffered[2];
  record.writeUInt16BE(messageLength, 3);
  let off = RECORD_HEADER_LENGTH;
  for (const piece of pieces) off += piece.copy(record, off);
  return { kind: 'complete', record, consumed: pos };
}

function checkRecordHeader(buf: Buffer, pos: number, length: number): void {
  if (buf[pos] !== CONTENT_HANDSHAKE) throw bad('non-handshake record inside ClientHello');
  // Record versions 03 01..03 03 are what clients use for the first flight.
  if (buf[pos + 1] !== 3 || buf[pos + 2] < 1 || buf[pos + 2] > 3) throw bad('record version');
  if (length === 0 || length > MAX_HELLO_MESSAGE) throw bad('record length');
}

function checkHandshakeHeader(type: number, messageLength: number): void {
  if (type !== 0x01) throw bad('not a ClientHello');
  if (messageLength < MIN_HELLO_MESSAGE || messageLength > MAX_HELLO_MESSAGE) throw bad('ClientHello length');
}

export interface KeyShareEntry {
  group: number;
  /** View of the hello. */
  key: Buffer;
}

export interface ClientHello {
  /** View of the 32-byte random (the digest ⊕ timestamp). */
  random: Buffer;
  /** View of the legacy session id (0..32 bytes). */
  sessionId: Buffer;
  cipherSuites: number[];
  /** Host name from server_name, or null when the extension is absent. Lowercase is NOT applied. */
  sni: string | null;
  /** legacy_version of the hello body (0x0303 for every client that matters). */
  legacyVersion: number;
  /** First ALPN protocol name (a view), or null when absent or not decodable. */
  alpnFirst: Buffer | null;
  /** signature_algorithms in the order sent, or null when absent or not decodable. */
  signatureAlgorithms: number[] | null;
  /** key_share entries in order, or null when the extension is absent. */
  keyShares: KeyShareEntry[] | null;
  /** supported_versions list, or null when absent. */
  supportedVersions: number[] | null;
  /** Extension types in the order sent. */
  extensionTypes: number[];
}

/** Valid DNS-ish host name bytes: letters, digits, '-', '_', '.'; 1..253 long. */
function isHostName(buf: Buffer, start: number, end: number): boolean {
  const n = end - start;
  if (n < 1 || n > 253) return false;
  for (let i = start; i < end; i++) {
    const c = buf[i];
    const ok =
      (c >= 0x61 && c <= 0x7a) ||
      (c >= 0x41 && c <= 0x5a) ||
      (c >= 0x30 && c <= 0x39) ||
      c === 0x2d ||
      c === 0x2e ||
      c === 0x5f;
    if (!ok) return false;
  }
  return true;
}

/**
 * Parse a single-record hello (as returned by assembleClientHello). The framing is strict: every length must
 * match exactly and the extensions must end at the end of the message. What is inside the extensions is not
 * judged: any type, any order, GREASE, repeats (the first server_name / key_share / supported_versions
 * counts), ECH, ALPS, pre_shared_key. Throws ProtocolError MTP_ERR_TLS_BAD_HELLO.
 */
export function parseClientHello(record: Buffer): ClientHello {
  const end = record.length;
  if (end < RECORD_HEADER_LENGTH + MIN_HELLO_MESSAGE) throw bad('too short');
  if (record[0] !== CONTENT_HANDSHAKE || record[5] !== 0x01) throw bad('not a ClientHello');
  if (record.readUInt16BE(3) !== end - RECORD_HEADER_LENGTH) throw bad('record length');
  if (record.readUIntBE(6, 3) !== end - RECORD_HEADER_LENGTH - 4) throw bad('handshake length');
  if (record[9] !== 3 || record[10] !== 3) throw bad('client version');
  let pos = RANDOM_OFFSET + RANDOM_LENGTH;
  const random = record.subarray(RANDOM_OFFSET, pos);

  const sessionIdLength = record[pos++];
  if (sessionIdLength > 32 || pos + sessionIdLength > end) throw bad('session id');
  const sessionId = record.subarray(pos, pos + sessionIdLength);
  pos += sessionIdLength;

  if (pos + 2 > end) throw bad('cipher suites');
  const suitesLength = record.readUInt16BE(pos);
  pos += 2;
  if (suitesLength < 2 || suitesLength % 2 !== 0 || pos + suitesLength > end) throw bad('cipher suites');
  const cipherSuites: number[] = [];
  for (let i = 0; i < suitesLength; i += 2) cipherSuites.push(record.readUInt16BE(pos + i));
  pos += suitesLength;

  if (pos + 1 > end) throw bad('compression');
  const compressionLength = record[pos++];
  if (compressionLength < 1 || pos + compressionLength > end) throw bad('compression');
  pos += compressionLength;

  if (pos + 2 > end) throw bad('extensions');
  const extensionsLength = record.readUInt16BE(pos);
  pos += 2;
  if (pos + extensionsLength !== end) throw bad('extensions length');

  let sni: string | null = null;
  let keyShares: KeyShareEntry[] | null = null;
  let supportedVersions: number[] | null = null;
  let alpnFirst: Buffer | null = null;
  let signatureAlgorithms: number[] | null = null;
  const extensionTypes: number[] = [];
  while (pos < end) {
    if (pos + 4 > end) throw bad('extension header');
    const type = record.readUInt16BE(pos);
    const length = record.readUInt16BE(pos + 2);
    pos += 4;
    if (pos + length > end) throw bad('extension length');
    const dataEnd = pos + length;
    const first = !extensionTypes.includes(type);
    extensionTypes.push(type);
    if (first) {
      if (type === EXT_SERVER_NAME) sni = parseServerName(record, pos, dataEnd);
      else if (type === EXT_KEY_SHARE) keyShares = parseKeyShare(record, pos, dataEnd);
      else if (type === EXT_SUPPORTED_VERSIONS)
        supportedVersions = parseSupportedVersions(record, pos, dataEnd);
      else if (type === EXT_ALPN) alpnFirst = parseAlpnFirst(record, pos, dataEnd);
      else if (type === EXT_SIGNATURE_ALGORITHMS)
        signatureAlgorithms = parseSignatureAlgorithms(record, pos, dataEnd);
    }
    pos = dataEnd;
  }
  return {
    random,
    sessionId,
    cipherSuites,
    sni,
    legacyVersion: record.readUInt16BE(9),
    alpnFirst,
    signatureAlgorithms,
    keyShares,
    supportedVersions,
    extensionTypes,
  };
}

/** First protocol of an ALPN list (only read for the fingerprint: a malformed list gives null). */
function parseAlpnFirst(buf: Buffer, pos: number, end: number): Buffer | null {
  if (end - pos < 3 || buf.readUInt16BE(pos) !== end - pos - 2) return null;
  const n = buf[pos + 2];
  if (n === 0 || pos + 3 + n > end) return null;
  return buf.subarray(pos + 3, pos + 3 + n);
}

/** signature_algorithms list (only read for the fingerprint: a malformed list gives null). */
function parseSignatureAlgorithms(buf: Buffer, pos: number, end: number): number[] | null {
  if (end - pos < 2) return null;
  const n = buf.readUInt16BE(pos);
  if (n % 2 !== 0 || pos + 2 + n !== end) return null;
  const out: number[] = [];
  for (let i = pos + 2; i < end; i += 2) out.push(buf.readUInt16BE(i));
  return out;
}

function parseServerName(buf: Buffer, pos: number, end: number): string {
  // Exactly one host_name entry: list_len u16, type u8 = 0, name_len u16, name.
  if (end - pos < 5 || buf.readUInt16BE(pos) !== end - pos - 2) throw bad('server_name');
  if (buf[pos + 2] !== 0) throw bad('server_name type');
  const nameLength = buf.readUInt16BE(pos + 3);
  if (pos + 5 + nameLength !== end) throw bad('server_name entries');
  if (!isHostName(buf, pos + 5, end)) throw bad('server_name host');
  return buf.toString('latin1', pos + 5, end);
}

function parseKeyShare(buf: Buffer, pos: number, end: number): KeyShareEntry[] {
  if (end - pos < 2 || buf.readUInt16BE(pos) !== end - pos - 2) throw bad('key_share');
  pos += 2;
  const entries: KeyShareEntry[] = [];
  while (pos < end) {
    if (pos + 4 > end) throw bad('key_share entry');
    const group = buf.readUInt16BE(pos);
    const keyLength = buf.readUInt16BE(pos + 2);
    pos += 4;
    if (keyLength === 0 || pos + keyLength > end) throw bad('key_share entry');
    entries.push({ group, key: buf.subarray(pos, pos + keyLength) });
    pos += keyLength;
  }
  return entries;
}

function parseSupportedVersions(buf: Buffer, pos: number, end: number): number[] {
  const n = end - pos;
  if (n < 3 || buf[pos] !== n - 1 || (n - 1) % 2 !== 0) throw bad('supported_versions');
  const versions: number[] = [];
  for (let i = pos + 1; i < end; i += 2) versions.push(buf.readUInt16BE(i));
  return versions;
}

/**
 * The hello with its random zeroed (the HMAC input, the same for every candidate secret), after
 * HMAC_PAD_LENGTH bytes of room for the key pad: only for verifyHelloDigest.
 */
export type ZeroedHello = Buffer & { readonly zeroedHelloLayout: true };

export function zeroedHello(record: Buffer): ZeroedHello {
  const padded = Buffer.allocUnsafe(HMAC_PAD_LENGTH + record.length);
  record.copy(padded, HMAC_PAD_LENGTH);
  padded.fill(0, HMAC_PAD_LENGTH + RANDOM_OFFSET, HMAC_PAD_LENGTH + RANDOM_OFFSET + RANDOM_LENGTH);
  return padded as ZeroedHello;
}

const ZERO_PREFIX = Buffer.alloc(28);

/**
 * Check `random` against HMAC-SHA256(secret, zeroed hello): the first 28 bytes must match, the last 4 are
 * the client's Unix time XOR-ed in (uint32 LE). Returns that time, or null when the secret does not match.
 */
export function verifyHelloDigest(zeroed: ZeroedHello, random: Buffer, secret: Buffer): number | null {
  const digest = hmacSha256Padded(secret, zeroed);
  for (let i = 0; i < 32; i++) digest[i] ^= random[i];
  if (!timingSafeEqual(digest.subarray(0, 28), ZERO_PREFIX)) return null;
  return digest.readUInt32LE(28);
}

/** Groups the reference accepts for a classic (non-hybrid) key share reply, with the key length it needs. */
const CLASSIC_GROUPS = new Set([
  0x0017, 0x0018, 0x0019, 0x001d, 0x001e, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104,
]);

/**
 * The key share the fake ServerHello answers: the hybrid PQ group when `preferPq` and the client offered
 * it, else the first classic entry with a key under 128 bytes (reference §3.8). Null when none fits.
 */
export function selectKeyShare(entries: KeyShareEntry[], preferPq: boolean): KeyShareEntry | null {
  if (preferPq) {
    for (const e of entries) if (e.group === GROUP_X25519_MLKEM768 && e.key.length === 1216) return e;
  }
  for (const e of entries) if (CLASSIC_GROUPS.has(e.group) && e.key.length < 128) return e;
  return null;
}
