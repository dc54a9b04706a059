/**
 * Every configuration option, its default and a one-line description, in one place. `parseConfigObject` turns
 * the TOML-shaped object (snake_case keys, duration strings, hex secrets) into the normalised `Config`;
 * `describeOptions()` walks the same definitions for the README's option reference.
 *
 * Tables are strict: an unknown key is an error, so a typo never silently falls back to a default.
 */
import { isIP } from 'node:net';
import { availableParallelism, hostname } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { compileAllowList } from '../runtime/allow-list.ts';
import { isValidName, parsePolicyKey } from './policy-keys.ts';
import { parseSynRate } from './syn-rate.ts';
import { DEFAULT_SNI_SALT } from '../protocol/faketls/sni-secret.ts';
import { isDomainName, parseClientSecret, parseHexSecret } from './secrets.ts';
import type {
  ClusterConfig,
  Config,
  FrontingTarget,
  HostPort,
  ListenerConfig,
  PolicyKey,
  PolicyRule,
  ProtocolFamily,
} from './types.ts';
import { MtpError } from '../runtime/errors.ts';
import { parseSize } from './size.ts';
import { isValidUserName, parseExpires, QUOTA_PERIODS, type UserConfig } from './users.ts';

/** A configuration problem, always one line: `key.path: expected ...`. */
export class ConfigError extends MtpError {
  readonly key: string;
  constructor(key: string, expected: string) {
    super('config', 'MTP_ERR_CONFIG', key ? `${key}: ${expected}` : expected);
    this.name = 'ConfigError';
    this.key = key;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Option metadata (for the generated reference)

export interface OptionDoc {
  /** TOML key path: `listeners[].secret`, `upstream.dc`, `timeouts.idle`. */
  key: string;
  /** Human type: `string`, `integer`, `duration`, `"direct" | "middle" | "auto"`, `table`, `array of tables`. */
  type: string;
  /** Default as TOML text, or null when the option has none (optional or required). */
  default: string | null;
  required: boolean;
  description: string;
}

interface Meta {
  type: string;
  description: string;
  default: string | null;
  required: boolean;
  /** Nested tables: the object schema to recurse into. */
  inner?: z.ZodObject;
  /** For arrays of tables: the key gets a `[]` suffix. */
  array?: boolean;
}

const metaRegistry = new WeakMap<z.ZodType, Meta>();

function tomlText(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(tomlText).join(', ')}]`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (value !== null && typeof value === 'object') return '{}';
  return String(value);
}

function register<S extends z.ZodType>(schema: S, meta: Meta): S {
  metaRegistry.set(schema, meta);
  return schema;
}

/** An option with a default (given as TOML input, so it goes through the same parsing as a user value). */
function withDefault<S extends z.ZodType>(
  schema: S,
  def: unknown,
  type: string,
  description: string,
  defaultText?: string,
) {
  return register(schema.prefault(def as z.input<S>), {
    type,
    description,
    default: defaultText ?? tomlText(def),
    required: false,
  });
}

function optional<S extends z.ZodType>(schema: S, type: string, description: string) {
  return register(schema.optional(), { type, description, default: null, required: false });
}

function required<S extends z.ZodType>(schema: S, type: string, description: string) {
  return register(schema, { type, description, default: null, required: true });
}

function section<T extends z.core.$ZodLooseShape>(shape: T, description: string) {
  const inner = z.strictObject(shape);
  return register(inner.prefault({} as z.input<typeof inner>), {
    type: 'table',
    description,
    default: null,
    required: false,
    inner,
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Leaf parsers: each knows how to say what it expected.

const MISSING = ' (required)';

/** A leaf that accepts unknown input and either returns the parsed value or reports `expected ...`. */
function leaf<T>(
  expected: string,
  parse: (value: unknown) => T | null,
  hint?: (value: unknown) => string | null,
) {
  return z.unknown().transform((value, ctx): T => {
    const parsed = value === undefined ? null : parse(value);
    if (parsed === null) {
      const why = value === undefined ? null : (hint?.(value) ?? null);
      const extra = value === undefined ? MISSING : why ? ` (${why})` : '';
      ctx.addIssue({ code: 'custom', message: `expected ${expected}${extra}` });
      return z.NEVER;
    }
    return parsed;
  });
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
const DURATION_RE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;

/** "90s", "500ms", "1h30m", or a plain number of seconds -> milliseconds. */
export function parseDuration(value: unknown): number | null {
  if (typeof value === 'number')
    return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : null;
  if (typeof value !== 'string') return null;
  const text = value.trim();
  if (!DURATION_RE.test(text)) return null;
  let ms = 0;
  for (const m of text.matchAll(DURATION_PART)) ms += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  return Math.round(ms);
}

const duration = () => leaf('a duration like "90s", "500ms", "1h" or a number of seconds', parseDuration);

/** A duration where 0 or "off" turns the feature off (normalised to 0 ms). */
const durationOrOff = () =>
  leaf('a duration like "90s", "500ms", "1h", a number of seconds, or "off"', (v) =>
    v === 'off' ? 0 : parseDuration(v),
  );

function int(min: number, max: number) {
  return leaf(`an integer from ${min} to ${max}`, (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : null,
  );
}

function oneOf<const T extends string>(values: readonly T[]) {
  return leaf(values.map((v) => `"${v}"`).join(' or '), (v) =>
    typeof v === 'string' && (values as readonly string[]).includes(v) ? (v as T) : null,
  );
}

const bool = () => leaf('true or false', (v) => (typeof v === 'boolean' ? v : null));

function text(expected = 'a string') {
  return leaf(expected, (v) => (typeof v === 'string' ? v : null));
}

const nonEmptyText = (expected = 'a non-empty string') =>
  leaf(expected, (v) => (typeof v === 'string' && v.trim() !== '' ? v : null));

const hexSecret = () =>
  leaf(
    '32 hex characters',
    (v) => (typeof v === 'string' ? parseHexSecret(v) : null),
    // Operators often paste the secret from a link: say what to keep.
    (v) => {
      const linkForm = typeof v === 'string' ? parseClientSecret(v) : null;
      if (!linkForm || linkForm.kind === 'plain') return null;
      const rest = linkForm.domain ? ' and domain' : '';
      // The secret itself stays out of the message: reload errors end up in the logs.
      return `keep only the secret, without the ${linkForm.kind} prefix${rest}`;
    },
  );

const ipAddress = () =>
  leaf('an IPv4 or IPv6 address such as "0.0.0.0" or "::"', (v) =>
    typeof v === 'string' && isIP(v) !== 0 ? v : null,
  );

const domain = () =>
  leaf('a domain name such as "example.com"', (v) =>
    typeof v === 'string' && isDomainName(v) ? v.toLowerCase() : null,
  );

export { formatHostPort, upstreamKind } from './addresses.ts';

/** "host:port" or "[v6]:port". */
export function parseHostPort(value: string): HostPort | null {
  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end < 0 || value[end + 1] !== ':') return null;
    host = value.slice(1, end);
    portText = value.slice(end + 2);
    if (isIP(host) !== 6) return null;
  } else {
    const colon = value.lastIndexOf(':');
    if (colon <= 0) return null;
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':')) return null;
  }
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  return { host, port };
}

/** `redis://` or `rediss://` URL with a host (user and password optional). */
const redisUrl = () =>
  leaf('a URL like "redis://host:6379" or "rediss://user:password@host:6380"', (v) => {
    if (typeof v !== 'string') return null;
    try {
      const u = new URL(v);
      return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '' ? v : null;
    } catch {
      return null;
    }
  });

/** An admin/metrics address: "host:port", or a bare port on 127.0.0.1. */
const listenAddress = () =>
  leaf('"host:port" or a port number', (v): HostPort | null => {
    if (typeof v === 'number')
      return Number.isInteger(v) && v >= 0 && v <= 65535 ? { host: '127.0.0.1', port: v } : null;
    if (typeof v !== 'string') return null;
    if (/^\d{1,5}$/.test(v)) return Number(v) <= 65535 ? { host: '127.0.0.1', port: Number(v) } : null;
    // Port 0 is accepted here (unlike upstream addresses) so tests can bind an ephemeral port.
    const withPort0 = v.endsWith(':0') ? parseHostPort(v.slice(0, -2) + ':1') : null;
    if (withPort0) return { host: withPort0.host, port: 0 };
    return parseHostPort(v);
  });

/** A `metrics.allow` entry exactly as the metrics endpoint reads it, so the config never holds one it refuses. */
function allowEntry(value: unknown): string | null {
  if (typeof value !== 'string' || value !== value.trim()) return null;
  try {
    compileAllowList([value]);
    return value;
  } catch {
    return null;
  }
}

function fronting(value: unknown): FrontingTarget | null {
  if (value === 'off' || value === false) return { kind: 'off' };
  if (value === 'sni') return { kind: 'sni', port: 443 };
  if (typeof value !== 'string') return null;
  // "sni:8443": the SNI's host on another port.
  const sniPort = /^sni:(\d{1,5})$/.exec(value);
  if (sniPort) {
    const port = Number(sniPort[1]);
    return port >= 1 && port <= 65535 ? { kind: 'sni', port } : null;
  }
  const target = parseHostPort(value);
  return target ? { kind: 'fixed', host: target.host, port: target.port } : null;
}

function tlsCertSize(value: unknown): number | 'auto' | null {
  if (value === 'auto') return 'auto';
  return typeof value === 'number' && Number.isInteger(value) && value >= 64 && value <= 16384 ? value : null;
}

function perSniSalt(value: unknown): string | null {
  if (value === true) return DEFAULT_SNI_SALT;
  return typeof value === 'string' && value !== '' ? value : null;
}

/** NAT form "local:public" (both IPv4) or one IPv4. */
function externalIp(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const parts = value.split(':');
  if (parts.length > 2 || parts.some((p) => isIP(p) !== 4)) return null;
  return value;
}

function arrayOf<S extends z.ZodType>(item: S, expected: string) {
  return z.array(item, { error: `expected ${expected}` });
}

const DC_ID_RE = /^-?\d{1,5}$/;

/** `[upstream.dc]`: DC id -> list of "host:port" (a single string is accepted too). */
const dcTable = () =>
  z.unknown().transform((value, ctx): Map<number, HostPort[]> => {
    const result = new Map<number, HostPort[]>();
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      ctx.addIssue({ code: 'custom', message: 'expected a table of DC id = ["host:port", ...]' });
      return z.NEVER;
    }
    for (const [key, raw] of Object.entries(value)) {
      const id = Number(key);
      if (!DC_ID_RE.test(key) || id < -32768 || id > 32767) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: 'expected a DC id (an integer, negative for media DCs)',
        });
        continue;
      }
      const list = typeof raw === 'string' ? [raw] : raw;
      if (!Array.isArray(list) || list.length === 0) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'expected a non-empty list of "host:port"' });
        continue;
      }
      const addresses: HostPort[] = [];
      list.forEach((entry, i) => {
        const parsed = typeof entry === 'string' ? parseHostPort(entry) : null;
        if (!parsed)
          ctx.addIssue({
            code: 'custom',
            path: [key, i],
            message: 'expected "host:port" (IPv6 as "[::1]:443")',
          });
        else addresses.push(parsed);
      });
      result.set(id, addresses);
    }
    return result;
  });

// ---------------------------------------------------------------------------------------------------------------
// The schema

export const PROTOCOL_FAMILIES: readonly ProtocolFamily[] = ['classic', 'secure', 'tls'];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export const WORKER_MODES = ['auto', 'threads', 'processes'] as const;
export const DEFAULT_PORT = 1443;

const listenerShape = {
  name: optional(
    leaf('a name of letters, digits, "_", "-" or "." (at most 64)', (v) =>
      typeof v === 'string' && isValidName(v) ? v : null,
    ),
    'string',
    'Unique listener name (logs, metrics, policies); defaults to "main" for the first listener.',
  ),
  host: withDefault(
    ipAddress(),
    '0.0.0.0',
    'string',
    'Address to listen on: an IPv4 or IPv6 address ("::" for all IPv6).',
  ),
  port: withDefault(int(0, 65535), DEFAULT_PORT, 'integer', 'TCP port to listen on (0 picks a free port).'),
  secret: required(
    hexSecret(),
    'string',
    'The 16-byte client secret as 32 hex characters (without dd/ee prefix).',
  ),
  secrets: withDefault(
    arrayOf(hexSecret(), 'a list of 32-hex-character secrets'),
    [],
    'array of strings',
    'More accepted secrets for the same listener (one per user or group).',
  ),
  allowed_protocols: withDefault(
    arrayOf(oneOf(PROTOCOL_FAMILIES), 'a list of "classic", "secure", "tls"').refine((l) => l.length > 0, {
      message: 'expected at least one of "classic", "secure", "tls"',
    }),
    [...PROTOCOL_FAMILIES],
    'array of "classic" | "secure" | "tls"',
    'Client protocols: classic = abridged + intermediate, secure = padded intermediate (dd), tls = fake-TLS (ee).',
  ),
  ad_tag: optional(
    hexSecret(),
    'string',
    'Ad tag from @MTProxybot (32 hex); enables the promoted channel (middle-proxy mode).',
  ),
  tls_domain: optional(domain(), 'string', 'Cover domain for fake-TLS (ee) clients.'),
  tls_domains: withDefault(
    arrayOf(domain(), 'a list of domain names'),
    [],
    'array of strings',
    'More cover domains for fake-TLS; links are printed for each.',
  ),
  no_sni_domain: optional(
    domain(),
    'string',
    'Domain a fake-TLS hello without SNI (iOS and macOS apps) counts as for policies, metrics and unknown_sni (default: the first tls_domain).',
  ),
  fronting: withDefault(
    leaf('"sni", "off" or "host:port"', fronting),
    'sni',
    '"sni" | "sni:PORT" | "off" | "host:port"',
    'Where failed or non-proxy connections are forwarded: the SNI host on 443 (or PORT), a fixed address, or nowhere.',
  ),
  fronting_proxy_protocol: withDefault(
    oneOf(['off', 'v1', 'v2'] as const),
    'off',
    '"off" | "v1" | "v2"',
    'Send a PROXY protocol header to the fronting target.',
  ),
  unknown_sni: withDefault(
    oneOf(['front', 'reject', 'drop'] as const),
    'front',
    '"front" | "reject" | "drop"',
    'What a TLS hello for a domain this listener does not serve gets.',
  ),
  tls_time_skew: withDefault(
    duration(),
    '120s',
    'duration',
    'Accepted clock difference for fake-TLS client hellos; 0 turns the timestamp check off (then only the replay cache stops an old hello).',
  ),
  per_sni_salt: optional(
    leaf('a non-empty salt string, or true for the default salt', perSniSalt),
    'string | true',
    'Enables per-SNI derived secrets for fake-TLS with this salt (true = the default salt).',
  ),
  tls_cert_size: withDefault(
    leaf('"auto" or an integer from 64 to 16384', tlsCertSize),
    'auto',
    '"auto" | integer',
    'Size of the fake certificate record: fixed bytes, or learned from the cover domain ("auto").',
  ),
  public_host: optional(
    nonEmptyText('a host name or address'),
    'string',
    'Host printed in links (default: telegram.external_ip, else the listen address).',
  ),
  max_connections: withDefault(
    int(0, 10_000_000),
    0,
    'integer',
    'Concurrent connection cap for this listener (0 = no cap).',
  ),
};

const listenerSchema = z.strictObject(listenerShape);

const policyShape = {
  rule: required(
    oneOf(['max_connections', 'in_table', 'not_in_table'] as const),
    '"max_connections" | "in_table" | "not_in_table"',
    'Rule kind; rules are checked in order when a client is identified.',
  ),
  name: optional(nonEmptyText(), 'string', 'Label for metrics and logs (default: generated from the rule).'),
  keys: optional(
    arrayOf(text(), 'a list of keys'),
    'array of strings',
    'max_connections: the keys counted together (listener, client_ipv4, client_ipv6, tls_domain, client_ipv4/24, ...).',
  ),
  limit: optional(
    int(0, 100_000_000),
    'integer',
    'max_connections: the limit per combination of key values.',
  ),
  key: optional(text(), 'string', 'in_table / not_in_table: the key looked up in the table.'),
  table: optional(
    leaf('a table name of letters, digits, "_", "-" or "."', (v) =>
      typeof v === 'string' && isValidName(v) ? v : null,
    ),
    'string',
    'in_table / not_in_table: the table name.',
  ),
};

const policySchema = z.strictObject(policyShape);

function tableArray<S extends z.ZodObject>(item: S, description: string) {
  return register(z.array(item, { error: 'expected an array of tables' }).prefault([]), {
    type: 'array of tables',
    description,
    default: null,
    required: false,
    inner: item,
    array: true,
  });
}

// [[users]]: named secrets with limits (src/users).
const userShape = {
  name: required(
    leaf('a name of letters, digits, "_", "-", ".", "@" (at most 64)', (v) =>
      typeof v === 'string' && isValidUserName(v) ? v : null,
    ),
    'string',
    'Unique user name (links, metrics, the admin API and the CLI).',
  ),
  secret: optional(
    hexSecret(),
    'string',
    "The user's 16-byte secret as 32 hex characters; generated and kept in the state database when absent.",
  ),
  listeners: optional(
    arrayOf(
      leaf('a listener name', (v) => (typeof v === 'string' && isValidName(v) ? v : null)),
      'a list of listener names',
    ),
    'array of strings',
    'Listeners the user may connect to (default: every listener).',
  ),
  max_connections: withDefault(int(0, 10_000_000), 0, 'integer', 'Concurrent sessions (0 = no cap).'),
  max_ips: withDefault(
    int(0, 1_000_000),
    0,
    'integer',
    'Distinct client addresses at once; the next address is refused while the others stay (0 = no cap).',
  ),
  quota: withDefault(
    leaf('a size like "50GB" or an integer number of bytes', parseSize),
    0,
    'string | integer',
    'Bytes per quota period, both directions counted (0 = no quota); reaching it ends the open sessions.',
  ),
  quota_period: withDefault(
    oneOf(QUOTA_PERIODS),
    'monthly',
    '"total" | "daily" | "weekly" | "monthly"',
    'Quota period, in the time zone of the proxy.',
  ),
  quota_reset_day: withDefault(
    int(1, 31),
    1,
    'integer',
    'First day of a period: day of the month (monthly; past the end of a month = its last day), or 1 = Monday ... 7 = Sunday (weekly).',
  ),
  rate: withDefault(
    leaf('a size per second like "2MB" or an integer number of bytes', parseSize),
    0,
    'string | integer',
    "Bytes per second in each direction, shared by the user's sessions (0 = unlimited).",
  ),
  expires: optional(
    leaf('an RFC 3339 time such as "2027-06-01T00:00:00Z"', parseExpires),
    'string',
    'After this time the user is refused and its sessions end.',
  ),
  enabled: withDefault(bool(), true, 'boolean', 'A disabled user is refused and its sessions end at once.'),
  ad_tag: optional(hexSecret(), 'string', "Ad tag overriding the listener's for this user (middle mode)."),
  note: withDefault(text(), '', 'string', 'Free text for the operator.'),
  tls_domains: withDefault(
    arrayOf(domain(), 'a list of domain names'),
    [],
    'array of strings',
    "The user's own fake-TLS cover domains for its links (default: the listener's).",
  ),
};

const userSchema = z.strictObject(userShape);

const configSchema = z.strictObject({
  // The default depends on the machine, so it is filled in at normalisation.
  workers: register(int(1, 1024).optional(), {
    type: 'integer',
    description: 'Workers sharing the listeners (threads or processes, see worker_mode).',
    default: 'number of CPUs',
    required: false,
  }),
  worker_mode: withDefault(
    oneOf(WORKER_MODES),
    'auto',
    '"auto" | "threads" | "processes"',
    'How workers run: threads sharing each port through SO_REUSEPORT, or processes that the main process hands connections to in turn (any OS); auto = threads where SO_REUSEPORT works. Applies at start.',
  ),
  state_dir: withDefault(
    nonEmptyText('a folder path'),
    'mtproxy-state',
    'string',
    'Folder for persistent state (tables, cached Telegram config); relative to the config file.',
  ),
  listeners: register(
    z
      .array(listenerSchema, {
        error: (issue) =>
          issue.input === undefined
            ? 'expected at least one [[listeners]] table (required)'
            : 'expected an array of tables ([[listeners]])',
      })
      .refine((l) => l.length > 0, { message: 'expected at least one [[listeners]] table' }),
    {
      type: 'array of tables',
      description: 'Client-facing listeners ([[listeners]]); at least one.',
      default: null,
      required: true,
      inner: listenerSchema,
      array: true,
    },
  ),
  upstream: section(
    {
      mode: withDefault(
        oneOf(['direct', 'middle', 'auto'] as const),
        'auto',
        '"direct" | "middle" | "auto"',
        'How clients reach Telegram; auto = middle proxies for listeners with an ad tag, else direct.',
      ),
      prefer_ipv6: withDefault(bool(), false, 'boolean', 'Connect to Telegram over IPv6 first.'),
      dc: withDefault(
        dcTable(),
        {},
        'table',
        'Direct mode: DC addresses by DC id = ["host:port", ...]; replace the built-in ones (1-5 and the CDN DC 203) or add DC ids the table lacks.',
      ),
      default_dc: withDefault(
        int(-32768, 32767),
        2,
        'integer',
        'DC used when a client asks for an unknown DC id.',
      ),
      connect_timeout: withDefault(duration(), '5s', 'duration', 'TCP connect timeout towards Telegram.'),
      connect_retries: withDefault(int(0, 10), 2, 'integer', 'Further addresses tried when a connect fails.'),
      min_connections_per_dc: withDefault(
        int(0, 64),
        2,
        'integer',
        'Middle mode: connections kept open per DC.',
      ),
      clients_per_connection: withDefault(
        int(1, 100_000),
        300,
        'integer',
        'Middle mode: clients per connection before the pool grows.',
      ),
      idle_connection_timeout: withDefault(
        durationOrOff(),
        '2m',
        'duration | "off"',
        'Middle mode: a connection above min_connections_per_dc that has carried no client for this long is closed; 0 or "off" keeps every connection open.',
      ),
      stall_timeout: withDefault(
        durationOrOff(),
        '10s',
        'duration | "off"',
        'Middle mode: a connection that has received nothing for this long (it is pinged after half of it) counts as stalled: it is closed and its clients move to another connection or are closed; 0 or "off" disables the check.',
      ),
      middle_fallback: withDefault(
        oneOf(['direct', 'none'] as const),
        'direct',
        '"direct" | "none"',
        'Listeners with an ad tag, when no middle proxy of the DC answers: "direct" serves the client directly (no promoted channel meanwhile), "none" closes it. Listeners without an ad tag always fall back to direct.',
      ),
    },
    'Connections to Telegram.',
  ),
  telegram: section(
    {
      proxy_secret: withDefault(
        nonEmptyText('a URL or a file path'),
        'https://core.telegram.org/getProxySecret',
        'string',
        'Middle mode: proxy secret source (URL or file path).',
      ),
      proxy_config: withDefault(
        nonEmptyText('a URL or a file path'),
        'https://core.telegram.org/getProxyConfig',
        'string',
        'Middle mode: middle-proxy list source (URL or file path).',
      ),
      proxy_config_v6: withDefault(
        nonEmptyText('a URL or a file path'),
        'https://core.telegram.org/getProxyConfigV6',
        'string',
        'Middle mode: IPv6 middle-proxy list source (URL or file path).',
      ),
      refresh_interval: withDefault(
        duration(),
        '1h',
        'duration',
        'How often the Telegram config and secret are refreshed.',
      ),
      http_timeout: withDefault(duration(), '5s', 'duration', 'Timeout for those fetches and the IP lookup.'),
      external_ip: optional(
        leaf('an IPv4 address, or "local:public" behind NAT', externalIp),
        'string',
        'Public IPv4 of this server (middle-mode key derivation and links); "local:public" behind NAT.',
      ),
      ip_lookup_url: withDefault(
        text('a URL (or "" to use the local address)'),
        'https://v4.ident.me/',
        'string',
        'URL answering with our public IPv4 when external_ip is not set ("" = use the local address).',
      ),
    },
    "Telegram's middle-proxy configuration.",
  ),
  timeouts: section(
    {
      handshake: withDefault(
        duration(),
        '60s',
        'duration',
        'Close a client that has not completed its handshake by then.',
      ),
      idle: withDefault(
        duration(),
        '20m',
        'duration',
        'Close a session with no traffic either way for this long.',
      ),
      drain: withDefault(
        duration(),
        '10s',
        'duration',
        'On shutdown or listener removal: how long open sessions may finish.',
      ),
      fronting: withDefault(
        duration(),
        '60s',
        'duration',
        'Longest lifetime of a fronted (forwarded) connection.',
      ),
    },
    'Timeouts.',
  ),
  replay: section(
    {
      enabled: withDefault(bool(), true, 'boolean', 'Refuse handshakes seen before.'),
      max_entries: withDefault(
        int(1000, 100_000_000),
        1_000_000,
        'integer',
        'Handshakes remembered at most.',
      ),
      max_age: withDefault(
        duration(),
        '6h',
        'duration',
        'How long a handshake is remembered; raised to 4 × the largest tls_time_skew of a fake-TLS listener when shorter.',
      ),
    },
    'Replay protection.',
  ),
  policies: tableArray(policySchema, 'Connection policies ([[policies]]), checked in order.'),
  users: tableArray(userSchema, 'Named users ([[users]]), each with its own secret and limits (see Users).'),
  metrics: section(
    {
      listen: optional(
        listenAddress(),
        'string',
        'Prometheus endpoint address ("127.0.0.1:9100"); off when unset.',
      ),
      allow: withDefault(
        arrayOf(
          leaf('an IP address or CIDR such as "10.0.0.0/8"', allowEntry),
          'a list of addresses or CIDRs',
        ),
        ['127.0.0.0/8', '::1/128'],
        'array of strings',
        'Addresses allowed to scrape /metrics.',
      ),
      user_labels: withDefault(
        int(0, 1_000_000),
        100,
        'integer',
        'Per-user series: this many users (most traffic first) keep their own `user` label, the rest are summed as "_other"; 0 = no per-user series.',
      ),
    },
    'Prometheus metrics.',
  ),
  cluster: section(
    {
      role: withDefault(
        oneOf(['both', 'front', 'back'] as const),
        'both',
        '"both" | "front" | "back"',
        'both = one machine does everything; front = accept clients and hand their sessions to the backs (no Telegram connections); back = also serve sessions that fronts send over links (see A front and its backs).',
      ),
      backs: withDefault(
        arrayOf(
          leaf('"host:port"', (v) => (typeof v === 'string' ? parseHostPort(v) : null)),
          'a list of "host:port" strings',
        ),
        [],
        'array of strings',
        'Front: the link addresses of the backs ("host:port"); sessions are spread over those that are up.',
      ),
      link_listen: optional(
        listenAddress(),
        'string',
        'Back: where fronts connect their links ("0.0.0.0:8443"); required with role = "back".',
      ),
      cert: optional(
        nonEmptyText('a file path'),
        'string',
        "Front and back: this node's certificate (PEM, from `mtproxy cluster certs`); relative to the config file.",
      ),
      key: optional(nonEmptyText('a file path'), 'string', "Front and back: this node's private key (PEM)."),
      ca: optional(
        nonEmptyText('a file path'),
        'string',
        'Front and back: the cluster CA certificate (PEM); a link peer must hold a certificate it signed.',
      ),
      redis: optional(
        redisUrl(),
        'string',
        'Shared state of a fleet: "redis://[user:password@]host:port[/db]" or "rediss://…" (TLS); replay protection, users, usage, limits and policy tables are then shared by every node using it. Off when unset (this machine only).',
      ),
      redis_ca: optional(
        nonEmptyText('a file path'),
        'string',
        'With a "rediss://" URL: the CA certificate (PEM) that signed the Redis server\'s certificate, for a Redis with a private CA; default the system\'s CAs. Relative to the config file.',
      ),
      prefix: withDefault(
        leaf('a key prefix of letters, digits and ":_-." (at most 64)', (v) =>
          typeof v === 'string' && /^[A-Za-z0-9:_.-]{1,64}$/.test(v) ? v : null,
        ),
        'mtproxy:',
        'string',
        'Prefix of every Redis key and channel (several fleets can share one Redis).',
      ),
      node_name: optional(
        leaf('a name of letters, digits and "_.-" (at most 64)', (v) =>
          typeof v === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(v) ? v : null,
        ),
        'string',
        'This node in `mtproxy status --cluster` and the logs; default the host name.',
      ),
      timeout: withDefault(
        duration(),
        '500ms',
        'duration',
        'A Redis command not answered within this time counts as failed; the node then decides from its own state.',
      ),
      heartbeat: withDefault(
        duration(),
        '2s',
        'duration',
        'How often a node renews its registration (and its connection leases) and pulls shared usage.',
      ),
      node_timeout: withDefault(
        duration(),
        '10s',
        'duration',
        'A node silent for this long is taken for dead: the connections it held stop counting against the limits.',
      ),
    },
    'Several machines as one proxy: a front and its backs, and state shared through Redis or Valkey (see Running several servers).',
  ),
  admin: section(
    {
      listen: optional(listenAddress(), 'string', 'Admin API address ("127.0.0.1:9101"); off when unset.'),
      token: optional(
        nonEmptyText('a token string'),
        'string',
        'Bearer token the admin API requires (required with listen).',
      ),
      body_timeout: withDefault(
        duration(),
        '10s',
        'duration',
        'A request (headers and body) must arrive within this time, else it gets 408 and its connection is closed.',
      ),
      idle_timeout: withDefault(
        duration(),
        '30s',
        'duration',
        'Close an admin connection that has no request in progress and sends nothing for this long.',
      ),
      max_connections: withDefault(
        int(1, 10_000),
        32,
        'integer',
        'Admin connections open at once; more are closed as they arrive.',
      ),
      console: withDefault(
        bool(),
        true,
        'boolean',
        'Serve the web console at /console/ of the admin address (signed in with the token).',
      ),
      console_session: withDefault(
        duration(),
        '12h',
        'duration',
        'A console sign-in lasts this long; the session cookie expires with it.',
      ),
    },
    'HTTP admin API.',
  ),
  log: section(
    {
      level: withDefault(
        oneOf(LOG_LEVELS),
        'info',
        '"trace" | "debug" | "info" | "warn" | "error" | "silent"',
        'Log level.',
      ),
      format: withDefault(
        oneOf(['json', 'pretty'] as const),
        'json',
        '"json" | "pretty"',
        'JSON lines (for log collectors), or "pretty": one readable line per entry with the same fields.',
      ),
    },
    'Logging (JSON lines on stdout).',
  ),
  buffers: section(
    {
      client_high_water_mark: withDefault(
        int(1024, 16 * 1024 * 1024),
        65536,
        'integer',
        'Bytes read from a client socket before its stream pauses.',
      ),
      max_client_backlog: withDefault(
        int(16 * 1024, 256 * 1024 * 1024),
        1024 * 1024,
        'integer',
        'Bytes queued towards a slow client before the other side is paused or the client dropped.',
      ),
      fronting_max_bytes: withDefault(
        int(1024, 1024 * 1024 * 1024),
        16 * 1024 * 1024,
        'integer',
        'Bytes relayed at most on a fronted connection (each way).',
      ),
    },
    'Buffer sizes and limits.',
  ),
  firewall: section(
    {
      table: withDefault(
        leaf('a table name of letters, digits and "_" (at most 32)', (v) =>
          typeof v === 'string' && /^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(v) ? v : null,
        ),
        'mtproxy',
        'string',
        'nftables table (family inet) that `mtproxy firewall apply` loads and `remove` deletes; nothing else is touched.',
      ),
      syn_rate: withDefault(
        leaf('a rate like "48/minute" (per second, minute or hour)', parseSynRate),
        '48/minute',
        'string',
        'New connections per client address and listener port allowed in the long run; excess SYNs get a TCP reset.',
      ),
      syn_burst: withDefault(
        int(1, 10_000),
        24,
        'integer',
        'SYNs a client address may send at once beyond the rate (an app opens several connections when it starts).',
      ),
      max_sources: withDefault(
        int(1024, 16_777_216),
        65536,
        'integer',
        'Client addresses tracked per listener and IP family.',
      ),
      mss_clamp: withDefault(
        leaf('0, "off" or an integer from 88 to 1460', (v) =>
          v === 'off'
            ? 0
            : typeof v === 'number' && (v === 0 || (Number.isInteger(v) && v >= 88 && v <= 1460))
              ? v
              : null,
        ),
        0,
        'integer | "off"',
        'Lower the MSS the listeners announce in their SYN-ACK to this, so clients send the TLS hello in small segments; 0 or "off" leaves it.',
      ),
    },
    'nftables rules written by `mtproxy firewall` (per-source SYN limit with TCP reset, optional MSS clamp).',
  ),
});

export type RawConfig = z.output<typeof configSchema>;

/** Every option with type, default and description, in file order (for the README reference). */
export function describeOptions(): OptionDoc[] {
  const out: OptionDoc[] = [];
  const walk = (object: z.ZodObject, prefix: string) => {
    for (const [key, field] of Object.entries(object.shape)) {
      const meta = metaRegistry.get(field as z.ZodType);
      if (!meta) continue;
      const fullKey = prefix + key + (meta.array ? '[]' : '');
      out.push({
        key: fullKey,
        type: meta.type,
        default: meta.default,
        required: meta.required,
        description: meta.description,
      });
      if (meta.inner) walk(meta.inner, fullKey + '.');
    }
  };
  walk(configSchema, '');
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const part of p) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += (out ? '.' : '') + String(part);
  }
  return out;
}

function issueToError(
  issue: z.core.$ZodIssue,
  shapeAt: (p: readonly PropertyKey[]) => string[] | null,
): ConfigError {
  const at = formatPath(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const key = issue.keys[0]!;
      const known = shapeAt(issue.path);
      const hint = known ? ` (known keys: ${known.join(', ')})` : '';
      return new ConfigError(at ? `${at}.${key}` : key, `unknown key${hint}`);
    }
    case 'invalid_type':
      if (issue.message.startsWith('expected')) return new ConfigError(at, issue.message);
      if (issue.expected === 'object') return new ConfigError(at, 'expected a table');
      if (issue.expected === 'array') return new ConfigError(at, 'expected an array');
      return new ConfigError(at, `expected ${issue.expected}`);
    default: {
      const message = issue.message.startsWith('expected')
        ? issue.message
        : `invalid value (${issue.message})`;
      return new ConfigError(at, message);
    }
  }
}

function knownKeysAt(p: readonly PropertyKey[]): string[] | null {
  let schema: z.ZodObject = configSchema;
  for (const part of p) {
    if (typeof part === 'number') continue;
    const field = schema.shape[String(part)] as z.ZodType | undefined;
    const inner = field ? metaRegistry.get(field)?.inner : undefined;
    if (!inner) return null;
    schema = inner;
  }
  return Object.keys(schema.shape);
}

// ---------------------------------------------------------------------------------------------------------------
// Normalisation: raw (validated) TOML object -> Config

const POLICY_KEY_EXPECTED =
  'expected listener, client_ipv4, client_ipv6, tls_domain, client_ipv4/8..32 or client_ipv6/32..128';

/** A policy key in its config spelling; one line naming the option otherwise. */
function policyKeyAt(text: string, at: string): PolicyKey {
  try {
    return parsePolicyKey(text);
  } catch {
    throw new ConfigError(at, POLICY_KEY_EXPECTED);
  }
}

function toPolicy(raw: RawConfig['policies'][number], i: number): PolicyRule {
  const at = `policies[${i}]`;
  if (raw.rule === 'max_connections') {
    if (raw.key !== undefined || raw.table !== undefined) {
      throw new ConfigError(
        `${at}.${raw.key !== undefined ? 'key' : 'table'}`,
        'not used by max_connections (use keys)',
      );
    }
    if (!raw.keys || raw.keys.length === 0)
      throw new ConfigError(`${at}.keys`, 'expected a non-empty list of keys');
    if (raw.limit === undefined) throw new ConfigError(`${at}.limit`, 'expected an integer limit (required)');
    const keys = raw.keys.map((k, j) => policyKeyAt(k, `${at}.keys[${j}]`));
    return {
      rule: 'max_connections',
      keys,
      limit: raw.limit,
      raw: raw.name ?? `max_connections(${raw.keys.join(',')})`,
    };
  }
  if (raw.keys !== undefined || raw.limit !== undefined) {
    throw new ConfigError(
      `${at}.${raw.keys !== undefined ? 'keys' : 'limit'}`,
      `not used by ${raw.rule} (use key and table)`,
    );
  }
  if (raw.key === undefined) throw new ConfigError(`${at}.key`, `${POLICY_KEY_EXPECTED} (required)`);
  const key = policyKeyAt(raw.key, `${at}.key`);
  if (raw.table === undefined) throw new ConfigError(`${at}.table`, 'expected a table name (required)');
  return { rule: raw.rule, key, table: raw.table, raw: raw.name ?? `${raw.rule}(${raw.key},${raw.table})` };
}

function toListener(raw: RawConfig['listeners'][number], i: number): ListenerConfig {
  const tlsDomains = [...new Set([...(raw.tls_domain ? [raw.tls_domain] : []), ...raw.tls_domains])];
  const allowed = PROTOCOL_FAMILIES.filter((p) => raw.allowed_protocols.includes(p));
  return {
    name: raw.name ?? (i === 0 ? 'main' : `listener${i + 1}`),
    host: raw.host,
    port: raw.port,
    secret: raw.secret,
    extraSecrets: raw.secrets,
    allowedProtocols: allowed,
    adTag: raw.ad_tag ?? null,
    tlsDomains,
    noSniDomain: raw.no_sni_domain ?? null,
    fronting: raw.fronting,
    frontingProxyProtocol: raw.fronting_proxy_protocol,
    unknownSni: raw.unknown_sni,
    tlsTimeSkewMs: raw.tls_time_skew,
    perSniSalt: raw.per_sni_salt ?? null,
    tlsCertSize: raw.tls_cert_size,
    publicHost: raw.public_host ?? null,
    maxConnections: raw.max_connections,
  };
}

function toUsers(raw: RawConfig['users'], listeners: readonly ListenerConfig[]): UserConfig[] {
  const names = new Map<string, number>();
  const secrets = new Map<string, string>();
  for (const [i, l] of listeners.entries()) {
    for (const s of [l.secret, ...l.extraSecrets]) secrets.set(s.toString('hex'), `listeners[${i}]`);
  }
  const listenerNames = new Set(listeners.map((l) => l.name));
  return raw.map((u, i) => {
    const at = `users[${i}]`;
    const previous = names.get(u.name);
    if (previous !== undefined)
      throw new ConfigError(`${at}.name`, `expected a unique name ("${u.name}" is also users[${previous}])`);
    names.set(u.name, i);
    if (u.secret) {
      const hex = u.secret.toString('hex');
      const other = secrets.get(hex);
      // The secret itself stays out of the message.
      if (other !== undefined)
        throw new ConfigError(`${at}.secret`, `expected a secret not used by ${other}`);
      secrets.set(hex, at);
    }
    if (u.listeners) {
      const unknown = u.listeners.find((n) => !listenerNames.has(n));
      if (unknown !== undefined)
        throw new ConfigError(`${at}.listeners`, `expected names of [[listeners]] ("${unknown}" is none)`);
    }
    return {
      name: u.name,
      secret: u.secret ?? null,
      listeners: u.listeners ?? null,
      maxConnections: u.max_connections,
      maxIps: u.max_ips,
      quota: u.quota,
      quotaPeriod: u.quota_period,
      quotaResetDay: u.quota_reset_day,
      rate: u.rate,
      expires: u.expires ?? null,
      enabled: u.enabled,
      adTag: u.ad_tag ?? null,
      note: u.note,
      tlsDomains: u.tls_domains,
    };
  });
}

export interface ParseOptions {
  /** The file the object came from: relative paths (state_dir) resolve against its folder. */
  file?: string | null;
  /** Folder for relative paths when there is no file (default: the current directory). */
  baseDir?: string;
}

/** Validate a TOML-shaped object and normalise it. Throws ConfigError (one line) on the first problem. */
export function parseConfigObject(input: unknown, options: ParseOptions = {}): Config {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    // One line for the first problem (keys are checked in schema order, unknown keys last).
    throw issueToError(result.error.issues[0]!, knownKeysAt);
  }
  const raw = result.data;
  const file = options.file ? path.resolve(options.file) : null;
  const baseDir = file ? path.dirname(file) : (options.baseDir ?? process.cwd());

  const listeners = raw.listeners.map(toListener);
  const names = new Map<string, number>();
  const addresses = new Map<string, number>();
  listeners.forEach((l, i) => {
    const previous = names.get(l.name);
    if (previous !== undefined) {
      throw new ConfigError(
        `listeners[${i}].name`,
        `expected a unique name ("${l.name}" is also listeners[${previous}])`,
      );
    }
    names.set(l.name, i);
    if (l.port !== 0) {
      const address = `${l.host}|${l.port}`;
      const other = addresses.get(address);
      if (other !== undefined) {
        throw new ConfigError(
          `listeners[${i}].port`,
          `expected a port not used by listeners[${other}] on the same host`,
        );
      }
      addresses.set(address, i);
    }
  });

  const policies = raw.policies.map(toPolicy);
  const users = toUsers(raw.users, listeners);
  const warnings: string[] = [];
  const replayMaxAgeMs = replayAgeCoveringTlsWindow(
    raw.replay.enabled,
    raw.replay.max_age,
    listeners,
    warnings,
  );
  if (raw.admin.listen && !raw.admin.token) {
    throw new ConfigError('admin.token', 'expected a token when admin.listen is set (required)');
  }

  return {
    file,
    stateDir: path.resolve(baseDir, raw.state_dir),
    workers: raw.workers ?? availableParallelism(),
    workerMode: raw.worker_mode,
    listeners,
    upstream: {
      mode: raw.upstream.mode,
      preferIpv6: raw.upstream.prefer_ipv6,
      dc: raw.upstream.dc,
      defaultDc: raw.upstream.default_dc,
      connectTimeoutMs: raw.upstream.connect_timeout,
      connectRetries: raw.upstream.connect_retries,
      minConnectionsPerDc: raw.upstream.min_connections_per_dc,
      clientsPerConnection: raw.upstream.clients_per_connection,
      idleConnectionTimeoutMs: raw.upstream.idle_connection_timeout,
      stallTimeoutMs: raw.upstream.stall_timeout,
      middleFallback: raw.upstream.middle_fallback,
    },
    telegram: {
      proxySecret: raw.telegram.proxy_secret,
      proxyConfig: raw.telegram.proxy_config,
      proxyConfigV6: raw.telegram.proxy_config_v6,
      refreshIntervalMs: raw.telegram.refresh_interval,
      httpTimeoutMs: raw.telegram.http_timeout,
      externalIp: raw.telegram.external_ip ?? null,
      ipLookupUrl: raw.telegram.ip_lookup_url,
    },
    timeouts: {
      handshakeMs: raw.timeouts.handshake,
      idleMs: raw.timeouts.idle,
      drainMs: raw.timeouts.drain,
      frontingMs: raw.timeouts.fronting,
    },
    replay: {
      enabled: raw.replay.enabled,
      maxEntries: raw.replay.max_entries,
      maxAgeMs: replayMaxAgeMs,
    },
    policies,
    users,
    metrics: {
      listen: raw.metrics.listen ?? null,
      allow: raw.metrics.allow,
      userLabels: raw.metrics.user_labels,
    },
    admin: {
      listen: raw.admin.listen ?? null,
      token: raw.admin.token ?? null,
      bodyTimeoutMs: raw.admin.body_timeout,
      idleTimeoutMs: raw.admin.idle_timeout,
      maxConnections: raw.admin.max_connections,
      console: raw.admin.console,
      consoleSessionMs: raw.admin.console_session,
    },
    log: { level: raw.log.level, format: raw.log.format },
    buffers: {
      clientHighWaterMark: raw.buffers.client_high_water_mark,
      maxClientBacklog: raw.buffers.max_client_backlog,
      frontingMaxBytes: raw.buffers.fronting_max_bytes,
    },
    cluster: toCluster(raw.cluster, baseDir),
    firewall: {
      table: raw.firewall.table,
      synRate: raw.firewall.syn_rate,
      synBurst: raw.firewall.syn_burst,
      maxSources: raw.firewall.max_sources,
      mssClamp: raw.firewall.mss_clamp,
    },
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}

/** `[cluster]`: each role's required keys, file paths resolved against the config file. */
function toCluster(raw: RawConfig['cluster'], baseDir: string): ClusterConfig {
  const file = (p: string | undefined) => (p === undefined ? null : path.resolve(baseDir, p));
  const role = raw.role;
  if (role === 'front' && raw.backs.length === 0) {
    throw new ConfigError('cluster.backs', 'expected at least one back with role = "front" (required)');
  }
  if (role === 'back' && raw.link_listen === undefined) {
    throw new ConfigError('cluster.link_listen', 'expected an address with role = "back" (required)');
  }
  if (role !== 'both') {
    for (const k of ['cert', 'key', 'ca'] as const) {
      if (raw[k] === undefined)
        throw new ConfigError(`cluster.${k}`, `expected a file path with role = "${role}" (required)`);
    }
  }
  if (raw.redis_ca !== undefined && !raw.redis?.startsWith('rediss:')) {
    throw new ConfigError('cluster.redis_ca', 'expected a "rediss://" URL in cluster.redis (TLS) with redis_ca');
  }
  return {
    role,
    backs: raw.backs,
    linkListen: raw.link_listen ?? null,
    cert: file(raw.cert),
    key: file(raw.key),
    ca: file(raw.ca),
    redis: raw.redis ?? null,
    redisCa: file(raw.redis_ca),
    prefix: raw.prefix,
    nodeName: raw.node_name ?? hostname(),
    timeoutMs: Math.max(1, raw.timeout),
    heartbeatMs: Math.max(100, raw.heartbeat),
    nodeTimeoutMs: Math.max(raw.node_timeout, 2 * Math.max(100, raw.heartbeat)),
  };
}

/**
 * A fake-TLS hello stays acceptable while its timestamp is within ±tls_time_skew, so up to 2 × skew after it
 * is first seen; its client random must stay in the replay cache that long. The cache shared by worker
 * threads only promises half of max_age, hence 4 × skew. A shorter max_age is raised, with a warning.
 */
function replayAgeCoveringTlsWindow(
  enabled: boolean,
  maxAgeMs: number,
  listeners: readonly ListenerConfig[],
  warnings: string[],
): number {
  if (!enabled) return maxAgeMs;
  let skewMs = 0;
  for (const l of listeners)
    if (l.allowedProtocols.includes('tls')) skewMs = Math.max(skewMs, l.tlsTimeSkewMs);
  const floorMs = 4 * skewMs;
  if (maxAgeMs >= floorMs) return maxAgeMs;
  warnings.push(
    `replay.max_age: raised from ${maxAgeMs / 1000} s to ${floorMs / 1000} s (4 × tls_time_skew), ` +
      'so a fake-TLS hello cannot be replayed while its timestamp is still accepted',
  );
  return floorMs;
}
