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
  // stream), and every session creates four streams.
  const k = createSecretKey(key);
  return decrypt ? createDecipheriv('aes-256-ctr', k, iv) : createCipheriv('aes-256-ctr', k, iv);
}

function sha256(a: Buffer, b: Buffer): Buffer {
  return hash('sha256', Buffer.concat([a, b]), 'buffer') as Buffer;
}

/** Key and iv for both directions, as seen by the side that *receives* `header` (the proxy). */
export function deriveKeys(
  header: Buffer,
  secret: Buffer | null,
): { readKey: Buffer; readIv: Buffer; writeKey: Buffer; writeIv: Buffer } {
  const readSeed = header.subarray(8, 40);
  const readIv = Buffer.from(header.subarray(40, 56));
  const rev = Buffer.from(header.subarray(8, 56)).reverse();
  const writeSeed = rev.subarray(0, 32);
  const writeIv = Buffer.from(rev.subarray(32, 48));
  return {
    readKey: secret ? sha256(readSeed, secret) : Buffer.from(readSeed),
    readIv,
    writeKey: secret ? sha256(writeSeed, secret) : Buffer.from(writeSeed),
    writeIv,
  };
}

/**
 * Parse the 64-byte header a client sent, with the listener's secret. Throws ProtocolError
 * MTP_ERR_UNKNOWN_TRANSPORT when the decrypted tag is none of the three transports (wrong secret or garbage).
 */
export function parseClientHeader(header: Buffer, secret: Buffer): ClientHandshake {
  if (header.length < HEADER_LENGTH)
    throw new ProtocolError('MTP_ERR_UNKNOWN_TRANSPORT', 'short obfuscated2 header');
  const h = header.subarray(0, HEADER_LENGTH);
  const k = deriveKeys(h, secret);
  const decrypt = ctr(k.readKey, k.readIv, true);
  const plain = decrypt.update(h);
  const transport = transportFromTag(plain.readUInt32LE(56));
  if (transport === null) throw new ProtocolError('MTP_ERR_UNKNOWN_TRANSPORT', 'unknown transport tag');
  return {
    transport,
    dcId: plain.readInt16LE(60),
    decrypt,
    encrypt: ctr(k.writeKey, k.writeIv, false),
    replayKey: Buffer.from(h.subarray(8, 56)),
  };
}

/** First-word patterns a header sent on the wire must never start with (they look like other protocols). */
function isForbiddenHeader(h: Buffer): boolean {
  if (h[0] === 0xef) return true;
  const first = h.readUInt32LE(0);
  switch (first) {
    case 0x44414548: // HEAD
    case 0x54534f50: // POST
    case 0x20544547: // GET␠
    case 0x4954504f: // OPTI
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
  const k = deriveKeys(h, secret);
  const encrypt = ctr(k.readKey, k.readIv, false);
  const enc = encrypt.update(h);
  const header = Buffer.concat([h.subarray(0, 56), enc.subarray(56, 64)]);
  return { header, encrypt, decrypt: ctr(k.writeKey, k.writeIv, true) };
}
