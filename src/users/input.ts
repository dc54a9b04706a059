/**
 * A user as the admin API receives it (JSON, the config's snake_case names): every field checked on its own,
 * so a request with three bad fields hears about all three, one message each.
 */
import { isValidName } from '../config/policy-keys.ts';
import { isDomainName, parseHexSecret } from '../config/secrets.ts';
import { parseSize } from '../config/size.ts';
import {
  isValidUserName,
  parseExpires,
  QUOTA_PERIODS,
  type QuotaPeriod,
  type UserConfig,
} from '../config/users.ts';

export type FieldErrors = Record<string, string>;

export const USER_FIELDS = [
  'name',
  'secret',
  'listeners',
  'max_connections',
  'max_ips',
  'quota',
  'quota_period',
  'quota_reset_day',
  'rate',
  'expires',
  'enabled',
  'ad_tag',
  'note',
  'tls_domains',
] as const;

export function defaultUser(name: string): UserConfig {
  return {
    name,
    secret: null,
    listeners: null,
    maxConnections: 0,
    maxIps: 0,
    quota: 0,
    quotaPeriod: 'monthly',
    quotaResetDay: 1,
    rate: 0,
    expires: null,
    enabled: true,
    adTag: null,
    note: '',
    tlsDomains: [],
  };
}

function intIn(v: unknown, min: number, max: number): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : null;
}

/**
 * Apply `input` over `base`. Unknown keys and bad values are reported per field; `name` may be given
 * only when creating (`creating`), and must then be valid.
 */
export function applyUserInput(
  base: UserConfig,
  input: unknown,
  creating: boolean,
): { user: UserConfig; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const user: UserConfig = { ...base };
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return { user, errors: { body: 'expected a JSON object' } };
  }
  for (const [key, v] of Object.entries(input as Record<string, unknown>)) {
    switch (key) {
      case 'name':
        if (typeof v !== 'string' || !isValidUserName(v))
          errors.name = 'expected a name of letters, digits, "_", "-", ".", "@" (at most 64)';
        else if (!creating && v !== base.name) errors.name = 'a user cannot be renamed';
        else user.name = v;
        break;
      case 'secret': {
        const s = v === null ? null : typeof v === 'string' ? parseHexSecret(v) : undefined;
        if (s === undefined || (s === null && v !== null)) errors.secret = 'expected 32 hex characters';
        else user.secret = s;
        break;
      }
      case 'listeners':
        if (v === null) user.listeners = null;
        else if (!Array.isArray(v) || !v.every((n) => typeof n === 'string' && isValidName(n)))
          errors.listeners = 'expected a list of listener names';
        else user.listeners = [...new Set(v as string[])];
        break;
      case 'max_connections': {
        const n = intIn(v, 0, 10_000_000);
        if (n === null) errors.max_connections = 'expected an integer from 0 to 10000000';
        else user.maxConnections = n;
        break;
      }
      case 'max_ips': {
        const n = intIn(v, 0, 1_000_000);
        if (n === null) errors.max_ips = 'expected an integer from 0 to 1000000';
        else user.maxIps = n;
        break;
      }
      case 'quota': {
        const n = parseSize(v);
        if (n === null) errors.quota = 'expected a size like "50GB" or an integer number of bytes';
        else user.quota = n;
        break;
      }
      case 'quota_period':
        if (typeof v !== 'string' || !(QUOTA_PERIODS as readonly string[]).includes(v))
          errors.quota_period = 'expected "total", "daily", "weekly" or "monthly"';
        else user.quotaPeriod = v as QuotaPeriod;
        break;
      case 'quota_reset_day': {
        const n = intIn(v, 1, 31);
        if (n === null) errors.quota_reset_day = 'expected an integer from 1 to 31';
        else user.quotaResetDay = n;
        break;
      }
      case 'rate': {
        const n = parseSize(v);
        if (n === null) errors.rate = 'expected a size per second like "2MB" or an integer number of bytes';
        else user.rate = n;
        break;
      }
      case 'expires': {
        const t = v === null ? null : parseExpires(v);
        if (t === null && v !== null)
          errors.expires = 'expected an RFC 3339 time such as "2027-06-01T00:00:00Z"';
        else user.expires = t;
        break;
      }
      case 'enabled':
        if (typeof v !== 'boolean') errors.enabled = 'expected true or false';
        else user.enabled = v;
        break;
      case 'ad_tag': {
        const s = v === null ? null : typeof v === 'string' ? parseHexSecret(v) : undefined;
        if (s === undefined || (s === null && v !== null)) errors.ad_tag = 'expected 32 hex characters';
        else user.adTag = s;
        break;
      }
      case 'note':
        if (typeof v !== 'string' || v.length > 1000)
          errors.note = 'expected a string of at most 1000 characters';
        else user.note = v;
        break;
      case 'tls_domains':
        if (!Array.isArray(v) || !v.every((d) => typeof d === 'string' && isDomainName(d)))
          errors.tls_domains = 'expected a list of domain names';
        else user.tlsDomains = (v as string[]).map((d) => d.toLowerCase());
        break;
      default:
        errors[key] = `unknown field (known: ${USER_FIELDS.join(', ')})`;
    }
  }
  if (creating && !('name' in (input as object)) && !errors.name) errors.name = 'expected a name (required)';
  return { user, errors };
}

/** The user as the API and the CLI show it (the secret in hex). */
export function userToJson(u: UserConfig, secret: Buffer): Record<string, unknown> {
  return {
    name: u.name,
    secret: secret.toString('hex'),
    listeners: u.listeners,
    max_connections: u.maxConnections,
    max_ips: u.maxIps,
    quota: u.quota,
    quota_period: u.quotaPeriod,
    quota_reset_day: u.quotaResetDay,
    rate: u.rate,
    expires: u.expires === null ? null : new Date(u.expires).toISOString(),
    enabled: u.enabled,
    ad_tag: u.adTag ? u.adTag.toString('hex') : null,
    note: u.note,
    tls_domains: u.tlsDomains,
  };
}
