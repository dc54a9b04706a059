/**
 * Where the CLI's config comes from: a TOML file (`--config`, `MTP_CONFIG`, or `./mtproxy.toml`), overridden by
 * the common-case flags and environment variables of the Docker image (`-p/-s/-t/-a`, `MTP_PORT`, ...). Flags
 * win over the environment, both win over the file, and they apply to the first listener.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, readConfigObject } from '../config/load.ts';
import {
  DEFAULT_PORT,
  LOG_LEVELS,
  PROTOCOL_FAMILIES,
  parseConfigObject,
  WORKER_MODES,
} from '../config/schema.ts';
import { generateSecret, isDomainName, parseClientSecret, parseHexSecret } from '../config/secrets.ts';
import type { ProtocolFamily } from '../config/types.ts';
import type { LoadedConfig, OptionSpec, OptionValues } from './command.ts';

const DEFAULT_CONFIG_FILE = 'mtproxy.toml';
/** Cover domain written into a generated config, so the first start prints a working fake-TLS link too. */
export const DEFAULT_TLS_DOMAIN = 'www.cloudflare.com';

/** Options every command accepts (`--help` and the README's CLI reference print them from here). */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  config: {
    type: 'string',
    short: 'c',
    valueName: 'FILE',
    env: 'MTP_CONFIG',
    description: 'Config file (TOML); default ./mtproxy.toml',
  },
  port: {
    type: 'string',
    short: 'p',
    valueName: 'PORT',
    env: 'MTP_PORT',
    description: 'Port of the first listener',
  },
  secret: {
    type: 'string',
    short: 's',
    valueName: 'HEX',
    env: 'MTP_SECRET',
    description: 'Secret of the first listener: 32 hex (a dd/ee secret from a link works too)',
  },
  tag: {
    type: 'string',
    short: 't',
    valueName: 'HEX',
    env: 'MTP_TAG',
    description: 'Ad tag of the first listener from @MTProxybot, 32 hex',
  },
  allow: {
    type: 'string',
    short: 'a',
    multiple: true,
    valueName: 'PROTO',
    env: 'MTP_ALLOW',
    description: 'Allowed protocol: classic, secure (dd), tls (ee); repeat the flag, or comma-separate',
  },
  'dd-only': {
    type: 'boolean',
    short: 'd',
    description:
      'Same as -a dd (the older flag of the Erlang proxy image; the installer reads -d the same way)',
  },
  'tls-domain': {
    type: 'string',
    short: 'D',
    multiple: true,
    valueName: 'DOMAIN',
    env: 'MTP_TLS_DOMAIN',
    description: 'Fake-TLS cover domain of the first listener; repeat the flag, or comma-separate',
  },
  workers: {
    type: 'string',
    short: 'w',
    valueName: 'N',
    env: 'MTP_WORKERS',
    description: 'Workers (threads or processes, see worker_mode)',
  },
  'worker-mode': {
    type: 'string',
    valueName: 'MODE',
    env: 'MTP_WORKER_MODE',
    description: 'auto, threads or processes (see worker_mode)',
  },
  'log-level': {
    type: 'string',
    valueName: 'LEVEL',
    env: 'MTP_LOG_LEVEL',
    description: 'trace, debug, info, warn, error or silent',
  },
  help: { type: 'boolean', short: 'h', description: 'Show help' },
  version: { type: 'boolean', short: 'V', description: 'Show the version' },
};

/** Environment variables without a flag. */
export const ENVIRONMENT_ONLY: Record<string, string> = {
  MTP_DD_ONLY: 'Any value: allow only secure (dd), as the Erlang proxy image reads it',
  MTP_TLS_ONLY: 'Any value: allow only fake-TLS (ee); with MTP_DD_ONLY, both',
  MTP_STATE_DIR: 'Overrides state_dir (the Docker image and the systemd unit set it)',
};

const PROTOCOL_ALIASES: Record<string, ProtocolFamily> = {
  classic: 'classic',
  normal: 'classic',
  plain: 'classic',
  secure: 'secure',
  dd: 'secure',
  tls: 'tls',
  ee: 'tls',
  faketls: 'tls',
};

interface Overrides {
  port?: number;
  secret?: Buffer;
  tag?: Buffer;
  allow?: ProtocolFamily[];
  tlsDomains?: string[];
  workers?: number;
  workerMode?: string;
  logLevel?: string;
  /** MTP_STATE_DIR: the container image and the systemd unit point state at their writable folder. */
  stateDir?: string;
}

function pick(
  values: OptionValues,
  env: NodeJS.ProcessEnv,
  flag: string,
  envName: string,
): string | undefined {
  const v = values[flag];
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.length > 0) return v.join(',');
  const e = env[envName];
  return e !== undefined && e !== '' ? e : undefined;
}

function label(flag: string, envName: string): string {
  return `--${flag} (${envName})`;
}

/** Flags and environment -> validated overrides; a bad value is a one-line ConfigError naming the flag. */
function readOverrides(values: OptionValues, env: NodeJS.ProcessEnv): Overrides {
  const o: Overrides = {};
  const port = pick(values, env, 'port', 'MTP_PORT');
  if (port !== undefined) {
    const n = Number(port);
    if (!/^\d+$/.test(port) || n < 0 || n > 65535) {
      throw new ConfigError(label('port', 'MTP_PORT'), 'expected a port number from 1 to 65535');
    }
    o.port = n;
  }
  const secret = pick(values, env, 'secret', 'MTP_SECRET');
  if (secret !== undefined) {
    // A secret pasted from a link (dd/ee, hex or base64) is fine too: the listener keeps its 16 bytes.
    const parsed = parseClientSecret(secret);
    if (!parsed) throw new ConfigError(label('secret', 'MTP_SECRET'), 'expected 32 hex characters');
    o.secret = parsed.secret;
    if (parsed.domain) o.tlsDomains = [parsed.domain];
  }
  const tag = pick(values, env, 'tag', 'MTP_TAG');
  if (tag !== undefined) {
    const parsed = parseHexSecret(tag);
    if (!parsed) throw new ConfigError(label('tag', 'MTP_TAG'), 'expected 32 hex characters');
    o.tag = parsed;
  }
  let allow = pick(values, env, 'allow', 'MTP_ALLOW');
  if (values['dd-only'] === true) allow = allow === undefined ? 'dd' : `${allow},dd`;
  if (allow !== undefined) {
    const families = new Set<ProtocolFamily>();
    for (const word of allow.split(/[\s,]+/).filter(Boolean)) {
      const family = PROTOCOL_ALIASES[word.toLowerCase()];
      if (!family)
        throw new ConfigError(label('allow', 'MTP_ALLOW'), 'expected classic, secure (dd) or tls (ee)');
      families.add(family);
    }
    if (families.size === 0)
      throw new ConfigError(label('allow', 'MTP_ALLOW'), 'expected classic, secure (dd) or tls (ee)');
    o.allow = PROTOCOL_FAMILIES.filter((f) => families.has(f));
  }
  if (!o.allow && (env.MTP_DD_ONLY || env.MTP_TLS_ONLY)) {
    // The variables of the Erlang proxy's image: either or both restrict the protocols to dd / fake-TLS.
    o.allow = PROTOCOL_FAMILIES.filter(
      (f) => (f === 'secure' && env.MTP_DD_ONLY) || (f === 'tls' && env.MTP_TLS_ONLY),
    );
  }
  const domains = pick(values, env, 'tls-domain', 'MTP_TLS_DOMAIN');
  if (domains !== undefined) {
    const list = domains.split(/[\s,]+/).filter(Boolean);
    if (list.length === 0 || !list.every(isDomainName)) {
      throw new ConfigError(
        label('tls-domain', 'MTP_TLS_DOMAIN'),
        'expected a domain name such as "example.com"',
      );
    }
    o.tlsDomains = list.map((d) => d.toLowerCase());
  }
  const workers = pick(values, env, 'workers', 'MTP_WORKERS');
  if (workers !== undefined) {
    if (!/^\d+$/.test(workers) || Number(workers) < 1) {
      throw new ConfigError(label('workers', 'MTP_WORKERS'), 'expected a positive integer');
    }
    o.workers = Number(workers);
  }
  const workerMode = pick(values, env, 'worker-mode', 'MTP_WORKER_MODE');
  if (workerMode !== undefined) {
    if (!(WORKER_MODES as readonly string[]).includes(workerMode)) {
      throw new ConfigError(
        label('worker-mode', 'MTP_WORKER_MODE'),
        `expected one of ${WORKER_MODES.join(', ')}`,
      );
    }
    o.workerMode = workerMode;
  }
  const logLevel = pick(values, env, 'log-level', 'MTP_LOG_LEVEL');
  if (logLevel !== undefined) {
    if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
      throw new ConfigError(label('log-level', 'MTP_LOG_LEVEL'), `expected one of ${LOG_LEVELS.join(', ')}`);
    }
    o.logLevel = logLevel;
  }
  if (env.MTP_STATE_DIR) o.stateDir = env.MTP_STATE_DIR;
  return o;
}

function hasListenerOverrides(o: Overrides): boolean {
  return (
    o.port !== undefined ||
    o.secret !== undefined ||
    o.tag !== undefined ||
    o.allow !== undefined ||
    o.tlsDomains !== undefined
  );
}

/** Apply overrides to the TOML-shaped object (before validation, so the schema checks the result). */
function applyOverrides(raw: Record<string, unknown>, o: Overrides): void {
  if (hasListenerOverrides(o)) {
    if (!Array.isArray(raw.listeners)) raw.listeners = [{}];
    const listeners = raw.listeners as Record<string, unknown>[];
    if (listeners.length === 0) listeners.push({});
    const first = listeners[0]!;
    if (typeof first === 'object' && first !== null) {
      if (o.port !== undefined) first.port = o.port;
      if (o.secret) first.secret = o.secret.toString('hex');
      if (o.tag) first.ad_tag = o.tag.toString('hex');
      if (o.allow) first.allowed_protocols = o.allow;
      if (o.tlsDomains) {
        first.tls_domain = o.tlsDomains[0];
        first.tls_domains = o.tlsDomains.slice(1);
      }
    }
  }
  if (o.workers !== undefined) raw.workers = o.workers;
  if (o.workerMode !== undefined) raw.worker_mode = o.workerMode;
  if (o.stateDir !== undefined) raw.state_dir = o.stateDir;
  if (o.logLevel !== undefined) {
    const log = typeof raw.log === 'object' && raw.log !== null ? (raw.log as Record<string, unknown>) : {};
    log.level = o.logLevel;
    raw.log = log;
  }
}

function generatedConfigText(secretHex: string, port: number, tlsDomain: string): string {
  return [
    '# mtproxy configuration, written on first start. Edit and reload (SIGHUP or `mtproxy reload`).',
    '# Every option with its default is listed in the README.',
    '',
    '[[listeners]]',
    'name = "main"',
    'host = "0.0.0.0"',
    `port = ${port}`,
    `secret = "${secretHex}"`,
    'allowed_protocols = ["classic", "secure", "tls"]',
    `tls_domain = "${tlsDomain}"`,
    '',
    '[upstream]',
    'mode = "auto"',
    '',
  ].join('\n');
}

export function resolveConfigFile(values: OptionValues, env: NodeJS.ProcessEnv, cwd: string): string | null {
  const explicit = typeof values.config === 'string' ? values.config : env.MTP_CONFIG || undefined;
  if (explicit) return path.resolve(cwd, explicit);
  const fallback = path.join(cwd, DEFAULT_CONFIG_FILE);
  return existsSync(fallback) ? fallback : null;
}

export async function loadCliConfig(
  values: OptionValues,
  env: NodeJS.ProcessEnv,
  cwd: string,
  opts: { createIfMissing?: boolean } = {},
): Promise<LoadedConfig> {
  const overrides = readOverrides(values, env);
  const file = resolveConfigFile(values, env, cwd);
  if (file) {
    const raw = await readConfigObject(file);
    applyOverrides(raw, overrides);
    return { config: parseConfigObject(raw, { file }), file, created: null };
  }
  if (!opts.createIfMissing && !overrides.secret) {
    throw new ConfigError(
      DEFAULT_CONFIG_FILE,
      'expected a config file (use --config FILE, or start the proxy once to create one)',
    );
  }
  let created: string | null = null;
  const raw: Record<string, unknown> = { listeners: [{ name: 'main', tls_domain: DEFAULT_TLS_DOMAIN }] };
  if (!overrides.secret) {
    // First start: make the secret permanent, or every restart would invalidate the links handed out.
    const secret = generateSecret();
    const target = path.join(cwd, DEFAULT_CONFIG_FILE);
    const text = generatedConfigText(
      secret.toString('hex'),
      overrides.port ?? DEFAULT_PORT,
      DEFAULT_TLS_DOMAIN,
    );
    try {
      await writeFile(target, text, { flag: 'wx', mode: 0o600 });
      created = target;
    } catch {
      // Read-only folder (containers): run with the generated secret anyway; the caller warns.
    }
    const listener = (raw.listeners as Record<string, unknown>[])[0]!;
    listener.secret = secret.toString('hex');
    if (created) {
      const parsed = await readConfigObject(created);
      applyOverrides(parsed, overrides);
      return { config: parseConfigObject(parsed, { file: created }), file: created, created };
    }
  }
  applyOverrides(raw, overrides);
  return { config: parseConfigObject(raw, { baseDir: cwd }), file: null, created };
}
