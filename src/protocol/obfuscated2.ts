/**
 * Obfuscated2: the 64-byte header that opens every MTProto proxy connection, and the AES-256-CTR streams
 * derived from it. Pure: bytes in, keys and parsed fields out; no sockets.
 *
 * Client leg (with the listener's 16-byte secret S), H = the 64 bytes as received:
 *   client->proxy key = SHA256(H[8,40) ‖ S), iv = H[40,56)
 *   proxy->client key = SHA256(R[0,32) ‖ S), iv = R[32,48) where R = reverse(H[8,56))
 * DC leg (direct mode) uses the same layout without the secret and without hashing.
 */
import {
  type Cipheriv,
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type Decipheriv,
  hash,
} from 'node:crypto';
import { ProtocolError } from './errors.ts';
import { fillRandom } from './random-pool.ts';

export type TransportTag = 'abridged' | 'intermediate' | 'padded';

/** Decrypted bytes [56,60) of the header, as a little-endian uint32. */
export const TRANSPORT_TAGS: Readonly<Record<TransportTag, number>> = {
  abridged: 0xefefefef,
  intermediate: 0xeeeeeeee,
  padded: 0xdddddddd,
};

export const HEADER_LENGTH = 64;

/** Both directions are AES-256-CTR; a Cipheriv and a Decipheriv behave identically, `update` is all we use. */
export type CtrStream = Cipheriv | Decipheriv;

export function transportFromTag(tag: number): TransportTag | null {
  switch (tag >>> 0) {
    case 0xefefefef:
      return 'abridged';
    case 0xeeeeeeee:
      return 'intermediate';
    case 0xdddddddd:
      return 'padded';
    default:
      return null;
  }
}

export interface ClientHandshake {
  transport: TransportTag;
  /** Signed DC id (negative = media DC). */
  dcId: number;
  /** client->proxy stream, already advanced past the 64 header bytes. */
  decrypt: CtrStream;
  /** proxy->client stream, unused (offset 0). */
  encrypt: CtrStream;
  /** Replay-cache key: a copy of H[8,56) (48 bytes). */
  replayKey: Buffer;
}

function ctr(key: Buffer, iv: Buffer, decrypt: boolean): CtrStream {
  // Through a KeyObject: Node converts a raw Buffer key several times slower (~16 µs against ~3 µs per
  // stream), and every session creates four streams. Both copy `key` and `iv`: views are fine.
  const k = createSecretKey(key);
  return decrypt ? createDecipheriv('aes-256-ctr', k, iv) : createCipheriv('aes-256-ctr', k, iv);
}

/** seed ‖ secret for the key hash; secrets are 16 bytes (other lengths take a fresh buffer). */
const keyHashInput = Buffer.allocUnsafeSlow(32 + 16);

function sha256(seed: Buffer, secret: Buffer): Buffer {
  if (secret.length !== 16) return hash('sha256', Buffer.concat([seed, secret]), 'buffer') as Buffer;
  seed.copy(keyHashInput, 0, 0, 32);
  secret.copy(keyHashInput, 32);
  return hash('sha256', keyHashInput, 'buffer') as Buffer;
}

/** The key for a 32-byte seed: hashed with the secret, or the seed itself on the DC leg (a view: ctr copies). */
function keyFor(seed: Buffer, secret: Buffer | null): Buffer {
  return secret ? sha256(seed, secret) : seed;
}

/** H[8,56) reversed: the other direction's seed [0,32) and iv [32,48). Used up before the next call. */
const reversedSeed = Buffer.allocUnsafeSlow(48);

function reverseSeed(header: Buffer): Buffer {
  for (let i = 0; i < 48; i++) reversedSeed[i] = header[55 - i];
  return reversedSeed;
}

/** Key and iv for both directions, as seen by the side that *receives* `header` (the proxy). */
export function deriveKeys(
  header: Buffer,
  secret: Buffer | null,
): { readKey: Buffer; readIv: Buffer; writeKey: Buffer; writeIv: Buffer } {
  const rev = Buffer.from(reverseSeed(header));
  return {
    readKey: Buffer.from(keyFor(header.subarray(8, 40), secret)),
    readIv: Buffer.from(header.subarray(40, 56)),
    writeKey: Buffer.from(keyFor(rev.subarray(0, 32), secret)),
    writeIv: rev.subarray(32, 48),
  };
}

/** The stream for what the sender of `header` sends (read direction, as deriveKeys names it). */
function readStream(header: Buffer, secret: Buffer | null, decrypt: boolean): CtrStream {
  return ctr(keyFor(header.subarray(8, 40), secret), header.subarray(40, 56), decrypt);
}

/** The stream for what the receiver of `header` sends back (write direction). */
function writeStream(header: Buffer, secret: Buffer | null, decrypt: boolean): CtrStream {
  const rev = reverseSeed(header);
  return ctr(keyFor(rev.subarray(0, 32), secret), rev.subarray(32, 48), decrypt);
}

/**
 * Parse the 64-byte header a client sent, with the listener's secret. Throws ProtocolError
 * MTP_ERR_UNKNOWN_TRANSPORT when the decrypted tag is none of the three transports (wrong secret or garbage).
 */
export function parseClientHeader(header: Buffer, secret: Buffer): ClientHandshake {
  if (header.length < HEADER_LENGTH)
    throw new ProtocolError('MTP_ERR_UNKNOWN_TRANSPORT', 'short obfuscated2 header');
  const hs = tryClientHeader(header, secret);
  if (hs === null) throw new ProtocolError('MTP_ERR_UNKNOWN_TRANSPORT', 'unknown transport tag');
  return hs;
}

/**
 * parseClientHeader as a value: null when `secret` does not open the header (or it is short). Trying many
 * secrets costs no exception per wrong one.
 */
export function tryClientHeader(header: Buffer, secret: Buffer): ClientHandshake | null {
  if (header.length < HEADER_LENGTH) return null;
  const h = header.subarray(0, HEADER_LENGTH);
  const decrypt = readStream(h, secret, true);
  const plain = decrypt.update(h);
  const transport = transportFromTag(plain.readUInt32LE(56));
  if (transport === null) return null;
  return {
    transport,
    dcId: plain.readInt16LE(60),
    decrypt,
    encrypt: writeStream(h, secret, false),
    replayKey: Buffer.from(h.subarray(8, 56)),
  };
}

/** The first four bytes (little-endian) of an HTTP request: "HEAD", "POST", "GET ", "OPTI"(ONS). */
function isHttpStartWord(word: number): boolean {
  return word === 0x44414548 || word === 0x54534f50 || word === 0x20544547 || word === 0x4954504f;
}

/**
 * The input begins like an HTTP request. Clients never start an obfuscated2 header so (the protocol forbids
 * it, see isForbiddenHeader), so such input is no client of ours.
 */
export function startsLikeHttp(b: Buffer): boolean {
  return b.length >= 4 && isHttpStartWord(b.readUInt32LE(0));
}

/** First-word patterns a header sent on the wire must never start with (they look like other protocols). */
function isForbiddenHeader(h: Buffer): boolean {
  if (h[0] === 0xef) return true;
  const first = h.readUInt32LE(0);
  if (isHttpStartWord(first)) return true;
  switch (first) {
    case 0xeeeeeeee:
    case 0xdddddddd:
    case 0x02010316: // 16 03 01 02: a TLS handshake record
      return true;
  }
  return h.readUInt32LE(4) === 0;
}

export interface InitiatorHandshake {
  /** The 64 bytes to send: plaintext [0,56) ‖ ciphertext [56,64). */
  header: Buffer;
  /** Stream for everything we send after the header (already advanced 64 bytes). */
  encrypt: CtrStream;
  /** Stream for what the peer sends (offset 0). */
  decrypt: CtrStream;
}

/**
 * Build the header for the side that opens a connection: a client towards a proxy (with the proxy secret),
 * or the proxy towards a Telegram DC (secret = null). `random` (64 bytes) makes it deterministic for tests;
 * without it, random bytes are drawn until none of the forbidden patterns match.
 */
export function createInitiatorHeader(
  transport: TransportTag,
  dcId: number,
  secret: Buffer | null,
  random?: Buffer,
): InitiatorHandshake {
  const h = Buffer.alloc(HEADER_LENGTH);
  if (random) {
    random.copy(h, 0, 0, HEADER_LENGTH);
  } else {
    do fillRandom(h);
    while (isForbiddenHeader(h));
  }
  h.writeUInt32LE(TRANSPORT_TAGS[transport], 56);
  h.writeInt16LE(dcId, 60);
  // The initiator encrypts with what the receiver calls its read key, so derive as the receiver and swap.
  const encrypt = readStream(h, secret, false);
  const decrypt = writeStream(h, secret, true);
  // Only the last 8 bytes go out encrypted; the stream still has to move past all 64.
  encrypt.update(h).copy(h, 56, 56, 64);
  return { header: h, encrypt, decrypt };
}
