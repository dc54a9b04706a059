/**
 * A node's share of the fleet state (`[cluster] redis`): the link to Redis, the replay guard, the fleet-wide
 * counters, the users store and the policy tables, plus the heartbeat that keeps the node registered and
 * syncs usage. `open()` connects before the proxy starts (waiting at most a few timeouts: a node starts
 * from its local state when Redis is away); `attach()` hands it the proxy's user registry.
 *
 * When Redis comes back after an outage the node sends what it kept (usage deltas, user and table edits),
 * writes its connection leases as absolute values and re-reads users and tables.
 */
import { randomBytes } from 'node:crypto';
import pkg from '../../../package.json' with { type: 'json' };
import type { Config } from '../../config/types.ts';
import type { Logger } from '../../log.ts';
import type { Stats } from '../../metrics/stats.ts';
import type { UserRegistry } from '../../users/registry.ts';
import { SharedStateLink } from './client.ts';
import { ClusterCounterStore } from './counters.ts';
import { heartbeat, leave, listNodes, type NodeInfo, type NodeView } from './nodes.ts';
import { ClusterReplayGuard } from './replay.ts';
import { ClusterPolicyTables } from './tables.ts';
import { ClusterUserStore } from './users.ts';

export { SharedStateLink } from './client.ts';
export { formatNodes, listNodes, type NodeView } from './nodes.ts';

/** How long start-up waits for Redis before serving from local state. */
const CONNECT_WAIT_FACTOR = 4;

export interface SharedStateOptions {
  log: Logger;
  stats?: Stats;
}

export interface ClusterStatus {
  node: string;
  id: string;
  redis: 'up' | 'down';
  downSince: string | null;
  errors: Record<string, number>;
  leases: number;
  pendingUsage: number;
  pendingTableEdits: number;
  replayLocalOnly: number;
  localLimitDecisions: number;
}

export class SharedState {
  readonly link: SharedStateLink;
  readonly nodeId: string;
  readonly replay: ClusterReplayGuard;
  readonly counters: ClusterCounterStore;
  readonly users: ClusterUserStore;
  readonly tables: ClusterPolicyTables;
  readonly #log: Logger;
  readonly #startedAt = Date.now();
  #config: Config;
  #registry: UserRegistry | null = null;
  #sessions: () => number = () => 0;
  #timer: NodeJS.Timeout | null = null;
  #beating: Promise<void> | null = null;
  /** The users' and tables' versions at the last heartbeat (see #catchUp). */
  #versions: string | null = null;
  #closed = false;

  private constructor(config: Config, opts: SharedStateOptions) {
    this.#config = config;
    this.#log = opts.log;
    const c = config.cluster;
    this.nodeId = `${c.nodeName}:${randomBytes(4).toString('hex')}`;
    this.link = new SharedStateLink(c, opts.log, opts.stats ?? null);
    this.replay = new ClusterReplayGuard(this.link, config.replay);
    this.counters = new ClusterCounterStore(this.link, this.nodeId);
    this.users = new ClusterUserStore(config.stateDir, this.link, this.nodeId, opts.log);
    this.tables = new ClusterPolicyTables(config.stateDir).bind(this.link, this.nodeId);
    this.link.subscribe(this.link.key('events'), (_channel, message) => this.#onEvent(message));
    this.link.onChange((up) => {
      if (up && this.#timer !== null) void this.#reconnected();
    });
    // The channel's announcements missed while the subscriber reconnected: re-read what they announce.
    this.link.onResubscribed(() => {
      if (this.#timer !== null && this.link.up) void this.#reloadShared();
    });
  }

  /** The node's shared state, not connected yet (`start()` connects). */
  static create(config: Config, opts: SharedStateOptions): SharedState {
    return new SharedState(config, opts);
  }

  /** Connect (waiting a little for Redis) and read the fleet's users and tables. */
  async start(): Promise<void> {
    const config = this.#config;
    this.link.connect();
    const up = await this.link.whenUp(config.cluster.timeoutMs * CONNECT_WAIT_FACTOR + 1000);
    if (up) {
      await this.#loadShared();
    } else {
      this.#log.warn(
        { node: config.cluster.nodeName },
        'cluster: Redis not reachable at start; serving from local state until it is',
      );
    }
    this.#timer = setInterval(() => void this.beat(), config.cluster.heartbeatMs);
    this.#timer.unref();
    await this.beat();
  }

  /** The proxy's registry (edits from other nodes reload it) and its open-session count (the heartbeat). */
  attach(registry: UserRegistry, sessions: () => number): void {
    this.#registry = registry;
    this.#sessions = sessions;
    this.users.attach({
      usersChanged: () => registry.reload(),
      usageChanged: () => registry.refreshUsage(),
    });
    this.tables.onChange = null;
  }

  applyConfig(config: Config): void {
    this.#config = config;
    this.replay.configure(config.replay);
    if (
      config.cluster.redis !== this.link.config.redis ||
      config.cluster.prefix !== this.link.config.prefix
    ) {
      this.#log.warn('cluster: a new cluster.redis or cluster.prefix applies after a restart');
    }
  }

  async #loadShared(): Promise<void> {
    await this.tables.load();
    const changed = await this.users.load();
    if (changed) this.#registry?.reload();
  }

  /**
   * Users and tables carry a version Redis bumps with every edit. An edit whose announcement this node
   * missed (its subscriber was reconnecting, or Redis came back before the editor) shows as a new version
   * here, and the node re-reads them: every edit reaches every node within a heartbeat at the latest.
   */
  async #catchUp(): Promise<void> {
    const versions = (
      await this.link.redis.mget(this.link.key('users-version'), this.link.key('tables-version'))
    ).join(',');
    if (versions === this.#versions) return;
    const first = this.#versions === null;
    this.#versions = versions;
    if (!first) await this.#loadShared();
  }

  async #reloadShared(): Promise<void> {
    try {
      await this.#loadShared();
    } catch (err) {
      this.link.fail('reload', err);
    }
  }

  async #reconnected(): Promise<void> {
    try {
      await this.#loadShared();
      await this.counters.reconcile(true);
      await this.beat();
      this.#log.info({ node: this.nodeId }, 'cluster: state reconciled with Redis');
    } catch (err) {
      this.link.fail('reconcile', err);
    }
  }

  #onEvent(message: string): void {
    let event: { type: string; from?: string };
    try {
      event = JSON.parse(message) as { type: string; from?: string };
    } catch {
      return;
    }
    if (typeof event?.type !== 'string') return;
    if (event.type === 'tables') this.tables.onEvent(event);
    else this.users.onEvent(event);
  }

  info(): NodeInfo {
    return {
      id: this.nodeId,
      name: this.#config.cluster.nodeName,
      pid: process.pid,
      version: pkg.version,
      role: this.#config.cluster.role,
      startedAt: this.#startedAt,
      seenAt: Date.now(),
      sessions: this.#sessions(),
      leases: this.counters.heldTotal(),
      pending: this.users.pendingDeltas + this.tables.pendingEdits,
    };
  }

  /** Register, write back what is owed, pull the fleet's usage. One at a time; never throws. */
  beat(): Promise<void> {
    this.#beating ??= this.#beat().finally(() => {
      this.#beating = null;
    });
    return this.#beating;
  }

  async #beat(): Promise<void> {
    if (this.#closed || !this.link.up) return;
    try {
      await heartbeat(this.link, this.info(), this.#config.cluster.nodeTimeoutMs);
      await this.#catchUp();
      await this.counters.reconcile();
      await this.tables.push();
      await this.users.sync();
    } catch (err) {
      this.link.fail('heartbeat', err);
    }
  }

  status(): ClusterStatus {
    return {
      node: this.#config.cluster.nodeName,
      id: this.nodeId,
      redis: this.link.up ? 'up' : 'down',
      downSince: this.link.up ? null : new Date(this.link.downSince).toISOString(),
      errors: Object.fromEntries(this.link.errors),
      leases: this.counters.heldTotal(),
      pendingUsage: this.users.pendingDeltas,
      pendingTableEdits: this.tables.pendingEdits,
      replayLocalOnly: this.replay.localOnly,
      localLimitDecisions: this.counters.localDecisions,
    };
  }

  nodes(): Promise<NodeView[]> {
    return listNodes(this.link);
  }

  /** Flush usage to Redis, leave the registry, close the connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#beating;
    try {
      this.#registry?.flush();
      await this.users.sync();
      if (this.link.up) await leave(this.link, this.nodeId);
    } catch (err) {
      this.link.fail('close', err);
    }
    this.#closed = true;
    await this.link.close();
    this.users.close();
    this.tables.close();
  }
}
