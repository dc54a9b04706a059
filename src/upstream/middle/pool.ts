/**
 * The RPC links of one DC. Keeps a minimum open, puts each new client on the least-loaded ready link, grows
 * with the clients-per-connection bound, reconnects with backoff, and moves the clients of a link Telegram
 * closed to another link (new conn_id there; the client does not notice).
 */
import type { Config } from '../../config/types.ts';
import type { Logger } from '../../log.ts';
import type { Stats } from '../../metrics/stats.ts';
import { type LinkClient, RpcLink } from './link.ts';
import type { TelegramConfigSource } from './telegram-config.ts';

/** A client the pool can place: a link client that is told which link it is on now. */
export interface PoolClient extends LinkClient {
  onAttached(link: RpcLink): void;
}

export type PlaceCallback = (err: Error | null) => void;

const HANDSHAKE_TIMEOUT_MS = 8_000;
const BACKOFF_FIRST_MS = 300;
const BACKOFF_MAX_MS = 10_000;
/** Links being opened at once, at most (bursts of new clients). */
const MAX_PENDING = 4;

interface Waiter {
  client: PoolClient;
  done: PlaceCallback;
  timer: NodeJS.Timeout;
}

function upstreamError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export class DcPool {
  readonly dcId: number;
  private readonly links = new Set<RpcLink>();
  private pending = 0;
  private waiters: Waiter[] = [];
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly source: TelegramConfigSource;
  private readonly getConfig: () => Config;
  private readonly log: Logger;
  private readonly stats: Stats;
  /** Links ever opened (ready or not); tests and status read it. */
  opened = 0;

  constructor(
    dcId: number,
    source: TelegramConfigSource,
    getConfig: () => Config,
    log: Logger,
    stats: Stats,
  ) {
    this.dcId = dcId;
    this.source = source;
    this.getConfig = getConfig;
    this.log = log;
    this.stats = stats;
  }

  /** Ready links, their client counts. */
  status(): { ready: number; pending: number; clients: number; perLink: number[] } {
    const perLink: number[] = [];
    for (const l of this.links) if (l.ready) perLink.push(l.load);
    return {
      ready: perLink.length,
      pending: this.pending,
      clients: perLink.reduce((a, b) => a + b, 0),
      perLink,
    };
  }

  /** Open links up to the minimum (used at start and after losses). */
  ensureMinimum(): void {
    if (this.closed) return;
    const min = this.getConfig().upstream.minConnectionsPerDc;
    const want = Math.max(min, this.waiters.length > 0 ? 1 : 0);
    while (this.links.size < want && this.pending < MAX_PENDING && this.retryTimer === null) this.openLink();
  }

  /**
   * Put a client on the least-loaded ready link (synchronously when one exists, else when one becomes ready).
   * `done(null)` after the client got `onAttached`; `done(err)` when no link could be had in time.
   */
  place(client: PoolClient, done: PlaceCallback): void {
    if (this.closed) {
      done(upstreamError('MTP_ERR_UPSTREAM_CLOSED', 'upstream is shutting down'));
      return;
    }
    const link = this.leastLoaded();
    if (link) {
      this.attach(link, client);
      done(null);
      return;
    }
    const timeoutMs = this.getConfig().upstream.connectTimeoutMs + HANDSHAKE_TIMEOUT_MS;
    const waiter: Waiter = {
      client,
      done,
      timer: setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        done(upstreamError('MTP_ERR_UPSTREAM_CONNECT', `no middle-proxy link for DC ${this.dcId}`));
      }, timeoutMs),
    };
    this.waiters.push(waiter);
    this.ensureMinimum();
  }

  /** A client waiting for a link ended before it got one. */
  cancel(client: PoolClient): void {
    const w = this.waiters.find((x) => x.client === client);
    if (!w) return;
    clearTimeout(w.timer);
    this.waiters = this.waiters.filter((x) => x !== w);
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.done(upstreamError('MTP_ERR_UPSTREAM_CLOSED', 'upstream is shutting down'));
    }
    this.waiters = [];
    for (const l of [...this.links]) l.close('shutdown');
  }

  private leastLoaded(exclude?: RpcLink): RpcLink | null {
    let best: RpcLink | null = null;
    for (const l of this.links) {
      if (!l.ready || l === exclude) continue;
      if (best === null || l.load < best.load) best = l;
    }
    return best;
  }

  private attach(link: RpcLink, client: PoolClient): void {
    link.attach(client);
    client.onAttached(link);
    this.grow();
  }

  /** Open more links when the ready ones carry more than the bound allows. */
  private grow(): void {
    const { upstream } = this.getConfig();
    let clients = 0;
    for (const l of this.links) clients += l.load;
    const target = Math.max(upstream.minConnectionsPerDc, Math.ceil(clients / upstream.clientsPerConnection));
    while (this.links.size < target && this.pending < MAX_PENDING && this.retryTimer === null)
      this.openLink();
  }

  private openLink(): void {
    const state = this.source.current;
    const addresses = this.source.addressesFor(this.dcId);
    if (!state || addresses.length === 0) {
      this.failWaiters(upstreamError('MTP_ERR_NO_DC', `no middle proxy known for DC ${this.dcId}`));
      return;
    }
    const target = addresses[Math.floor(Math.random() * addresses.length)];
    const config = this.getConfig();
    this.pending++;
    this.opened++;
    const link = new RpcLink({
      host: target.host,
      port: target.port,
      dcId: this.dcId,
      secret: state.secret,
      clientIpFor: (ip) => this.source.clientIpFor(ip),
      connectTimeoutMs: config.upstream.connectTimeoutMs,
      handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
      log: this.log,
      stats: this.stats.dc(this.dcId),
      onReady: this.onLinkReady,
      onClosed: this.onLinkClosed,
    });
    this.links.add(link);
  }

  private readonly onLinkReady = (link: RpcLink): void => {
    this.pending--;
    this.failures = 0;
    if (this.closed) {
      link.close('shutdown');
      return;
    }
    this.log.debug(
      { dc: this.dcId, link: link.id, host: link.host, port: link.port },
      'middle-proxy link ready',
    );
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      const target = this.leastLoaded() ?? link;
      this.attach(target, w.client);
      w.done(null);
    }
    this.ensureMinimum();
  };

  private readonly onLinkClosed = (
    link: RpcLink,
    orphans: LinkClient[],
    migrate: boolean,
    reason: string,
  ): void => {
    this.links.delete(link);
    const dcStats = this.stats.dc(this.dcId);
    if (!link.wasReady) {
      this.pending--;
      if (reason !== 'shutdown') {
        // Connect or handshake failure: back off before the next attempt.
        this.failures++;
        this.scheduleRetry();
      }
    }
    if (this.closed) {
      if (migrate) for (const c of orphans) c.onClosedByUpstream('shutdown');
      return;
    }
    if (orphans.length > 0) {
      this.log.debug(
        { dc: this.dcId, link: link.id, clients: orphans.length, migrate, reason },
        'middle-proxy link closed',
      );
    }
    if (migrate) {
      for (const c of orphans) {
        const client = c as PoolClient;
        this.place(client, (err) => {
          if (err) {
            dcStats.migrationFailures++;
            client.onClosedByUpstream('migration_failed');
          } else {
            dcStats.migrations++;
          }
        });
      }
    }
    this.ensureMinimum();
  };

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer !== null) return;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(this.failures - 1, 10));
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = null;
        this.ensureMinimum();
      },
      delay * (0.75 + Math.random() / 2),
    );
    this.retryTimer.unref();
  }

  private failWaiters(err: Error): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.done(err);
    }
  }
}
