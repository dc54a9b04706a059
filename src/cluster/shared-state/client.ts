/**
 * The connection to the fleet's Redis (or Valkey): one connection for commands, one for pub/sub.
 *
 * Nothing here may stall a session: commands are never queued while the link is down (they fail at once),
 * every command has a timeout, and whoever sends one decides locally when it fails. The link says when it
 * goes down and comes back (`onChange`), counts its errors for the metrics and logs at most one line per
 * kind every 30 seconds. The URL may carry a password: it is never logged.
 */
import { type AbstractConnector, Redis, type RedisOptions } from 'ioredis';
import * as standaloneModule from 'ioredis/built/connectors/StandaloneConnector.js';
import type { ClusterConfig } from '../../config/types.ts';
import type { Logger } from '../../log.ts';
import type { Stats } from '../../metrics/stats.ts';
import { LogLimiter } from '../../runtime/log-limit.ts';
import { readSettingFile } from '../setting-file.ts';

const LOG_EVERY_MS = 30_000;
const MAX_RECONNECT_DELAY_MS = 2000;

export type LinkListener = (up: boolean) => void;
export type MessageListener = (channel: string, message: string) => void;

/** What a log line may say about the Redis address: host and port, never the credentials. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}

/** The client's own connector (a CommonJS default export, seen from here as `default` or `default.default`). */
const StandaloneConnector = ((standaloneModule as unknown as { default: { default?: unknown } }).default
  .default ?? (standaloneModule as unknown as { default: unknown }).default) as new (
  options: unknown,
) => AbstractConnector;

/**
 * The client listens for one error per socket. A TLS socket can report two (our refusal of the server's
 * certificate, then the server's alert), and an unheard second one would end the process: every socket keeps
 * a listener of its own, and the client still hears the first error.
 */
const GuardedConnector = function guardedConnector(options: unknown): AbstractConnector {
  const connector = new StandaloneConnector(options);
  const connect = connector.connect.bind(connector);
  connector.connect = async (emit) => {
    const stream = await connect(emit);
    stream.on('error', () => {});
    return stream;
  };
  return connector;
} as unknown as NonNullable<RedisOptions['Connector']>;

export function redisOptions(cfg: ClusterConfig): RedisOptions {
  // rediss:// alone verifies the server against the system's CAs; redis_ca names a private one.
  const tls = cfg.redisCa !== null ? { tls: { ca: readSettingFile('redis_ca', cfg.redisCa) } } : {};
  return {
    ...tls,
    Connector: GuardedConnector,
    lazyConnect: true,
    // A command sent while disconnected fails at once instead of waiting in a queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: cfg.timeoutMs,
    connectTimeout: Math.max(1000, cfg.timeoutMs * 4),
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), MAX_RECONNECT_DELAY_MS),
    // The subscriber gets its channels back after a reconnect.
    autoResubscribe: true,
    connectionName: `mtproxy:${cfg.nodeName}`,
  };
}

export class SharedStateLink {
  readonly config: ClusterConfig;
  readonly redis: Redis;
  readonly #sub: Redis;
  readonly #log: Logger;
  readonly #stats: Stats | null;
  readonly #limiter = new LogLimiter(LOG_EVERY_MS);
  readonly #listeners = new Set<LinkListener>();
  readonly #messageListeners = new Set<MessageListener>();
  readonly #channels = new Set<string>();
  readonly #resubscribed = new Set<() => void>();
  #subReadyBefore = false;
  #up = false;
  #closed = false;
  #downSince = Date.now();
  /** Errors by kind since start (metrics and status). */
  readonly errors = new Map<string, number>();

  constructor(cfg: ClusterConfig, log: Logger, stats: Stats | null) {
    if (cfg.redis === null) throw new RangeError('cluster.redis is not set');
    this.config = cfg;
    this.#log = log;
    this.#stats = stats;
    const options = redisOptions(cfg);
    this.redis = new Redis(cfg.redis, options);
    this.#sub = new Redis(cfg.redis, { ...options, connectionName: `mtproxy:${cfg.nodeName}:sub` });
    if (stats) stats.clusterRedisUp = 0;
    this.redis.on('ready', () => this.#setUp(true));
    this.redis.on('close', () => this.#setUp(false));
    this.redis.on('error', (err: Error) => this.#connectionError(err));
    this.#sub.on('error', (err: Error) => this.#connectionError(err));
    this.#sub.on('ready', () => {
      if (this.#channels.size > 0)
        this.#sub.subscribe(...this.#channels).catch((e) => this.fail('subscribe', e));
      // Announcements sent while the subscriber was away are lost: whoever listens re-reads the state.
      if (this.#subReadyBefore) for (const l of [...this.#resubscribed]) this.#safely(l);
      this.#subReadyBefore = true;
    });
    this.#sub.on('message', (channel: string, message: string) => {
      for (const l of this.#messageListeners) {
        try {
          l(channel, message);
        } catch (err) {
          this.fail('message', err);
        }
      }
    });
  }

  /** Start connecting (returns at once; `whenUp` waits for the first connection). */
  connect(): void {
    this.redis.connect().catch(() => {});
    this.#sub.connect().catch(() => {});
  }

  /** Resolves true once connected, false after `ms` without a connection (the node starts anyway). */
  whenUp(ms: number): Promise<boolean> {
    if (this.#up) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(listener);
        resolve(false);
      }, ms);
      timer.unref();
      const listener: LinkListener = (up) => {
        if (!up) return;
        clearTimeout(timer);
        this.#listeners.delete(listener);
        resolve(true);
      };
      this.#listeners.add(listener);
    });
  }

  get up(): boolean {
    return this.#up;
  }

  /** When the link went down (ms since the epoch); meaningful while `up` is false. */
  get downSince(): number {
    return this.#downSince;
  }

  key(...parts: string[]): string {
    return this.config.prefix + parts.join(':');
  }

  onChange(listener: LinkListener): void {
    this.#listeners.add(listener);
  }

  /** `listener` runs each time the subscriber connection is back after a break (messages may have been missed). */
  onResubscribed(listener: () => void): void {
    this.#resubscribed.add(listener);
  }

  #safely(l: () => void): void {
    try {
      l();
    } catch (err) {
      this.fail('listener', err);
    }
  }

  /** Subscribe to `channel` (a full name, prefix included); messages of every channel go to `listener`. */
  subscribe(channel: string, listener: MessageListener): void {
    this.#channels.add(channel);
    this.#messageListeners.add(listener);
    if (this.#sub.status === 'ready') this.#sub.subscribe(channel).catch((e) => this.fail('subscribe', e));
  }

  /** A command failed: count it, log it now and then, and let the caller fall back to local state. */
  fail(kind: string, err: unknown): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
    if (this.#stats)
      this.#stats.clusterRedisErrors.set(kind, (this.#stats.clusterRedisErrors.get(kind) ?? 0) + 1);
    const left = this.#limiter.take(kind);
    if (left === null) return;
    this.#log.warn(
      { kind, err: (err as Error)?.message ?? String(err), suppressed: left },
      'cluster: a Redis command failed; deciding from local state',
    );
  }

  #connectionError(err: Error): void {
    if (this.#closed) return;
    this.errors.set('connection', (this.errors.get('connection') ?? 0) + 1);
    if (this.#stats)
      this.#stats.clusterRedisErrors.set(
        'connection',
        (this.#stats.clusterRedisErrors.get('connection') ?? 0) + 1,
      );
    const left = this.#limiter.take('connection');
    if (left === null) return;
    this.#log.warn(
      { redis: redactedUrl(this.config.redis!), err: err.message, suppressed: left },
      'cluster: Redis unreachable; serving from local state',
    );
  }

  #setUp(up: boolean): void {
    if (up === this.#up || this.#closed) return;
    this.#up = up;
    if (this.#stats) this.#stats.clusterRedisUp = up ? 1 : 0;
    if (up) {
      this.#log.info(
        { redis: redactedUrl(this.config.redis!), downMs: Date.now() - this.#downSince },
        'cluster: connected to Redis',
      );
    } else {
      this.#downSince = Date.now();
      this.#log.warn({ redis: redactedUrl(this.config.redis!) }, 'cluster: lost the Redis connection');
    }
    for (const l of [...this.#listeners]) {
      try {
        l(up);
      } catch (err) {
        this.fail('listener', err);
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#up = false;
    if (this.#stats) this.#stats.clusterRedisUp = 0;
    await Promise.allSettled([this.redis.quit(), this.#sub.quit()]);
    this.redis.disconnect();
    this.#sub.disconnect();
  }
}
