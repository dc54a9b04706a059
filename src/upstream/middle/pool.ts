/**
 * The RPC links of one DC. Keeps a minimum open, puts each new client on the least-loaded ready link, grows
 * with the clients-per-connection bound, reconnects with backoff, moves the clients of a link Telegram
 * closed to another link (new conn_id there; the client does not notice), and gives back links above the
 * minimum that carried no client for `upstream.idle_connection_timeout`.
 */
import type { Config } from '../../config/types.ts';
import type { Logger } from '../../log.ts';
import type { Stats } from '../../metrics/stats.ts';
import { type LinkClient, RpcLink } from './link.ts';
import type { TelegramConfigSource } from './telegram-config.ts';
import { UpstreamError } from '../errors.ts';

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
/**
 * The idle sweep runs every quarter of the idle timeout (so an idle link goes within 1.25 x the timeout),
 * at least this rarely and at most this often.
 */
const IDLE_SWEEP_MAX_MS = 10_000;
const IDLE_SWEEP_MIN_MS = 10;

interface Waiter {
  client: PoolClient;
  done: PlaceCallback;
  timer: NodeJS.Timeout;
  /** Told as soon as an attempt to open a link fails (the caller has somewhere else to go). */
  failFast: boolean;
}

function upstreamError(code: string, message: string): Error {
  return new UpstreamError(code, message);
}

export class DcPool {
  readonly dcId: number;
  private readonly links = new Set<RpcLink>();
  private pending = 0;
  private waiters: Waiter[] = [];
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
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
    this.followIdleTimeout();
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
    // openLink adds no link when the DC has no address left; stop rather than spin on an unchanged condition
    while (this.links.size < want && this.pending < MAX_PENDING && this.retryTimer === null) {
      if (!this.openLink()) break;
    }
  }

  /**
   * Put a client on a ready link, see pickLink (synchronously when one exists, else when one becomes ready).
   * `done(null)` after the client got `onAttached`; `done(err)` when no link could be had in time. With
   * `failFast` (the caller can serve the client another way), `done(err)` comes as soon as the DC is known to be
   * down: at once when the last attempt to open a link failed, else when the next one fails.
   */
  place(client: PoolClient, done: PlaceCallback, failFast = false): void {
    if (this.closed) {
      done(upstreamError('MTP_ERR_UPSTREAM_CLOSED', 'upstream is shutting down'));
      return;
    }
    const link = this.pickLink();
    if (link) {
      this.attach(link, client);
      done(null);
      return;
    }
    if (failFast && this.failures > 0) {
      done(upstreamError('MTP_ERR_MIDDLE_DOWN', `no middle proxy of DC ${this.dcId} answers`));
      this.ensureMinimum();
      return;
    }
    const timeoutMs = this.getConfig().upstream.connectTimeoutMs + HANDSHAKE_TIMEOUT_MS;
    const waiter: Waiter = {
      client,
      done,
      failFast,
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
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.done(upstreamError('MTP_ERR_UPSTREAM_CLOSED', 'upstream is shutting down'));
    }
    this.waiters = [];
    for (const l of [...this.links]) l.close('shutdown');
  }

  /**
   * (Re)arm the idle sweep for the configured timeout, or stop it when shrinking is off. Each sweep re-arms it
   * from the config of the moment; a reload calls this so a new timeout applies at once.
   */
  followIdleTimeout(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const timeoutMs = this.getConfig().upstream.idleConnectionTimeoutMs;
    if (this.closed || timeoutMs <= 0) return;
    const every = Math.min(IDLE_SWEEP_MAX_MS, Math.max(IDLE_SWEEP_MIN_MS, Math.ceil(timeoutMs / 4)));
    this.idleTimer = setTimeout(this.onIdleSweep, every);
    this.idleTimer.unref();
  }

  private readonly onIdleSweep = (): void => {
    this.idleTimer = null;
    this.closeIdleLinks();
    this.followIdleTimeout();
  };

  /**
   * Give back the links that have carried no client for the idle timeout, longest idle first, as long as more
   * links are ready than the minimum and than the clients need. Returns how many were closed.
   *
   * All of it runs in one synchronous pass, as does placing a client: no client can be attached between the
   * check that a link is empty and its retirement, and a retired link has left `links` before this returns,
   * so a later client cannot be placed on it. (retire() itself refuses a link with clients, too.)
   */
  closeIdleLinks(now = performance.now()): number {
    const timeoutMs = this.getConfig().upstream.idleConnectionTimeoutMs;
    if (this.closed || timeoutMs <= 0) return 0;
    let ready = 0;
    let clients = 0;
    const idle: RpcLink[] = [];
    for (const l of this.links) {
      if (!l.ready) continue;
      ready++;
      clients += l.load;
      if (l.load === 0 && now - l.emptySince >= timeoutMs) idle.push(l);
    }
    const keep = this.linksNeeded(clients);
    idle.sort((a, b) => a.emptySince - b.emptySince);
    let closed = 0;
    for (const l of idle) {
      if (ready <= keep) break;
      if (!l.retire()) continue;
      ready--;
      closed++;
    }
    if (closed > 0) {
      this.stats.dc(this.dcId).idleLinksClosed += closed;
      this.log.debug({ dc: this.dcId, closed, ready }, 'idle middle-proxy links closed');
    }
    return closed;
  }

  /**
   * Where a new client goes: the least-loaded ready link, with one exception. While the pool could give links
   * back (shrinking on, more links ready than the minimum), an empty link is passed over when a link that
   * already carries clients has room under clients_per_connection. Plain least-loaded placement would always
   * pick exactly the empty link, so a surplus link would never stay empty long enough to be closed. When no
   * busy link has room, the empty one is used after all: reviving it beats opening another.
   */
  private pickLink(): RpcLink | null {
    const { upstream } = this.getConfig();
    let least: RpcLink | null = null;
    let leastBusyWithRoom: RpcLink | null = null;
    let ready = 0;
    for (const l of this.links) {
      if (!l.ready) continue;
      ready++;
      if (least === null || l.load < least.load) least = l;
      if (l.load > 0 && l.load < upstream.clientsPerConnection) {
        if (leastBusyWithRoom === null || l.load < leastBusyWithRoom.load) leastBusyWithRoom = l;
      }
    }
    const shrinking = upstream.idleConnectionTimeoutMs > 0 && ready > upstream.minConnectionsPerDc;
    if (least === null || least.load > 0 || !shrinking) return least;
    return leastBusyWithRoom ?? least;
  }

  /** Links the pool should have for this many clients. */
  private linksNeeded(clients: number): number {
    const { upstream } = this.getConfig();
    return Math.max(upstream.minConnectionsPerDc, Math.ceil(clients / upstream.clientsPerConnection));
  }

  private attach(link: RpcLink, client: PoolClient): void {
    link.attach(client);
    client.onAttached(link);
    this.grow();
  }

  /** Open more links when the ready ones carry more than the bound allows. */
  private grow(): void {
    let clients = 0;
    for (const l of this.links) clients += l.load;
    const target = this.linksNeeded(clients);
    while (this.links.size < target && this.pending < MAX_PENDING && this.retryTimer === null) {
      if (!this.openLink()) break;
    }
  }

  /** False when no link could be opened (no config or no address for this DC). */
  private openLink(): boolean {
    const state = this.source.current;
    const addresses = this.source.addressesFor(this.dcId);
    if (!state || addresses.length === 0) {
      this.failWaiters(upstreamError('MTP_ERR_NO_DC', `no middle proxy known for DC ${this.dcId}`));
      return false;
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
      stallTimeoutMs: this.stallTimeoutMs,
      log: this.log,
      stats: this.stats.dc(this.dcId),
      onReady: this.onLinkReady,
      onClosed: this.onLinkClosed,
    });
    this.links.add(link);
    return true;
  }

  private readonly stallTimeoutMs = (): number => this.getConfig().upstream.stallTimeoutMs;

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
      const target = this.pickLink() ?? link;
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
        if (!this.closed && !this.hasReadyLink()) {
          const err = upstreamError('MTP_ERR_MIDDLE_DOWN', `no middle proxy of DC ${this.dcId} answers`);
          this.failWaiters(err, true);
        }
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

  private hasReadyLink(): boolean {
    for (const l of this.links) if (l.ready) return true;
    return false;
  }

  /** Fail the waiting clients (only those placed with failFast, when `onlyFailFast`). */
  private failWaiters(err: Error, onlyFailFast = false): void {
    const waiters = onlyFailFast ? this.waiters.filter((w) => w.failFast) : this.waiters;
    this.waiters = onlyFailFast ? this.waiters.filter((w) => !w.failFast) : [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.done(err);
    }
  }
}
