/**
 * The fake server flight (reference §3.9): ServerHello, ChangeCipherSpec and one application-data record
 * standing in for the encrypted certificate flight, with the server digest at offset 11:
 *   HMAC-SHA256(secret, client random ‖ the three records with the digest zeroed).
 * Telegram clients read exactly these three records before switching to the record stream, so the
 * "certificate" must be a single record whatever size it imitates.
 */
import { createHmac } from 'node:crypto';
import { fillRandom } from '../random-pool.ts';
import { GROUP_X25519_MLKEM768 } from './client-hello.ts';
import { HMAC_PAD_LENGTH, hmacSha256Padded } from './hmac.ts';
import { CHANGE_CIPHER_SPEC_RECORD, MAX_RECORD_PAYLOAD } from './records.ts';

export const CIPHER_TLS_AES_128_GCM_SHA256 = 0x1301;
export const CIPHER_ECDHE_RSA_AES_128_GCM_SHA256 = 0xc02f;
const TLS13_SUITES = [0x1301, 0x1302, 0x1303];

export interface ServerHelloParams {
  secret: Buffer;
  clientRandom: Buffer;
  sessionId: Buffer;
  cipherSuite: number;
  keyShareGroup: number;
  /** The server's key share bytes, or their length to have them random (nobody derives a key from them). */
  keyShare: Buffer | number;
  /** Payload of the application-data record imitating the encrypted certificate flight, or its length to have it random. */
  appData: Buffer | number;
  /** supported_versions before key_share (OpenSSL's order); default key_share first, as the reference. */
  versionsFirst?: boolean;
}

const SUPPORTED_VERSIONS_TLS13 = Buffer.from([0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]);

const DIGEST_OFFSET = 11;

/** The whole flight in one buffer (one write): ServerHello, ChangeCipherSpec, the fake certificate record. */
export function buildServerHello(p: ServerHelloParams): Buffer {
  const keyShareLength = typeof p.keyShare === 'number' ? p.keyShare : p.keyShare.length;
  const appDataLength = typeof p.appData === 'number' ? p.appData : p.appData.length;
  const extensionsLength = 4 + 4 + keyShareLength + 6;
  const bodyLength = 2 + 32 + 1 + p.sessionId.length + 2 + 1 + 2 + extensionsLength;
  const helloRecordLength = 5 + 4 + bodyLength;
  const total = helloRecordLength + 6 + 5 + appDataLength;
  // The digest's input in place: key pad, client random, then the flight itself (what is returned).
  // Every byte is written below; only the digest starts as zeros.
  const prefix = HMAC_PAD_LENGTH + p.clientRandom.length;
  const padded = Buffer.allocUnsafe(prefix + total);
  p.clientRandom.copy(padded, HMAC_PAD_LENGTH);
  const out = padded.subarray(prefix);
  let o = 0;
  out[o++] = 0x16;
  out[o++] = 3;
  out[o++] = 3;
  o = out.writeUInt16BE(4 + bodyLength, o);
  out[o++] = 0x02;
  o = out.writeUIntBE(bodyLength, o, 3);
  out[o++] = 3;
  out[o++] = 3;
  out.fill(0, o, o + 32); // digest, zero for now
  o += 32;
  out[o++] = p.sessionId.length;
  o += p.sessionId.copy(out, o);
  o = out.writeUInt16BE(p.cipherSuite, o);
  out[o++] = 0; // compression
  o = out.writeUInt16BE(extensionsLength, o);
  if (p.versionsFirst) o += SUPPORTED_VERSIONS_TLS13.copy(out, o);
  o = out.writeUInt16BE(0x0033, o);
  o = out.writeUInt16BE(4 + keyShareLength, o);
  o = out.writeUInt16BE(p.keyShareGroup, o);
  o = out.writeUInt16BE(keyShareLength, o);
  if (typeof p.keyShare === 'number') fillRandom(out, o, o + keyShareLength);
  else p.keyShare.copy(out, o);
  o += keyShareLength;
  if (!p.versionsFirst) o += SUPPORTED_VERSIONS_TLS13.copy(out, o);
  o += CHANGE_CIPHER_SPEC_RECORD.copy(out, o);
  out[o++] = 0x17;
  out[o++] = 3;
  out[o++] = 3;
  o = out.writeUInt16BE(appDataLength, o);
  if (typeof p.appData === 'number') fillRandom(out, o, o + appDataLength);
  else p.appData.copy(out, o);
  hmacSha256Padded(p.secret, padded).copy(out, DIGEST_OFFSET);
  return out;
}

/**
 * The cover site's own choice when the client offered it; else the first TLS 1.3 suite in the client's
 * order (a server honouring client preference); else the reference's.
 */
export function chooseCipherSuite(
  clientSuites: readonly number[],
  coverChoice: number | null = null,
): number {
  if (coverChoice !== null && clientSuites.includes(coverChoice)) return coverChoice;
  for (const s of clientSuites) if (TLS13_SUITES.includes(s)) return s;
  return CIPHER_ECDHE_RSA_AES_128_GCM_SHA256;
}

/** Length of a server key share for a group: the hybrid one carries an ML-KEM ciphertext plus X25519. */
export function serverKeyShareLength(group: number, clientKeyLength: number): number {
  return group === GROUP_X25519_MLKEM768 ? 1088 + 32 : clientKeyLength;
}

/**
 * Largest record the apps take in the server's first flight: Telegram-iOS (MtProtoKit, MTTcpConnection)
 * refuses a ServerHello or first application-data record longer than 10 KiB; the other apps allow more.
 */
export const MAX_FLIGHT_RECORD = 10 * 1024;

/** Length of the fake certificate record's payload for a wanted size: clamped to one record every app reads. */
export function fakeCertificateLength(size: number): number {
  return Math.max(1, Math.min(MAX_FLIGHT_RECORD, MAX_RECORD_PAYLOAD, Math.floor(size)));
}

/** Random payload for the fake certificate record, clamped to one record. */
export function fakeCertificatePayload(size: number): Buffer {
  const out = Buffer.allocUnsafe(fakeCertificateLength(size));
  fillRandom(out);
  return out;
}

/** Check a server flight as a client does (tdlib): returns true when the digest is ours for this secret. */
export function verifyServerHelloDigest(flight: Buffer, clientRandom: Buffer, secret: Buffer): boolean {
  if (flight.length < DIGEST_OFFSET + 32) return false;
  const got = Buffer.from(flight.subarray(DIGEST_OFFSET, DIGEST_OFFSET + 32));
  const zeroed = Buffer.from(flight);
  zeroed.fill(0, DIGEST_OFFSET, DIGEST_OFFSET + 32);
  const want = createHmac('sha256', secret).update(clientRandom).update(zeroed).digest();
  return want.equals(got);
}
