/**
 * Telegram's middle-proxy configuration as the running proxy sees it: the proxy secret and the DC -> middle
 * proxy address lists, from a URL or a local file, refreshed periodically, and the external IPv4 used in the
 * link key derivation.
 *
 * A fetch that fails or returns garbage keeps what we have (logged and counted in stats.configFetches). The
 * last good copies live in the state folder, so the proxy starts even when Telegram's site is unreachable.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import path from 'node:path';
import type { Config, HostPort } from '../../config/types.ts';
import type { Logger } from '../../log.ts';
import type { Stats } from '../../metrics/stats.ts';
import {
  formatProxyConfig,
  type ProxyConfig,
  parseProxyConfig,
  validateProxySecret,
} from '../../protocol/middle/proxy-config.ts';
import { isUrl, readSource } from '../../runtime/read-source.ts';
import { unmapIpv4 } from '../../runtime/sockets.ts';
import { UpstreamError } from '../errors.ts';

export type ConfigItem = 'proxy_secret' | 'proxy_config' | 'proxy_config_v6' | 'external_ip';

const CACHE_FILES: Record<Exclude<ConfigItem, 'external_ip'>, string> = {
  proxy_secret: 'telegram-proxy-secret.bin',
  proxy_config: 'telegram-proxy-config.txt',
  proxy_config_v6: 'telegram-proxy-config-v6.txt',
};

export interface TelegramState {
  secret: Buffer;
  v4: ProxyConfig;
  v6: ProxyConfig | null;
}

/** A URL or a file named by the config, with the config's timeout. */
function readConfigSource(config: Config, source: string): Promise<Buffer> {
  return readSource(source, { configFile: config.file, timeoutMs: config.telegram.httpTimeoutMs });
}

/**
 * Maps the local address of a link to the IPv4 Telegram sees: the configured external IP ("a.b.c.d", or
 * "local:public" to translate only that local address), else the detected one, else the local address itself.
 */
export function translateLocalIp(
  localIp: string,
  externalIp: string | null,
  detectedIp: string | null,
): string {
  const local = unmapIpv4(localIp);
  if (!isIPv4(local)) return local;
  if (externalIp) {
    const colon = externalIp.indexOf(':');
    if (colon < 0) return externalIp;
    return externalIp.slice(0, colon) === local ? externalIp.slice(colon + 1) : local;
  }
  return detectedIp ?? local;
}

export class TelegramConfigSource {
  private state: TelegramState | null = null;
  /** When the current state was last confirmed by a source (ms since epoch; 0 = only the cache so far). */
  updatedAt = 0;
  private detectedIp: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** The refresh interval the pending timer was set with. */
  private scheduledIntervalMs = 0;
  private refreshing: Promise<void> | null = null;
  /** stop() was called: a refresh still in flight must not arm the next one. */
  private stopped = false;
  private readonly getConfig: () => Config;
  private readonly log: Logger;
  private readonly stats: Stats;
  /** Called after a refresh brought a new state (pools pick up new addresses). */
  onUpdate: ((state: TelegramState) => void) | null = null;

  constructor(getConfig: () => Config, log: Logger, stats: Stats) {
    this.getConfig = getConfig;
    this.log = log;
    this.stats = stats;
  }

  get current(): TelegramState | null {
    return this.state;
  }

  /** The IPv4 Telegram sees for a link bound to `localIp`. */
  clientIpFor(localIp: string): string {
    return translateLocalIp(localIp, this.getConfig().telegram.externalIp, this.detectedIp);
  }

  /** Addresses of the middle proxies for a DC id, honouring upstream.prefer_ipv6. */
  addressesFor(dcId: number): HostPort[] {
    const s = this.state;
    if (!s) return [];
    if (this.getConfig().upstream.preferIpv6) {
      const v6 = s.v6?.dcs.get(dcId);
      if (v6 && v6.length > 0) return v6;
    }
    return s.v4.dcs.get(dcId) ?? [];
  }

  /** The DC a client asking for `dcId` is served by, or null when there is none. */
  resolveDc(dcId: number): number | null {
    const s = this.state;
    if (!s) return null;
    if (s.v4.dcs.has(dcId) || (this.getConfig().upstream.preferIpv6 && s.v6?.dcs.has(dcId))) return dcId;
    const fallback = s.v4.defaultDc ?? this.getConfig().upstream.defaultDc;
    return s.v4.dcs.has(fallback) ? fallback : null;
  }

  /**
   * Load the cached copies, then try the sources. Resolves once a usable state exists; rejects when neither the
   * cache nor the sources give one (middle mode cannot work without it).
   */
  async start(): Promise<void> {
    this.stopped = false;
    await this.loadCache();
    await this.refresh();
    if (!this.state) throw new UpstreamError('MTP_ERR_NO_CONFIG', 'no Telegram proxy config available');
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    // A refresh that was in flight when stop() came (or a start() still loading) ends here, instead of
    // refreshing a closed upstream forever and writing into a state folder that may be gone by then.
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.scheduledIntervalMs = this.getConfig().telegram.refreshIntervalMs;
    this.timer = setTimeout(() => {
      this.refresh().finally(() => this.schedule());
    }, this.scheduledIntervalMs);
    this.timer.unref();
  }

  /** A reload changed refresh_interval: the next refresh comes after the new interval, not the old one. */
  followInterval(): void {
    if (this.timer && this.getConfig().telegram.refreshIntervalMs !== this.scheduledIntervalMs)
      this.schedule();
  }

  /** Fetch everything once; concurrent callers share one run. Never rejects. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const config = this.getConfig();
    await this.lookupExternalIp(config);
    const secret = await this.fetchItem(
      config,
      'proxy_secret',
      config.telegram.proxySecret,
      validateProxySecret,
    );
    const v4 = await this.fetchItem(config, 'proxy_config', config.telegram.proxyConfig, (b) =>
      parseProxyConfig(b.toString('utf8')),
    );
    const v6 = config.upstream.preferIpv6
      ? await this.fetchItem(config, 'proxy_config_v6', config.telegram.proxyConfigV6, (b) =>
          parseProxyConfig(b.toString('utf8')),
        )
      : null;
    const prev = this.state;
    const nextSecret = secret ?? prev?.secret;
    const nextV4 = v4 ?? prev?.v4;
    if (!nextSecret || !nextV4) return;
    this.state = { secret: nextSecret, v4: nextV4, v6: v6 ?? prev?.v6 ?? null };
    if (secret && v4) this.updatedAt = Date.now();
    if (secret) await this.saveCache(config, 'proxy_secret', secret);
    if (v4) await this.saveCache(config, 'proxy_config', Buffer.from(formatProxyConfig(v4)));
    if (v6) await this.saveCache(config, 'proxy_config_v6', Buffer.from(formatProxyConfig(v6)));
    if (secret || v4 || v6) this.onUpdate?.(this.state);
  }

  private async fetchItem<T>(
    config: Config,
    item: ConfigItem,
    source: string,
    parse: (data: Buffer) => T,
  ): Promise<T | null> {
    let data: Buffer;
    try {
      data = await readConfigSource(config, source);
    } catch (err) {
      this.stats.configFetch(item, 'error');
      this.log.warn(
        { item, source: describeSource(source), err: errorText(err) },
        'Telegram config fetch failed',
      );
      return null;
    }
    try {
      const value = parse(data);
      this.stats.configFetch(item, 'ok');
      return value;
    } catch (err) {
      this.stats.configFetch(item, 'invalid');
      this.log.warn(
        { item, source: describeSource(source), err: errorText(err) },
        'Telegram config fetch returned garbage',
      );
      return null;
    }
  }

  private async lookupExternalIp(config: Config): Promise<void> {
    if (config.telegram.externalIp || !config.telegram.ipLookupUrl) return;
    try {
      const text = (await readConfigSource(config, config.telegram.ipLookupUrl)).toString('utf8').trim();
      if (!isIPv4(text)) throw new Error('not an IPv4 address');
      this.detectedIp = text;
      this.stats.configFetch('external_ip', 'ok');
    } catch (err) {
      this.stats.configFetch('external_ip', 'error');
      this.log.warn(
        { err: errorText(err) },
        'external IP lookup failed; keeping the previous value or the local address',
      );
    }
  }

  private async loadCache(): Promise<void> {
    const config = this.getConfig();
    const dir = config.stateDir;
    const read = async (item: keyof typeof CACHE_FILES): Promise<Buffer | null> => {
      try {
        return await readFile(path.join(dir, CACHE_FILES[item]));
      } catch {
        return null;
      }
    };
    try {
      const secret = await read('proxy_secret');
      const v4 = await read('proxy_config');
      const v6 = await read('proxy_config_v6');
      if (!secret || !v4) return;
      const cached: TelegramState = {
        secret: validateProxySecret(secret),
        v4: parseProxyConfig(v4.toString('utf8')),
        v6: v6 ? parseProxyConfig(v6.toString('utf8')) : null,
      };
      // A fresher state (a refresh that completed while the files were read) is never replaced by the cache.
      this.state ??= cached;
      this.stats.configFetch('cache', 'ok');
    } catch (err) {
      this.stats.configFetch('cache', 'invalid');
      this.log.warn({ err: errorText(err) }, 'cached Telegram config unusable, ignoring it');
    }
  }

  private async saveCache(config: Config, item: keyof typeof CACHE_FILES, data: Buffer): Promise<void> {
    const file = path.join(config.stateDir, CACHE_FILES[item]);
    try {
      await mkdir(config.stateDir, { recursive: true });
      // Worker threads share the pid: a random suffix keeps their writes apart.
      const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
      await writeFile(tmp, data, { mode: 0o600 });
      await rename(tmp, file);
    } catch (err) {
      this.log.warn({ item, err: errorText(err) }, 'could not cache the Telegram config in the state folder');
    }
  }
}

function describeSource(source: string): string {
  // URLs may carry tokens in their query; log only scheme, host and path.
  if (!isUrl(source)) return source;
  try {
    const u = new URL(source);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return 'url';
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) return (err as { code?: string }).code ?? err.message;
  return String(err);
}
