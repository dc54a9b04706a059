/**
 * Policy keys: how a connection's facts (listener, peer address, TLS domain) become the string values that
 * counters and tables are keyed on. One canonical text form per value, so the table API and the hot path
 * always agree: addresses in their shortest standard spelling, subnets as "network/bits", domains lowercase.
 * IPv4-mapped IPv6 peers (dual-stack listeners) count as IPv4. The key grammar itself is config/policy-keys.ts.
 */
import ipaddr from 'ipaddr.js';
import {
  formatPolicyKey,
  IPV4_SUBNET_BITS,
  IPV6_SUBNET_BITS,
  isValidName,
  PolicyKeyError,
} from '../config/policy-keys.ts';
import type { PolicyKey } from '../config/types.ts';
import type { PolicySubject } from './types.ts';

/** A peer address split by family, parsed once per admission and shared by every key of every rule. */
export interface ParsedPeer {
  ipv4: number[] | null;
  ipv6: number[] | null;
}

export const NO_PEER: ParsedPeer = { ipv4: null, ipv6: null };

export function parsePeer(remoteAddress: string | null | undefined): ParsedPeer {
  if (!remoteAddress) return NO_PEER;
  let text = remoteAddress;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  if (!ipaddr.isValid(text)) return NO_PEER;
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.process(text);
  } catch {
    return NO_PEER;
  }
  const bytes = addr.toByteArray();
  return addr.kind() === 'ipv4' ? { ipv4: bytes, ipv6: null } : { ipv4: null, ipv6: bytes };
}

function maskedSubnet(bytes: number[], bits: number): string {
  const masked = bytes.slice();
  for (let i = 0; i < masked.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    masked[i] &= keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
  }
  return `${ipaddr.fromByteArray(masked).toString()}/${bits}`;
}

/** Whether the key's value comes from the peer address (so the address must be parsed to compute it). */
export function keyUsesPeer(key: PolicyKey): boolean {
  return key.kind !== 'listener' && key.kind !== 'tls_domain';
}

/** The value of one key for this connection, or null when the key does not apply to it. */
export function keyValue(key: PolicyKey, subject: PolicySubject, peer: ParsedPeer): string | null {
  switch (key.kind) {
    case 'listener':
      return subject.listener;
    case 'tls_domain':
      return subject.tlsDomain ? subject.tlsDomain.toLowerCase() : null;
    case 'client_ipv4':
      return peer.ipv4 ? peer.ipv4.join('.') : null;
    case 'client_ipv6':
      return peer.ipv6 ? ipaddr.fromByteArray(peer.ipv6).toString() : null;
    case 'client_ipv4_subnet':
      if (!peer.ipv4 || key.bits < IPV4_SUBNET_BITS.min || key.bits > IPV4_SUBNET_BITS.max) return null;
      return maskedSubnet(peer.ipv4, key.bits);
    case 'client_ipv6_subnet':
      if (!peer.ipv6 || key.bits < IPV6_SUBNET_BITS.min || key.bits > IPV6_SUBNET_BITS.max) return null;
      return maskedSubnet(peer.ipv6, key.bits);
  }
}

function parseAddressStrict(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  // ipaddr.js also accepts "10" or "0x7f.1"; operators mean dotted quads.
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (ipaddr.IPv6.isValid(text)) return ipaddr.process(text);
  return null;
}

const DOMAIN_RE =
  /^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/;

/**
 * Canonical table value for an operator's input. With the key the table is used with, the input is checked
 * against it (and a bare address is widened to the key's subnet); without one the value's own shape decides.
 * Throws PolicyKeyError with a one-line reason on input that cannot be a value of that key.
 */
export function canonicalTableValue(input: string, key: PolicyKey | null): string {
  const text = input.trim();
  if (text === '') throw new PolicyKeyError('expected a non-empty value');
  const kind = key?.kind ?? null;
  if (kind === 'listener') {
    if (!isValidName(text)) throw new PolicyKeyError(`expected a listener name, got "${text}"`);
    return text;
  }
  if (kind === 'tls_domain') {
    const domain = text.toLowerCase();
    if (!DOMAIN_RE.test(domain)) throw new PolicyKeyError(`expected a domain name, got "${text}"`);
    return domain;
  }

  const slash = text.indexOf('/');
  const addrText = slash >= 0 ? text.slice(0, slash) : text;
  const addr = parseAddressStrict(addrText);
  if (!addr) {
    if (kind !== null)
      throw new PolicyKeyError(`expected an IP address for ${formatPolicyKey(key!)}, got "${text}"`);
    // Untyped table: a domain or a listener name.
    if (DOMAIN_RE.test(text.toLowerCase())) return text.toLowerCase();
    if (isValidName(text)) return text;
    throw new PolicyKeyError(`expected an IP address, subnet, domain or listener name, got "${text}"`);
  }
  const isV4 = addr.kind() === 'ipv4';
  const maxBits = isV4 ? 32 : 128;
  let bits = maxBits;
  if (slash >= 0) {
    const bitsText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > maxBits) {
      throw new PolicyKeyError(`expected a prefix length 0..${maxBits} in "${text}"`);
    }
    bits = Number(bitsText);
  }
  const bytes = addr.toByteArray();
  switch (kind) {
    case 'client_ipv4':
    case 'client_ipv6': {
      if (isV4 !== (kind === 'client_ipv4')) {
        throw new PolicyKeyError(`expected an ${isV4 ? 'IPv6' : 'IPv4'} address for ${kind}, got "${text}"`);
      }
      if (bits !== maxBits) throw new PolicyKeyError(`expected a single address for ${kind}, got "${text}"`);
      return ipaddr.fromByteArray(bytes).toString();
    }
    case 'client_ipv4_subnet':
    case 'client_ipv6_subnet': {
      const wantV4 = kind === 'client_ipv4_subnet';
      if (isV4 !== wantV4) {
        throw new PolicyKeyError(
          `expected an ${wantV4 ? 'IPv4' : 'IPv6'} subnet for ${formatPolicyKey(key!)}`,
        );
      }
      const keyBits = (key as { bits: number }).bits;
      if (slash >= 0 && bits !== keyBits) {
        throw new PolicyKeyError(`expected a /${keyBits} subnet for ${formatPolicyKey(key!)}, got "${text}"`);
      }
      return maskedSubnet(bytes, keyBits);
    }
    default:
      return bits === maxBits ? ipaddr.fromByteArray(bytes).toString() : maskedSubnet(bytes, bits);
  }
}
