/**
 * The grammar of policy keys and names as the config, the admin API and the table values spell them: listener
 * and table names, and the key spellings (`listener`, `client_ipv4`, `client_ipv6`, `tls_domain`,
 * `client_ipv4/N`, `client_ipv6/N`). Evaluating a key against a connection is policy/keys.ts.
 */
import { MtpError } from '../runtime/errors.ts';
import type { PolicyKey } from './types.ts';

/** Listener and table names, one grammar for the config, the table API and listener-keyed table values. */
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export function isValidName(text: string): boolean {
  return NAME_RE.test(text);
}

export const IPV4_SUBNET_BITS = { min: 8, max: 32 } as const;
export const IPV6_SUBNET_BITS = { min: 32, max: 128 } as const;

export class PolicyKeyError extends MtpError {
  override name = 'PolicyKeyError';
  constructor(message: string) {
    super('policy', 'MTP_ERR_POLICY_KEY', message);
  }
}

/** Parse the config spelling: listener | client_ipv4 | client_ipv6 | tls_domain | client_ipv4/N | client_ipv6/N. */
export function parsePolicyKey(text: string): PolicyKey {
  const slash = text.indexOf('/');
  if (slash < 0) {
    if (text === 'listener' || text === 'client_ipv4' || text === 'client_ipv6' || text === 'tls_domain') {
      return { kind: text };
    }
    throw new PolicyKeyError(
      `expected listener, client_ipv4, client_ipv6, tls_domain, client_ipv4/N or client_ipv6/N, got "${text}"`,
    );
  }
  const family = text.slice(0, slash);
  const bitsText = text.slice(slash + 1);
  const bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : Number.NaN;
  if (family === 'client_ipv4') {
    if (!(bits >= IPV4_SUBNET_BITS.min && bits <= IPV4_SUBNET_BITS.max)) {
      throw new PolicyKeyError(`expected an IPv4 prefix length 8..32 in "${text}"`);
    }
    return { kind: 'client_ipv4_subnet', bits };
  }
  if (family === 'client_ipv6') {
    if (!(bits >= IPV6_SUBNET_BITS.min && bits <= IPV6_SUBNET_BITS.max)) {
      throw new PolicyKeyError(`expected an IPv6 prefix length 32..128 in "${text}"`);
    }
    return { kind: 'client_ipv6_subnet', bits };
  }
  throw new PolicyKeyError(`expected client_ipv4/N or client_ipv6/N, got "${text}"`);
}

export function formatPolicyKey(key: PolicyKey): string {
  switch (key.kind) {
    case 'client_ipv4_subnet':
      return `client_ipv4/${key.bits}`;
    case 'client_ipv6_subnet':
      return `client_ipv6/${key.bits}`;
    default:
      return key.kind;
  }
}
