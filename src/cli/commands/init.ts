/**
 * `mtproxy init`: writes a commented config from flags (or answers, when a person is at the terminal), checks
 * the cover domain the way `doctor` does, and prints the links with QR codes.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { configLinks } from '../../config/links.ts';
import { ConfigError, parseConfig } from '../../config/load.ts';
import { listenersNeedingAddress, publicAddressNotes } from '../../config/public-address.ts';
import { formatHostPort } from '../../config/schema.ts';
import { generateSecret, isDomainName, parseHexSecret } from '../../config/secrets.ts';
import type { ProtocolFamily } from '../../config/types.ts';
import { qrMatrix, qrTerminal } from '../../links/qr.ts';
import { formatResult } from '../../tools/doctor.ts';
import type { CliCommand } from '../command.ts';
import { DEFAULT_TLS_DOMAIN } from '../config-source.ts';
import { linkLines } from '../print-links.ts';

const DEFAULT_CONFIG_FILE = 'mtproxy.toml';
export const INIT_ADMIN_LISTEN = '127.0.0.1:9101';

const PROTOCOL_NAMES: Record<string, ProtocolFamily> = {
  classic: 'classic',
  secure: 'secure',
  dd: 'secure',
  tls: 'tls',
  ee: 'tls',
};

export interface InitAnswers {
  port: number;
  secretHex: string;
  protocols: ProtocolFamily[];
  /** Cover domain, or null without fake-TLS. */
  domain: string | null;
  adTag: string | null;
  /** The admin API token, or null without [admin]. */
  adminToken: string | null;
  /** The admin API address (default INIT_ADMIN_LISTEN). */
  adminListen?: string;
  /** The host for links, or null to find the public address at start. */
  publicHost?: string | null;
  /** state_dir, or null for the default (mtproxy-state next to the config). */
  stateDir?: string | null;
}

/** A TOML basic string (JSON's escapes are TOML's). */
function tomlString(value: string): string {
  return JSON.stringify(value);
}

/** The config file `init` writes: every choice explained where it is made. */
export function initConfigText(a: InitAnswers): string {
  const lines = [
    '# mtproxy configuration written by `mtproxy init`. Edit it and reload (SIGHUP or `mtproxy reload`);',
    '# every option, with its default, is in the README.',
    '',
  ];
  if (a.stateDir)
    lines.push(
      '# Policy tables and the cached Telegram config are kept here.',
      `state_dir = ${tomlString(a.stateDir)}`,
      '',
    );
  lines.push(
    '[[listeners]]',
    'name = "main"',
    '# Listen on every address; the links use public_host when set, else the public address found at start.',
    'host = "0.0.0.0"',
    `port = ${a.port}`,
    ...(a.publicHost
      ? [
          '# The name or address users reach, put into the links.',
          `public_host = ${tomlString(a.publicHost)}`,
        ]
      : ['# public_host = "proxy.example.com"   # the name or address users reach (set it behind NAT)']),
    '# The secret in every link: keep it private, change it to cut off every link handed out.',
    `secret = "${a.secretHex}"`,
    '# classic = plain secret, secure = dd links (random padding), tls = ee links (looks like HTTPS).',
    `allowed_protocols = [${a.protocols.map((p) => `"${p}"`).join(', ')}]`,
  );
  if (a.domain !== null)
    lines.push(
      '# A real HTTPS site the fake-TLS handshake imitates; probes that fail it are passed on to that site.',
      `tls_domain = "${a.domain}"`,
    );
  if (a.adTag !== null)
    lines.push(
      '# The ad tag from @MTProxybot: shows your sponsored channel (uses the middle proxies).',
      `ad_tag = "${a.adTag}"`,
    );
  lines.push(
    '',
    '[upstream]',
    '# auto: straight to the Telegram DCs, or through the middle proxies for a listener with an ad tag.',
    'mode = "auto"',
  );
  if (a.adminToken !== null)
    lines.push(
      '',
      '[admin]',
      '# The local admin API that `mtproxy status`, `links`, `reload` and `table` use (this machine only).',
      `listen = ${tomlString(a.adminListen ?? INIT_ADMIN_LISTEN)}`,
      `token = ${tomlString(a.adminToken)}`,
    );
  lines.push('');
  return lines.join('\n');
}

function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && typeof v[0] === 'string') return v.join(',');
  return undefined;
}

function yes(text: string): boolean | null {
  const t = text.trim().toLowerCase();
  if (['y', 'yes', 'true', '1', 'on'].includes(t)) return true;
  if (['n', 'no', 'false', '0', 'off', ''].includes(t)) return false;
  return null;
}

/** `HOST:PORT` or `[IPv6]:PORT`, the form [admin] listen takes. */
function isListenAddress(text: string): boolean {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return false;
  const port = Number(m[3]);
  return port >= 1 && port <= 65535 && (m[1] === undefined || isIP(m[1]) === 6);
}

/** Characters a token may hold: printable, no spaces or quotes (it goes into a header and a TOML string). */
const TOKEN_PATTERN = /^[\x21\x23-\x26\x28-\x5b\x5d-\x7e]{16,256}$/;

export const command: CliCommand = {
  name: 'init',
  summary: 'Write a commented config (from flags, or asking at a terminal) and print its links with QR codes',
  details:
    'Asks for the rest when stdin is a terminal (--yes never asks: defaults for anything not given). Checks the cover domain the way doctor does (--no-check skips that, and with it every outbound connection), refuses to overwrite a file without --force, and prints the links with QR codes (--no-qr to leave them out, --no-links for none). --admin (the default) adds [admin] on 127.0.0.1:9101 with a random token (--admin-listen and --admin-token choose them). Without --public-host the links use the public address the proxy finds at start. The installer (scripts/install.sh) writes its config with this command.',
  usage:
    'init [--config FILE] [--port PORT] [--secret HEX] [--protocols LIST] [--domain DOMAIN | --no-domain] [--ad-tag HEX] [--public-host HOST] [--state-dir DIR] [--admin | --no-admin] [--admin-listen HOST:PORT] [--admin-token TOKEN] [--yes] [--no-check] [--no-qr | --no-links] [--force]',
  options: {
    port: { type: 'string', short: 'p', valueName: 'PORT', description: 'Port to listen on (default 443)' },
    protocols: {
      type: 'string',
      valueName: 'LIST',
      description: 'classic, secure (dd), tls (ee), comma-separated (default: secure,tls with a domain)',
    },
    domain: {
      type: 'string',
      valueName: 'DOMAIN',
      description: `Fake-TLS cover domain, a real HTTPS site (default ${DEFAULT_TLS_DOMAIN})`,
    },
    'no-domain': { type: 'boolean', description: 'No fake-TLS (secure links only)' },
    'ad-tag': { type: 'string', valueName: 'HEX', description: 'Ad tag from @MTProxybot, 32 hex' },
    'public-host': {
      type: 'string',
      valueName: 'HOST',
      description: 'Name or address in the links (default: the public address found at start)',
    },
    'state-dir': {
      type: 'string',
      valueName: 'DIR',
      description:
        'state_dir: policy tables, cached Telegram config (default mtproxy-state next to the file)',
    },
    admin: {
      type: 'boolean',
      description: `Admin API on ${INIT_ADMIN_LISTEN} with a random token (default)`,
    },
    'no-admin': { type: 'boolean', description: 'No admin API' },
    'admin-listen': {
      type: 'string',
      valueName: 'HOST:PORT',
      description: `Admin API address (default ${INIT_ADMIN_LISTEN}; keep it on loopback)`,
    },
    'admin-token': {
      type: 'string',
      valueName: 'TOKEN',
      description: 'Admin API token, 16 to 256 characters, no spaces or quotes (default: random)',
    },
    yes: { type: 'boolean', short: 'y', description: 'Never ask, even at a terminal' },
    'no-check': { type: 'boolean', description: 'Do not check the cover domain (no outbound connection)' },
    'no-qr': { type: 'boolean', description: 'Links without QR codes' },
    'no-links': { type: 'boolean', description: 'Only write the file: no links, no address lookup' },
    force: { type: 'boolean', description: 'Overwrite an existing config file' },
  },
  async run(ctx) {
    const v = ctx.values;
    const explicit = typeof v.config === 'string' ? v.config : ctx.env.MTP_CONFIG || undefined;
    const file = path.resolve(ctx.cwd, explicit ?? DEFAULT_CONFIG_FILE);
    const ask = v.yes ? null : ctx.ask;

    let portText = str(v.port);
    let protocolsText = str(v.protocols) ?? str(v.allow);
    // -d means "dd only" here as for run, link and the installer (-D is the cover domain).
    if (v['dd-only']) protocolsText = protocolsText ? `${protocolsText},secure` : 'secure';
    let domain: string | null | undefined = v['no-domain'] ? null : (str(v.domain) ?? str(v['tls-domain']));
    let tag: string | null | undefined = str(v['ad-tag']) ?? str(v.tag);
    const adminListenText = str(v['admin-listen']);
    const adminTokenText = str(v['admin-token']);
    if (v['no-admin'] && (adminListenText !== undefined || adminTokenText !== undefined))
      throw new ConfigError('--no-admin', 'cannot be combined with --admin-listen or --admin-token');
    let admin: boolean | undefined = v['no-admin']
      ? false
      : v.admin || adminListenText !== undefined || adminTokenText !== undefined
        ? true
        : undefined;

    if (ask) {
      portText ??= await ask('Port to listen on', '443');
      if (domain === undefined) {
        const answer = await ask(
          'Fake-TLS cover domain, a real HTTPS site ("none" for no fake-TLS)',
          DEFAULT_TLS_DOMAIN,
        );
        domain = answer.trim().toLowerCase() === 'none' ? null : answer.trim();
      }
      protocolsText ??= await ask(
        'Protocols: classic, secure (dd), tls (ee)',
        domain ? 'secure,tls' : 'secure',
      );
      if (tag === undefined) {
        const answer = (await ask('Ad tag from @MTProxybot (32 hex, empty for none)', '')).trim();
        tag = answer === '' ? null : answer;
      }
      if (admin === undefined) {
        for (;;) {
          const answer = yes(
            await ask(`Admin API on ${INIT_ADMIN_LISTEN} for mtproxy status/links (yes/no)`, 'yes'),
          );
          if (answer !== null) {
            admin = answer;
            break;
          }
        }
      }
    }

    const port = Number(portText ?? '443');
    if (!/^\d+$/.test(portText ?? '443') || port < 1 || port > 65535)
      throw new ConfigError('--port', 'expected a port number from 1 to 65535');
    if (domain === undefined) domain = DEFAULT_TLS_DOMAIN;
    if (domain !== null) {
      if (!isDomainName(domain))
        throw new ConfigError('--domain', 'expected a domain name such as "example.com"');
      domain = domain.toLowerCase();
    }
    const protocols: ProtocolFamily[] = [];
    for (const name of (protocolsText ?? (domain ? 'secure,tls' : 'secure'))
      .split(/[\s,]+/)
      .filter(Boolean)) {
      const p = PROTOCOL_NAMES[name.toLowerCase()];
      if (!p) throw new ConfigError('--protocols', 'expected classic, secure (dd) or tls (ee)');
      if (!protocols.includes(p)) protocols.push(p);
    }
    if (protocols.length === 0)
      throw new ConfigError('--protocols', 'expected classic, secure (dd) or tls (ee)');
    if (protocols.includes('tls') && domain === null)
      throw new ConfigError('--protocols', 'tls needs a cover domain (--domain DOMAIN)');
    if (!protocols.includes('tls')) domain = null;
    let adTag: string | null = null;
    if (tag) {
      if (!parseHexSecret(tag)) throw new ConfigError('--ad-tag', 'expected 32 hex characters');
      adTag = tag.toLowerCase();
    }
    const secretHex = str(v.secret) ?? generateSecret().toString('hex');
    if (!parseHexSecret(secretHex)) throw new ConfigError('--secret', 'expected 32 hex characters');
    let publicHost = str(v['public-host']) ?? null;
    if (publicHost !== null) {
      const bare = publicHost.replace(/^\[(.*)\]$/, '$1');
      if (!isIP(bare) && !isDomainName(bare))
        throw new ConfigError('--public-host', 'expected a host name or an IP address users can reach');
      publicHost = bare.toLowerCase();
    }
    const stateDir = str(v['state-dir']) ?? null;
    if (stateDir !== null && (stateDir === '' || /[\0-\x1f]/.test(stateDir)))
      throw new ConfigError('--state-dir', 'expected a folder path');
    if (adminListenText !== undefined && !isListenAddress(adminListenText))
      throw new ConfigError('--admin-listen', 'expected HOST:PORT such as 127.0.0.1:9101');
    if (adminTokenText !== undefined && !TOKEN_PATTERN.test(adminTokenText))
      throw new ConfigError('--admin-token', 'expected 16 to 256 characters without spaces or quotes');

    const text = initConfigText({
      port,
      secretHex: secretHex.toLowerCase(),
      protocols,
      domain,
      adTag,
      adminToken: admin === false ? null : (adminTokenText ?? randomBytes(24).toString('hex')),
      adminListen: adminListenText,
      publicHost,
      stateDir,
    });
    // The file is checked by the same parser the proxy uses before it is written.
    const config = parseConfig(text, { file });

    if (domain !== null && !v['no-check']) {
      const results = await ctx.checkCover(config, config.listeners[0]!, domain);
      for (const r of results) ctx.out(formatResult(r));
      if (results.some((r) => r.status === 'fail')) {
        ctx.err(
          `mtproxy init: the cover domain ${domain} failed the check; choose another with --domain, or --no-check to keep it`,
        );
        return 1;
      }
    }

    try {
      await writeFile(file, text, { flag: v.force ? 'w' : 'wx', mode: 0o600 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ConfigError(
        file,
        code === 'EEXIST'
          ? 'already exists (use --force to overwrite it, or --config FILE for another)'
          : `cannot write the config: ${(e as Error).message}`,
      );
    }
    ctx.out(`Wrote ${file}`);
    if (v['no-links']) return 0;

    // Only a listener without public_host needs the address found (which may ask ip_lookup_url).
    const found =
      listenersNeedingAddress(config).length > 0
        ? await ctx.publicAddress(config)
        : { host: null, ipv6: null, source: 'interface' as const };
    const links = configLinks(
      config,
      undefined,
      () => found.host,
      () => found.ipv6,
    );
    const under = v['no-qr']
      ? undefined
      : (link: (typeof links)[number]) => [qrTerminal(qrMatrix(link.https))];
    for (const line of linkLines(links, () => formatHostPort(config.listeners[0]!), under)) ctx.out(line);
    for (const line of publicAddressNotes(config, found)) ctx.out(line);
    const relative = path.relative(ctx.cwd, file) || file;
    const privileged = port < 1024 ? ` (port ${port} needs root or CAP_NET_BIND_SERVICE)` : '';
    ctx.out(
      `Next: start the proxy with \`mtproxy run --config ${relative}\`${privileged}, then check it with \`mtproxy doctor --config ${relative}\`.`,
    );
    return 0;
  },
};
