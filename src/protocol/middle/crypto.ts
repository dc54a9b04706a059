/**
 * Encryption of the middle-proxy RPC link: key derivation from the nonce exchange ("middle key") and the
 * AES-256-CBC streams with continuing chaining state (no IV reset per message, no padding: the full framing
 * keeps everything 16-byte aligned).
 *
 * Message hashed for one direction (IPv4 link):
 *   srv_nonce ‖ clt_nonce ‖ clt_ts u32 ‖ srv_ip u32 ‖ clt_port u16 ‖ purpose ‖ clt_ip u32 ‖ srv_port u16 ‖
 *   secret ‖ srv_nonce ‖ clt_nonce
 * IPv4 addresses are written as little-endian uint32 of the dotted value (so the octets appear reversed).
 * IPv6 links put zero IPv4 fields and insert clt_ipv6 ‖ srv_ipv6 before the last clt_nonce.
 *   key = MD5(M[1..])[0,12) ‖ SHA1(M),  iv = MD5(M[2..])
 * The proxy (client role) encrypts with purpose "CLIENT" and decrypts with "SERVER"; Telegram the opposite.
 */
import {
  type Cipheriv,
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type Decipheriv,
  hash,
} from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import { unmapIpv4 } from '../../runtime/sockets.ts';
import { ProtocolError } from '../errors.ts';

export type KeyPurpose = 'CLIENT' | 'SERVER';

export interface MiddleKeyInput {
  serverNonce: Buffer;
  clientNonce: Buffer;
  /** Unix seconds the client put into its RPC_NONCE. */
  clientTimestamp: number;
  serverIp: string;
  serverPort: number;
  /** The client's address as Telegram sees it (external / NAT-translated). */
  clientIp: string;
  clientPort: number;
  /** The whole proxy secret (normally 128 bytes). */
  secret: Buffer;
}

export interface CbcKey {
  key: Buffer;
  iv: Buffer;
}

/** IPv4 dotted string -> uint32 (big-endian value of the octets). */
export function ipv4ToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || !isIPv4(ip))
    throw new ProtocolError('MTP_ERR_RPC_HANDSHAKE', 'not an IPv4 address');
  return ((+parts[0] << 24) | (+parts[1] << 16) | (+parts[2] << 8) | +parts[3]) >>> 0;
}

/** 16 bytes of an IPv6 address in network order (accepts v4-mapped forms). */
export function ipv6Bytes(ip: string): Buffer {
  if (!isIPv6(ip)) throw new ProtocolError('MTP_ERR_RPC_HANDSHAKE', 'not an IPv6 address');
  return Buffer.from(ipaddr.IPv6.parse(ip).toByteArray());
}

export function deriveMiddleKey(input: MiddleKeyInput, purpose: KeyPurpose): CbcKey {
  const serverIp = unmapIpv4(input.serverIp);
  const clientIp = unmapIpv4(input.clientIp);
  const v6 = !isIPv4(serverIp);
  if (v6 !== !isIPv4(clientIp)) {
    throw new ProtocolError('MTP_ERR_RPC_HANDSHAKE', 'both ends of a link must use the same address family');
  }
  const secret = input.secret;
  const m = Buffer.alloc(16 + 16 + 4 + 4 + 2 + 6 + 4 + 2 + secret.length + 16 + (v6 ? 32 : 0) + 16);
  let off = 0;
  off += input.serverNonce.copy(m, off, 0, 16);
  off += input.clientNonce.copy(m, off, 0, 16);
  off = m.writeUInt32LE(input.clientTimestamp >>> 0, off);
  off = m.writeUInt32LE(v6 ? 0 : ipv4ToInt(serverIp), off);
  off = m.writeUInt16LE(input.clientPort, off);
  off += m.write(purpose, off, 'latin1');
  off = m.writeUInt32LE(v6 ? 0 : ipv4ToInt(clientIp), off);
  off = m.writeUInt16LE(input.serverPort, off);
  off += secret.copy(m, off);
  off += input.serverNonce.copy(m, off, 0, 16);
  if (v6) {
    off += ipv6Bytes(clientIp).copy(m, off);
    off += ipv6Bytes(serverIp).copy(m, off);
  }
  input.clientNonce.copy(m, off, 0, 16);
  const md5a = hash('md5', m.subarray(1), 'buffer') as Buffer;
  const sha1 = hash('sha1', m, 'buffer') as Buffer;
  const iv = hash('md5', m.subarray(2), 'buffer') as Buffer;
  return { key: Buffer.concat([md5a.subarray(0, 12), sha1]), iv };
}

/**
 * AES-256-CBC with the chaining state kept across calls. Input for `update` may have any length: whole blocks
 * are processed at once and the remainder waits inside the cipher object for the next call.
 */
export interface CbcStream {
  update(data: Buffer): Buffer;
}

export function createCbcEncryptor({ key, iv }: CbcKey): CbcStream {
  const c: Cipheriv = createCipheriv('aes-256-cbc', createSecretKey(key), iv);
  c.setAutoPadding(false);
  return c;
}

export function createCbcDecryptor({ key, iv }: CbcKey): CbcStream {
  const d: Decipheriv = createDecipheriv('aes-256-cbc', createSecretKey(key), iv);
  d.setAutoPadding(false);
  return d;
}
