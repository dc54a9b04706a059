/**
 * Middle-proxy mode: clients reach Telegram through its middle proxies over shared RPC links (one pool per DC).
 * Needed for the ad tag (promoted channel); also multiplexes many clients over few connections.
 *
 * The session decodes client frames and hands each packet to `writeFrame`; answers come back through
 * `sink.sendFrame` / `sink.sendQuickAck`. A client that stops reading cannot stall its link: the session drops
 * it once its own bounded backlog is full, while the link keeps serving everyone else.
 */
import type { Config } from '../../config/types.ts';
import type { Logger } from '../../log.ts';
import type { Stats } from '../../metrics/stats.ts';
import { IP_PORT_LENGTH, writeIpPort } from '../../protocol/middle/rpc.ts';
import type { TransportTag } from '../../protocol/obfuscated2.ts';
import type { ClientInfo, ClientSink, Upstream, UpstreamHandle } from '../types.ts';
import type { RpcLink } from './link.ts';
import { DcPool, type PoolClient } from './pool.ts';
import { TelegramConfigSource } from './telegram-config.ts';
import { errorCode } from '../../runtime/errors.ts';
import { UpstreamError } from '../errors.ts';

/**
 * At start the cached copy of Telegram's config is loaded before the fresh one is read: a client arriving in
 * between waits this long for the fresh one (the secret may have changed since the cache was written) before
 * the cache is used (the point of the cache: starting while Telegram's site is unreachable).
 */
const FRESH_CONFIG_WAIT_MS = 2000;

/** Why a middle-proxy open failed when serving the client directly instead makes sense (not a shutdown). */
const FALLBACK_CODES = new Set([
  'MTP_ERR_MIDDLE_DOWN',
  'MTP_ERR_UPSTREAM_CONNECT',
  'MTP_ERR_UPSTREAM_TIMEOUT',
  'MTP_ERR_NO_DC',
  'MTP_ERR_NO_CONFIG',
]);

/** A DC's fallback is logged at most this often (an outage sends every client of it that way). */
const FALLBACK_LOG_EVERY_MS = 60_000;

/** Client packets held while the client moves to another link; beyond this it is closed instead. */
const MAX_MIGRATION_BACKLOG = 1024 * 1024;

/** Resolves when `p` settles or after `ms`, whichever comes first; never rejects. */
function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    p.then(done, done);
  });
}

class MiddleClient implements UpstreamHandle, PoolClient {
  readonly framed = true;
  connId = 0;
  readonly transport: TransportTag;
  readonly clientAddress: Buffer;
  readonly adTag: Buffer | null;
  private link: RpcLink | null = null;
  private ended = false;
  /** Packets written while between links (migration), bounded. */
  private held: { payload: Buffer; quickAck: boolean }[] | null = null;
  private heldBytes = 0;
  /** writeFrame returned false: the session paused the client and waits for resumeClient. */
  private refused = false;
  /** The link's socket was full for our last packet; it tells us (onWritable) when it drains. */
  private linkFull = false;
  /**
   * The session cannot write our answers to the client as fast as they come (pause()). Its packets are then
   * refused, so a client that sends faster than it reads stops sending instead of filling its backlog until
   * it is dropped; answers Telegram sends on its own still count against that backlog.
   */
  private answersBacklogged = false;
  private readonly sink: ClientSink;
  private readonly pool: DcPool;

  constructor(info: ClientInfo, sink: ClientSink, pool: DcPool) {
    this.transport = info.transport;
    this.adTag = info.listener.adTag;
    this.sink = sink;
    this.pool = pool;
    // From the shared buffer pool: a separate 20-byte allocation per idle client costs more than the bytes.
    const address = Buffer.allocUnsafe(IP_PORT_LENGTH);
    try {
      writeIpPort(address, 0, info.remoteAddress, info.remotePort);
    } catch {
      writeIpPort(address, 0, '0.0.0.0', info.remotePort);
    }
    this.clientAddress = address;
  }

  // ---- UpstreamHandle (session -> Telegram) ------------------------------------------------------------

  writeBytes(_plain: Buffer): boolean {
    // Middle mode is framed; raw bytes mean a session bug. Close this client only.
    this.fail('MTP_ERR_NOT_FRAMED');
    return false;
  }

  writeFrame(payload: Buffer, quickAck: boolean): boolean {
    if (this.ended) return true;
    if (payload.length === 0 || payload.length % 4 !== 0) {
      // A malformed client packet closes that client only, never the shared link.
      this.fail('MTP_ERR_FRAME_UNALIGNED');
      return false;
    }
    const link = this.link;
    if (link?.ready) {
      if (!link.sendRequest(this, payload, quickAck)) this.linkFull = true;
      if (!this.linkFull && !this.answersBacklogged) return true;
      this.refused = true;
      return false;
    }
    // Between links: hold the packet until the pool attaches us again.
    this.heldBytes += payload.length;
    if (this.heldBytes > MAX_MIGRATION_BACKLOG) {
      this.fail('MTP_ERR_MIGRATION_BACKLOG');
      return false;
    }
    (this.held ??= []).push({ payload: Buffer.from(payload), quickAck });
    this.refused = true;
    return false;
  }

  pause(): void {
    // The link is shared: it keeps reading. The session bounds what it queues for this client and drops it
    // when that is full; meanwhile this client's own packets wait.
    this.answersBacklogged = true;
  }

  resume(): void {
    this.answersBacklogged = false;
    this.resumeIfClear();
  }

  private resumeIfClear(): void {
    if (this.ended || !this.refused || this.linkFull || this.answersBacklogged || this.held !== null) return;
    this.refused = false;
    this.sink.resumeClient();
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.held = null;
    if (this.link) this.link.detach(this);
    else this.pool.cancel(this);
    this.link = null;
  }

  // ---- PoolClient (Telegram -> session) ----------------------------------------------------------------

  onAttached(link: RpcLink): void {
    if (this.ended) {
      link.detach(this);
      return;
    }
    this.link = link;
    const held = this.held;
    this.held = null;
    this.heldBytes = 0;
    let ok = true;
    if (held) for (const p of held) ok = link.sendRequest(this, p.payload, p.quickAck) && ok;
    this.linkFull = !ok;
    this.resumeIfClear();
  }

  onAnswer(payload: Buffer): void {
    if (this.ended) return;
    try {
      this.sink.sendFrame(payload);
    } catch {
      this.fail('MTP_ERR_INTERNAL');
    }
  }

  onQuickAck(confirm: number): void {
    if (this.ended) return;
    try {
      this.sink.sendQuickAck(confirm);
    } catch {
      this.fail('MTP_ERR_INTERNAL');
    }
  }

  onClosedByUpstream(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.link = null;
    this.held = null;
    this.sink.close(reason);
  }

  onWritable(): void {
    this.linkFull = false;
    this.resumeIfClear();
  }

  private fail(reason: string): void {
    if (this.ended) return;
    this.close();
    this.sink.close(reason);
  }
}

export class MiddleUpstream implements Upstream {
  readonly kind = 'middle' as const;
  readonly source: TelegramConfigSource;
  private readonly pools = new Map<number, DcPool>();
  private readonly getConfig: () => Config;
  private readonly log: Logger;
  private readonly stats: Stats;
  private starting: Promise<void> | null = null;
  /** The first fetch after start has completed (the config is no longer only the cached copy). */
  private fetchedOnce = false;
  private closed = false;
  private sourcesSeen = '';
  /**
   * Where a client goes when no middle proxy of its DC answers (the server sets its direct upstream): always
   * for a listener without an ad tag, per `upstream.middle_fallback` for one with. Null: nowhere.
   */
  fallback: Upstream | null = null;
  private readonly fallbackLogged = new Map<number, number>();

  constructor(getConfig: () => Config, log: Logger, stats: Stats) {
    this.getConfig = getConfig;
    this.log = log;
    this.stats = stats;
    this.source = new TelegramConfigSource(getConfig, log, stats);
  }

  /** Load Telegram's config (state cache, then URL/file) and start refreshing it. Idempotent. */
  start(): Promise<void> {
    this.starting ??= this.source.start().then(
      () => {
        this.fetchedOnce = true;
      },
      (err: unknown) => {
        // Let the next client (or a reload) try again instead of caching the failure.
        this.starting = null;
        throw err;
      },
    );
    this.sourcesSeen = this.sourcesKey();
    return this.starting;
  }

  private sourcesKey(): string {
    const t = this.getConfig().telegram;
    return `${t.proxySecret}\n${t.proxyConfig}\n${t.proxyConfigV6}\n${t.externalIp}\n${t.ipLookupUrl}`;
  }

  /**
   * After a reload: a new idle-link timeout and refresh interval apply now, and changed sources are fetched
   * at once.
   */
  configChanged(): void {
    for (const pool of this.pools.values()) pool.followIdleTimeout();
    if (!this.source.current) return;
    this.source.followInterval();
    if (this.sourcesKey() !== this.sourcesSeen) {
      this.sourcesSeen = this.sourcesKey();
      void this.source.refresh();
    }
  }

  /** Re-read Telegram's config now (e.g. after a reload changed its sources). */
  refreshTelegramConfig(): Promise<void> {
    return this.source.refresh();
  }

  /** Pool of one DC (tests and diagnostics), or undefined before its first client. */
  pool(dc: number): DcPool | undefined {
    return this.pools.get(dc);
  }

  /** JSON-able summary for the admin status: links and clients per DC, Telegram config freshness. */
  status(): Record<string, unknown> {
    const dcs: Record<string, unknown> = {};
    for (const [dc, pool] of this.pools) dcs[String(dc)] = { ...pool.status(), opened: pool.opened };
    const s = this.source.current;
    return {
      mode: 'middle',
      telegramConfig: s
        ? { dcs: s.v4.dcs.size, defaultDc: s.v4.defaultDc, updatedAt: this.source.updatedAt }
        : null,
      dcs,
    };
  }

  async open(client: ClientInfo, sink: ClientSink): Promise<UpstreamHandle> {
    const direct = this.fallbackFor(client);
    if (direct === null) return this.openMiddle(client, sink, false);
    try {
      return await this.openMiddle(client, sink, true);
    } catch (err) {
      const code = errorCode(err, '');
      if (this.closed || !FALLBACK_CODES.has(code)) throw err;
      this.stats.dc(client.dcId).middleFallbacks++;
      const now = performance.now();
      const last = this.fallbackLogged.get(client.dcId);
      if (last === undefined || now - last >= FALLBACK_LOG_EVERY_MS) {
        if (this.fallbackLogged.size > 64) this.fallbackLogged.clear();
        this.fallbackLogged.set(client.dcId, now);
        this.log.warn(
          { dc: client.dcId, listener: client.listener.name, code, adTag: client.listener.adTag !== null },
          'no middle proxy answers for this DC; serving its clients directly',
        );
      }
      return direct.open(client, sink);
    }
  }

  private fallbackFor(client: ClientInfo): Upstream | null {
    const fb = this.fallback;
    if (fb === null || fb.kind !== 'direct') return null;
    if (client.listener.adTag !== null && this.getConfig().upstream.middleFallback === 'none') return null;
    return fb;
  }

  private async openMiddle(client: ClientInfo, sink: ClientSink, failFast: boolean): Promise<UpstreamHandle> {
    if (this.closed) throw new UpstreamError('MTP_ERR_UPSTREAM_CLOSED', 'upstream is shutting down');
    if (!this.source.current) await this.start();
    else if (!this.fetchedOnce && this.starting) await settledWithin(this.starting, FRESH_CONFIG_WAIT_MS);
    else if (this.sourcesKey() !== this.sourcesSeen) {
      // A reload changed where Telegram's config comes from: fetch it again, in the background.
      this.sourcesSeen = this.sourcesKey();
      void this.source.refresh();
    }
    const dc = this.source.resolveDc(client.dcId);
    if (dc === null) throw new UpstreamError('MTP_ERR_NO_DC', `no middle proxy for DC ${client.dcId}`);
    const pool = this.poolFor(dc);
    const handle = new MiddleClient(client, sink, pool);
    return new Promise<UpstreamHandle>((resolve, reject) => {
      pool.place(handle, (err) => (err ? reject(err) : resolve(handle)), failFast);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.source.stop();
    for (const pool of this.pools.values()) pool.close();
    this.pools.clear();
  }

  private poolFor(dc: number): DcPool {
    let pool = this.pools.get(dc);
    if (!pool) {
      pool = new DcPool(dc, this.source, this.getConfig, this.log, this.stats);
      this.pools.set(dc, pool);
    }
    return pool;
  }
}
