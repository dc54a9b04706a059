/**
 * Everything an operator talks to at run time, next to the proxy: the policy engine with its persisted
 * tables, the Prometheus endpoint and the admin API. Started after the listeners, re-configured on every
 * reload (rules, allow list, token, and a restart of either HTTP server whose address changed), stopped last.
 */
import type { ClusterStatus } from '../cluster/shared-state/index.ts';
import type { ClusterDocument } from '../cluster/status.ts';
import { configLinks } from '../config/links.ts';
import type { Config } from '../config/types.ts';
import type { Logger } from '../log.ts';
import type { MetricsRegistry, StatsSource } from '../metrics/registry.ts';
import type { MetricsServer } from '../metrics/server.ts';
import type { Stats } from '../metrics/stats.ts';
import type { CounterStore } from '../policy/counters.ts';
import { PolicyEngine } from '../policy/engine.ts';
import { PolicyTables, type TableLookup } from '../policy/tables.ts';
import { describeBindError, StartupError } from '../runtime/bind-errors.ts';
import { topUsers, type UsersApiHost } from '../users/api.ts';
import type { Clock } from '../users/period.ts';
import { openUserStore, UserRegistry } from '../users/registry.ts';
import type { AdminServer, ReloadOutcome } from './server.ts';
import { buildStatus, type LinksDocument } from './status.ts';

/** What the operations plane needs from the running proxy. */
export interface OperationsHost {
  readonly config: Config;
  reloadFromFile(): Promise<ReloadOutcome>;
  /** Optional upstream summary for /status. */
  upstreamStatus?(): Record<string, unknown>;
  /** The client links of every listener (default: from the config and the bound ports). */
  links?(): LinksDocument;
  /** Bound address of a running listener; throws when it is not listening. */
  address?(listener: string): { host: string; port: number };
  /** The node in its fleet (GET /cluster). */
  clusterStatus?(): Promise<ClusterDocument>;
  /** Its role and shared-state health, at once (a line of /status). */
  clusterNode?(): { role: ClusterDocument['role']; node: ClusterStatus | null };
}

export interface OperationsOptions {
  config: Config;
  stats: Stats;
  log: Logger;
  /** Counters shared between worker threads; default in-process. */
  counters?: CounterStore;
  /** Ready-made tables (tests); default opened from the state folder when first needed. */
  tables?: PolicyTables;
  /** Stats of every worker for /metrics and /status; default this process's. */
  metricsSources?: StatsSource;
  /** Bring worker stats up to date before a scrape or a status answer. */
  refreshStats?: () => Promise<void>;
  /** A table was edited through the admin API (worker threads re-read their copies). */
  tablesChanged?: () => Promise<void>;
  /** The users' clock of a supervisor without sessions (tests stop it); default the system clock. */
  userClock?: Clock;
}

function sameListen(a: Config['admin']['listen'], b: Config['admin']['listen']): boolean {
  return a === b || (a !== null && b !== null && a.host === b.host && a.port === b.port);
}

function usesTables(config: Config): boolean {
  return config.admin.listen !== null || config.policies.some((p) => p.rule !== 'max_connections');
}

export class Operations {
  readonly policy: PolicyEngine & { applyConfig(config: Config): void };
  readonly #stats: Stats;
  readonly #log: Logger;
  #config: Config;
  #tables: PolicyTables | null;
  readonly #ownsTables: boolean;
  #metrics: MetricsRegistry | null = null;
  readonly #metricsSources: StatsSource;
  #metricsServer: MetricsServer | null = null;
  #admin: AdminServer | null = null;
  #host: OperationsHost | null = null;
  readonly #refreshStats: (() => Promise<void>) | undefined;
  readonly #tablesChanged: (() => Promise<void>) | undefined;
  #stopped = false;
  #users: UserRegistry | null = null;
  #ownsUsers = false;
  readonly #userClock: Clock | undefined;

  constructor(opts: OperationsOptions) {
    this.#config = opts.config;
    this.#stats = opts.stats;
    this.#log = opts.log;
    this.#tables = opts.tables ?? null;
    this.#ownsTables = opts.tables === undefined;
    const stats = [opts.stats];
    this.#metricsSources = opts.metricsSources ?? (() => stats);
    this.#refreshStats = opts.refreshStats;
    this.#tablesChanged = opts.tablesChanged;
    this.#userClock = opts.userClock;
    // Open the database up front when the config needs it, so a bad state folder fails the start, not a client.
    if (usesTables(opts.config)) this.tables();
    // After stop() a straggling session must not reopen the database.
    const lazyTables: TableLookup = {
      has: (table, value) => !this.#stopped && this.tables().has(table, value),
    };
    const engine = new PolicyEngine({
      rules: opts.config.policies,
      tables: lazyTables,
      counters: opts.counters,
      stats: opts.stats,
    });
    this.policy = Object.assign(engine, {
      applyConfig: (config: Config) => engine.setRules(config.policies),
    });
  }

  /** The named users (the admin API manages them). */
  useUsers(users: UserRegistry): void {
    this.#users = users;
  }

  get users(): UserRegistry | null {
    return this.#users;
  }

  /** The users the admin API shows: the proxy's own, else (a supervisor without sessions) read from disk. */
  #usersHost(config: Config): UsersApiHost | undefined {
    if (!this.#users) {
      const store = openUserStore(config, null);
      if (!store) return undefined;
      this.#users = new UserRegistry({ store, clock: this.#userClock });
      this.#users.applyConfig(config);
      this.#ownsUsers = true;
    }
    const users = this.#users;
    const host = this.#host!;
    const ownsUsers = this.#ownsUsers;
    return {
      users,
      config: () => host.config,
      portOf: (l) => {
        try {
          return host.address?.(l.name).port ?? l.port;
        } catch {
          return l.port;
        }
      },
      stats: () => this.#metricsSources(),
      changed: async () => {
        if (ownsUsers) users.refreshUsage();
        await this.#tablesChanged?.();
      },
    };
  }

  /** The persisted tables, opened on first use. */
  tables(): PolicyTables {
    if (!this.#tables) {
      try {
        this.#tables = new PolicyTables(this.#config.stateDir);
      } catch (e) {
        throw new StartupError(
          'MTP_ERR_STATE_DIR',
          `state_dir: cannot open the policy tables database in ${this.#config.stateDir}: ${(e as Error).message}`,
        );
      }
    }
    return this.#tables;
  }

  metricsAddress(): { host: string; port: number } | null {
    return this.#metricsServer?.listening ? this.#metricsServer.address() : null;
  }

  adminAddress(): { host: string; port: number } | null {
    return this.#admin?.listening ? this.#admin.address() : null;
  }

  async start(host: OperationsHost): Promise<void> {
    this.#stopped = false;
    this.#host = host;
    this.#config = host.config;
    await this.#configureMetrics(this.#config, null);
    await this.#configureAdmin(this.#config, null);
  }

  /** Apply a new, already validated config. Throws (one line) if an HTTP server cannot bind its new address. */
  async applyConfig(next: Config): Promise<void> {
    const previous = this.#config;
    if (previous.stateDir !== next.stateDir) {
      // The tables database stays open where it is: the admin API and every worker thread hold it.
      this.#log.warn(
        { running: previous.stateDir, configured: next.stateDir },
        'a new state_dir applies after a restart',
      );
    }
    if (usesTables(next)) this.tables();
    this.#config = next;
    this.policy.setRules(next.policies);
    if (this.#ownsUsers) this.#users?.applyConfig(next);
    if (this.#host) {
      await this.#configureMetrics(next, previous);
      await this.#configureAdmin(next, previous);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.allSettled([this.#metricsServer?.stop(), this.#admin?.stop()]);
    this.#metricsServer = null;
    this.#admin = null;
    this.#metrics?.close();
    this.#metrics = null;
    if (this.#ownsTables) this.#tables?.close();
    if (this.#ownsUsers) {
      this.#users?.store?.close();
      this.#users = null;
      this.#ownsUsers = false;
    }
    this.#tables = null;
    this.#host = null;
  }

  async #configureMetrics(next: Config, previous: Config | null): Promise<void> {
    const listen = next.metrics.listen;
    if (!listen) {
      await this.#metricsServer?.stop();
      this.#metricsServer = null;
      return;
    }
    if (this.#metricsServer && previous && sameListen(previous.metrics.listen, listen)) {
      this.#metricsServer.setAllow(next.metrics.allow);
      return;
    }
    // Loaded when a metrics listener is configured: prom-client and node:http are a few MB of heap otherwise.
    const [{ createMetricsRegistry }, { MetricsServer }] = await Promise.all([
      import('../metrics/registry.ts'),
      import('../metrics/server.ts'),
    ]);
    this.#metrics ??= createMetricsRegistry({
      sources: this.#metricsSources,
      userLabels: () => this.#config.metrics.userLabels,
      gauges: {
        mtproxy_policy_admissions_active: {
          help: 'Connections admitted by the policy engine and not yet released.',
          read: () => this.policy.outstanding,
        },
      },
    });
    const server = new MetricsServer({
      registry: this.#metrics,
      allow: next.metrics.allow,
      log: this.#log,
      beforeScrape: this.#refreshStats,
    });
    try {
      await server.start(listen);
    } catch (e) {
      // The old server (if any) keeps serving: the new address is bound before the old one is let go.
      const why = describeBindError(e as NodeJS.ErrnoException, listen.host, listen.port);
      throw new StartupError('MTP_ERR_LISTEN', `metrics.listen: ${why}`);
    }
    await this.#metricsServer?.stop();
    this.#metricsServer = server;
  }

  async #configureAdmin(next: Config, previous: Config | null): Promise<void> {
    const { listen, token } = next.admin;
    // The old server is not awaited: the reload that moves it may be one of its own requests, still waiting
    // for its answer.
    if (!listen || !token) {
      void this.#admin?.stop();
      this.#admin = null;
      return;
    }
    const limits = {
      bodyTimeoutMs: next.admin.bodyTimeoutMs,
      idleTimeoutMs: next.admin.idleTimeoutMs,
      maxConnections: next.admin.maxConnections,
    };
    const console = { enabled: next.admin.console, sessionTtlMs: next.admin.consoleSessionMs };
    if (this.#admin && previous && sameListen(previous.admin.listen, listen)) {
      this.#admin.setToken(token);
      this.#admin.setLimits(limits);
      this.#admin.setConsole(console);
      return;
    }
    const host = this.#host!;
    const portOf = (name: string): number | null => {
      try {
        return host.address?.(name).port ?? null;
      } catch {
        return null;
      }
    };
    // Loaded when the admin API is configured (node:http), like /metrics above.
    const { AdminServer } = await import('./server.ts');
    const admin = new AdminServer({
      token,
      limits,
      console,
      log: this.#log,
      startedAt: this.#stats.startedAt,
      hooks: {
        status: () => {
          const status = buildStatus(
            host.config,
            this.#metricsSources(),
            host.upstreamStatus?.() ?? {},
            Date.now(),
            portOf,
          );
          // A node of a fleet says how it stands there (role, Redis health) in its status too.
          const node = host.clusterNode?.();
          const withCluster =
            node && (node.role !== 'both' || node.node) ? { ...status, cluster: node } : status;
          const users = this.#usersHost(host.config);
          if (!users || users.users.size === 0) return withCluster;
          users.users.refreshUsage();
          return { ...withCluster, users: topUsers(users) };
        },
        ...(host.clusterStatus ? { cluster: () => host.clusterStatus!() } : {}),
        links: () => host.links?.() ?? { links: configLinks(host.config, (l) => portOf(l.name) ?? l.port) },
        refresh: this.#refreshStats,
        tablesChanged: this.#tablesChanged,
        reload: () => host.reloadFromFile(),
        tables: this.tables(),
        tableKey: (name) => this.policy.tableKey(name),
        referencedTables: () => this.policy.referencedTables(),
        users: this.#usersHost(next),
      },
    });
    try {
      await admin.start(listen);
    } catch (e) {
      const why = describeBindError(e as NodeJS.ErrnoException, listen.host, listen.port);
      throw new StartupError('MTP_ERR_LISTEN', `admin.listen: ${why}`);
    }
    void this.#admin?.stop();
    this.#admin = admin;
  }
}
