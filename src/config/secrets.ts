/**
 * Secrets as operators and clients see them. A listener stores one 16-byte secret; what goes into a link says
 * which client protocol to use: plain 32 hex (abridged/intermediate), `dd` + hex (padded intermediate), or
 * `ee` + hex + hex(domain) (fake-TLS with that cover domain). The `ee` form also circulates as base64url.
 */
import { randomBytes } from 'node:crypto';

const SECRET_BYTES = 16;

export type SecretKind = 'plain' | 'dd' | 'ee';

export interface ClientSecret {
  kind: SecretKind;
  secret: Buffer;
  /** Cover domain of an `ee` secret, else null. */
  domain: string | null;
}

const HEX_RE = /^[0-9a-fA-F]*$/;
const BASE64_RE = /^[A-Za-z0-9+/_-]+={0,2}$/;
/** Domain names as they may appear in an SNI: letters, digits, hyphens, dots (no scheme, port or path). */
const DOMAIN_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function isHex(text: string, length?: number): boolean {
  return HEX_RE.test(text) && text.length % 2 === 0 && (length === undefined || text.length === length);
}

export function isDomainName(text: string): boolean {
  return DOMAIN_RE.test(text);
}

/** 32 hex characters (either case) -> 16 bytes, else null. */
export function parseHexSecret(text: string): Buffer | null {
  return isHex(text, SECRET_BYTES * 2) ? Buffer.from(text, 'hex') : null;
}

export function generateSecret(): Buffer {
  return randomBytes(SECRET_BYTES);
}

export function domainHex(domain: string): string {
  return Buffer.from(domain, 'latin1').toString('hex');
}

/** The secret string a link carries for a protocol, in the lowercase hex form clients accept everywhere. */
export function formatSecret(kind: SecretKind, secret: Buffer, domain?: string | null): string {
  const hex = secret.toString('hex');
  switch (kind) {
    case 'plain':
      return hex;
    case 'dd':
      return 'dd' + hex;
    case 'ee':
      if (!domain) throw new Error('an ee secret needs a domain');
      return 'ee' + hex + domainHex(domain);
  }
}

/** The base64url form of an `ee` secret (bytes 0xee ‖ secret ‖ domain), without padding. */
export function formatSecretBase64url(secret: Buffer, domain: string): string {
  return Buffer.concat([Buffer.from([0xee]), secret, Buffer.from(domain, 'latin1')]).toString('base64url');
}

function fromBytes(bytes: Buffer): ClientSecret | null {
  if (bytes.length === SECRET_BYTES) return { kind: 'plain', secret: Buffer.from(bytes), domain: null };
  if (bytes.length === SECRET_BYTES + 1 && bytes[0] === 0xdd) {
    return { kind: 'dd', secret: Buffer.from(bytes.subarray(1)), domain: null };
  }
  if (bytes.length > SECRET_BYTES + 1 && bytes[0] === 0xee) {
    const domain = bytes.subarray(SECRET_BYTES + 1).toString('latin1');
    if (!isDomainName(domain)) return null;
    return { kind: 'ee', secret: Buffer.from(bytes.subarray(1, SECRET_BYTES + 1)), domain };
  }
  return null;
}

/**
 * Any secret a link may carry: plain/dd/ee, hex (either case) or base64/base64url (padding optional).
 * Hex wins when a string is valid both ways. Returns null for anything else.
 */
export function parseClientSecret(text: string): ClientSecret | null {
  const trimmed = text.trim();
  if (isHex(trimmed)) {
    const parsed = fromBytes(Buffer.from(trimmed, 'hex'));
    if (parsed) return parsed;
  }
  if (BASE64_RE.test(trimmed)) {
    const normalised = trimmed.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
    return fromBytes(Buffer.from(normalised, 'base64'));
  }
  return null;
}
