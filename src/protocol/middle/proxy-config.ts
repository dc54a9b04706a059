/**
 * Telegram's published middle-proxy configuration (getProxyConfig / getProxyConfigV6) and proxy secret
 * (getProxySecret). Pure parsing and validation: text or bytes in, a value or a ProtocolError out.
 *
 * Config text: one directive per line, `proxy_for <dc> <host>:<port>;` and `default <dc>;`; comments (#) and
 * unknown directives are ignored. A config without a single usable `proxy_for` is rejected as garbage, so a
 * captive portal or an error page never replaces a good config.
 */
import { isUtf8 } from 'node:buffer';
import { isIP } from 'node:net';
import { ProtocolError } from '../errors.ts';

/** A middle proxy's address (the same shape as the config's HostPort). */
export interface HostPort {
  host: string;
  port: number;
}

export interface ProxyConfig {
  /** DC id (signed; negative = media) -> middle proxy addresses. */
  dcs: Map<number, HostPort[]>;
  defaultDc: number | null;
}

const MAX_CONFIG_BYTES = 1024 * 1024;
export const MIN_PROXY_SECRET = 32;
export const MAX_PROXY_SECRET = 1024;

function bad(message: string): ProtocolError {
  return new ProtocolError('MTP_ERR_RPC_BAD_MESSAGE', message);
}

function parseDcId(text: string): number {
  if (!/^-?\d{1,5}$/.test(text)) throw bad('bad DC id in proxy config');
  return Number(text);
}

export function parseProxyConfig(text: string): ProxyConfig {
  if (text.length > MAX_CONFIG_BYTES) throw bad('proxy config too large');
  const dcs = new Map<number, HostPort[]>();
  let defaultDc: number | null = null;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const tokens = line.replace(/;\s*$/, '').trim().split(/\s+/);
    if (tokens[0] === 'default') {
      if (tokens.length !== 2) throw bad('bad default line in proxy config');
      defaultDc = parseDcId(tokens[1]);
    } else if (tokens[0] === 'proxy_for') {
      if (tokens.length !== 3) throw bad('bad proxy_for line in proxy config');
      const dc = parseDcId(tokens[1]);
      const colon = tokens[2].lastIndexOf(':');
      if (colon <= 0) throw bad('bad proxy_for address in proxy config');
      let host = tokens[2].slice(0, colon);
      if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
      const portText = tokens[2].slice(colon + 1);
      const port = Number(portText);
      if (!isIP(host) || !/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) {
        throw bad('bad proxy_for address in proxy config');
      }
      let list = dcs.get(dc);
      if (!list) dcs.set(dc, (list = []));
      list.push({ host, port });
    }
  }
  if (dcs.size === 0) throw bad('proxy config has no proxy_for lines');
  return { dcs, defaultDc };
}

export function validateProxySecret(secret: Buffer): Buffer {
  if (secret.length < MIN_PROXY_SECRET || secret.length > MAX_PROXY_SECRET) {
    throw bad(`proxy secret of ${secret.length} bytes`);
  }
  // An HTML or JSON error page is not a secret, even when its length happens to fit. The secret is random
  // bytes, so it may well begin with "<" or "{" itself: only text (UTF-8 without control characters) that
  // begins so is taken for a document.
  const head = secret.subarray(0, 16).toString('latin1').trimStart();
  if ((head.startsWith('<') || head.startsWith('{')) && isText(secret))
    throw bad('proxy secret looks like a document');
  return secret;
}

/** UTF-8 text without control characters other than whitespace: what a document is and random bytes are not. */
function isText(data: Buffer): boolean {
  if (!isUtf8(data)) return false;
  for (const byte of data) if ((byte < 0x20 && (byte < 0x09 || byte > 0x0d)) || byte === 0x7f) return false;
  return true;
}

/** Serialise back to the published text format (used for the state-folder cache and tests). */
export function formatProxyConfig(cfg: ProxyConfig): string {
  const lines: string[] = [];
  if (cfg.defaultDc !== null) lines.push(`default ${cfg.defaultDc};`);
  for (const [dc, list] of cfg.dcs) {
    for (const a of list)
      lines.push(`proxy_for ${dc} ${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port};`);
  }
  return lines.join('\n') + '\n';
}
