/**
 * The server process core: one TCP server per listener, each accepted socket handed to a client session, and
 * the running configuration swapped in place on reload. Sessions read everything through their SessionEnv
 * getters, so a reload reaches new connections at once while established ones keep what they were admitted
 * with. Only a listener whose address changes (or that is added/removed) is restarted; its old sessions
 * drain for at most `timeouts.drain`.
 */
import cluster from 'node:cluster';
import { createRequire } from 'node:module';
import net from 'node:net';
import type { Operations } from '../admin/operations.ts';
import type { ReloadOutcome } from '../admin/server.ts';
import type { LinksDocument } from '../admin/status.ts';
import { configLinks } from '../config/links.ts';
import { upstreamKind } from '../config/addresses.ts';
import type { Config, ListenerConfig } from '../config/types.ts';
import { type CertProbeHandle, startCertProbes } from '../cover/probe-schedule.ts';
import { type Logger, logger as defaultLogger, setLogFormat } from '../log.ts';
import { type Stats, stats as defaultStats } from '../metrics/stats.ts';
import type { CounterStore } from '../policy/counters.ts';
import { startSession } from '../session/client-session.ts';
import { startHeapShrinker, tuneGarbageCollector } from '../runtime/gc-tuning.ts';
import { createReplayGuard } from '../session/replay-cache.ts';
import type { PolicyGate, PolicyTicket, ReplayGuard, SessionEnv } from '../session/types.ts';
import { DirectUpstream } from '../upstream/direct/direct-upstream.ts';
import { MiddleUpstream } from '../upstream/middle/middle-upstream.ts';
import type { Upstream } from '../upstream/types.ts';
import { BackServer } from '../cluster/front-back/back-server.ts';
import type { ClusterStatus, SharedState } from '../cluster/shared-state/index.ts';
import type { ClusterDocument } from '../cluster/status.ts';
import { BackUpstream } from '../cluster/front-back/front-upstream.ts';
import { readCredentials } from '../cluster/front-back/tls.ts';
import { describeBindError } from '../runtime/bind-errors.ts';
import { isFdExhaustion, onFdExhaustion } from '../runtime/fd-pressure.ts';
import { interfaceAddresses } from '../runtime/interfaces.ts';
import { SerialQueue } from '../runtime/serial.ts';
import { MtpError } from '../runtime/errors.ts';
import type { RemoteCounterStore } from '../policy/counters.ts';
import type { Clock } from '../users/period.ts';
import { openUserStore, UserRegistry } from '../users/registry.ts';

/**
 * The admin API, /metrics, the config loader and the fleet's Redis client are loaded on first use: a worker
 * thread gets none of them (the supervisor serves the first three, and a worker joins no fleet itself), and not
 * loading them (the config schema, prom-client, node:http, ioredis) saves each worker about 20 MB of heap and
 * code.
 */
const requireLazily = createRequire(import.meta.url);
type SharedStateModule = typeof import('../cluster/shared-state/index.ts');

export type SessionHandler = (socket: net.Socket, env: SessionEnv) => void;

/** An upstream that needs an asynchronous start (middle mode loads Telegram's config first). */
type StartableUpstream = Upstream & { start?(): Promise<void> };

/** A policy engine may follow reloads; the default gate has nothing to follow. */
type ReloadablePolicy = PolicyGate & { applyConfig?(config: Config): void };

export interface ProxyOptions {
  log?: Logger;
  stats?: Stats;
  /** Shared replay guard (worker threads); default: an in-process cache sized by `[replay]`. */
  replay?: ReplayGuard;
  /** Policy gate; default: the policy engine over `[[policies]]` and the persisted tables. */
  policy?: ReloadablePolicy;
  /** Counters for the default policy engine (worker threads share one store); default in-process. */
  policyCounters?: CounterStore;
  /** Serve the admin API and /metrics from this proxy when configured (default true; workers say false). */
  operations?: boolean;
  /** Ready-made upstreams (tests, workers); otherwise built on first use from src/upstream. */
  upstreams?: { direct?: StartableUpstream; middle?: StartableUpstream };
  /** What runs for each accepted socket (default: the client session). */
  sessionHandler?: SessionHandler;
  /** How `reloadFromFile()` obtains the next config (the CLI re-applies its flags); default: re-read config.file. */
  loadConfig?: () => Promise<Config>;
  /** What user limits read the time from (rate buckets, quota periods, expiry); tests inject one. */
  userClock?: Clock;
  /** Bind with SO_REUSEPORT so several workers share each port. */
  reusePort?: boolean;
  /**
   * Learn the cover domains' certificate flight size by connecting to them (`tls_cert_size = "auto"`).
   * Default: on, except under the test runner (tests never reach the internet).
   */
  coverProbes?: boolean;
}

/** How often user usage goes to the state database, and how often user limits are checked. */
const USAGE_FLUSH_MS = 2000;
const USER_TICK_MS = 1000;

const NO_TICKET: PolicyTicket = { release() {} };

export const allowAllPolicy: PolicyGate = {
  admit: () => ({ ok: true, ticket: NO_TICKET }),
  allowFronting: () => true,
};

/** First and longest pause of accepting after the process ran out of file descriptors. */
const ACCEPT_BACKOFF_MIN_MS = 100;
const ACCEPT_BACKOFF_MAX_MS = 5000;

interface ListenerState {
  config: ListenerConfig;
  server: net.Server;
  sessions: Set<net.Socket>;
  env: SessionEnv;
  ipv6Only: boolean;
  /** The port actually bound (differs from config.port when that is 0). */
  boundPort: number;
  backoffMs: number;
  backoffTimer: NodeJS.Timeout | null;
  lastFdWarningAt: number;
}

/** Raised when a listener cannot bind; the message names the listener key, as config errors do. */
export class ListenError extends MtpError {
  constructor(index: number, l: ListenerConfig, err: NodeJS.ErrnoException) {
    super(
      'server',
      err.code ?? 'ELISTEN',
      `listeners[${index}].port: ${describeBindError(err, l.host, l.port)}`,
    );
    this.name = 'ListenError';
  }
}

function sameAddress(a: ListenerConfig, b: ListenerConfig): boolean {
  return a.host === b.host && a.port === b.port;
}

function maxConnectionsOf(l: ListenerConfig): number {
  return l.maxConnections > 0 ? l.maxConnections : Number.POSITIVE_INFINITY;
}

export class ProxyServer {
  #config: Config;
  readonly #log: Logger;
  readonly #stats: Stats;
  readonly #options: ProxyOptions;
  readonly #sessionHandler: SessionHandler;
  #replay: ReplayGuard;
  readonly #replayInjected: boolean;
  /** `[cluster] redis`: replay, counters, users and tables shared with the fleet (null: this machine only). */
  readonly #shared: SharedState | null;
  readonly #policy: ReloadablePolicy;
  readonly #users: UserRegistry;
  /** Policy engine, tables, admin API and metrics endpoint (null when a policy gate was injected). */
  readonly #ops: Operations | null;
  /** Active listeners by name. */
  readonly #listeners = new Map<string, ListenerState>();
  /** Listeners removed or restarted whose sessions are still draining. */
  readonly #draining = new Set<ListenerState>();
  #direct: StartableUpstream | null = null;
  #middle: StartableUpstream | null = null;
  /** Front: the links to the backs (every session goes there). */
  #back: BackUpstream | null = null;
  /** Back: the listener for fronts' links. */
  #backServer: BackServer | null = null;
  #started = false;
  #certProbes: CertProbeHandle | null = null;
  #heapShrinker: { stop(): void } | null = null;
  #stopping: Promise<void> | null = null;
  /** Reloads run one at a time. */
  readonly #reloads = new SerialQueue();
  /** Unsubscribes from descriptor-exhaustion reports of the upstreams (set while running). */
  #fdUnsubscribe: (() => void) | null = null;
  #lastFdReportWarningAt = 0;

  constructor(config: Config, opts: ProxyOptions = {}) {
    this.#config = config;
    this.#options = opts;
    this.#log = opts.log ?? defaultLogger;
    this.#stats = opts.stats ?? defaultStats;
    this.#sessionHandler = opts.sessionHandler ?? startSession;
    // Worker threads and processes get their state from the supervisor: only a node's own proxy joins the fleet.
    this.#shared =
      config.cluster.redis !== null && !opts.replay && !opts.policy && !opts.policyCounters
        ? (requireLazily('../cluster/shared-state/index.ts') as SharedStateModule).SharedState.create(
            config,
            {
              log: this.#log,
              stats: this.#stats,
            },
          )
        : null;
    this.#replayInjected = opts.replay !== undefined || this.#shared !== null;
    this.#replay = opts.replay ?? this.#shared?.replay ?? createReplayGuard(config.replay);
    this.#ops = opts.policy
      ? null
      : new (requireLazily('../admin/operations.ts') as typeof import('../admin/operations.ts')).Operations({
          config,
          stats: this.#stats,
          log: this.#log,
          // The fleet's counters may answer later (a Promise); the engine and the session handle that as they
          // do for worker processes.
          counters: opts.policyCounters ?? (this.#shared?.counters as CounterStore | undefined),
          ...(this.#shared ? { tables: this.#shared.tables } : {}),
        });
    this.#policy = opts.policy ?? this.#ops?.policy ?? allowAllPolicy;
    // User limits are counted where the policy counters are (shared memory, or the primary).
    const counters = (this.#policy as { counters?: RemoteCounterStore }).counters ?? opts.policyCounters;
    this.#users = new UserRegistry({
      counters,
      clock: opts.userClock,
      stats: this.#stats,
      flushMs: USAGE_FLUSH_MS,
      tickMs: USER_TICK_MS,
      onError: (err) => this.#log.warn({ err: (err as Error).message }, 'users: usage flush failed'),
    });
    this.#users.store = this.#shared?.users ?? openUserStore(config, null);
    this.#users.applyConfig(config);
    this.#ops?.useUsers(this.#users);
    this.#shared?.attach(this.#users, () => this.sessionCount());
    this.#direct = opts.upstreams?.direct ?? null;
    this.#middle = opts.upstreams?.middle ?? null;
  }

  get config(): Config {
    return this.#config;
  }

  /** The named users this proxy serves. */
  get users(): UserRegistry {
    return this.#users;
  }

  /** Policy engine, tables, admin API and metrics endpoint, unless a policy gate was injected. */
  get operations(): Operations | null {
    return this.#ops;
  }

  /** Client links of every listener, with the ports actually bound. */
  links(): LinksDocument {
    return {
      links: configLinks(this.#config, (l) =>
        this.#listeners.has(l.name) ? this.address(l.name).port : l.port,
      ),
    };
  }

  /** Upstream summary for the admin status. */
  upstreamStatus(): Record<string, unknown> {
    return {
      direct: this.#direct ? (this.#direct.status?.() ?? { started: true }) : null,
      middle: this.#middle ? (this.#middle.status?.() ?? { started: true }) : null,
      ...(this.#back ? { backs: this.#back.status() } : {}),
      ...(this.#backServer ? { fronts: this.#backServer.status() } : {}),
    };
  }

  /** The state shared with the fleet (`[cluster] redis`), or null. */
  get sharedState(): SharedState | null {
    return this.#shared;
  }

  /** Role and shared-state health (a line of /status). */
  clusterNode(): { role: ClusterDocument['role']; node: ClusterStatus | null } {
    return { role: this.#config.cluster.role, node: this.#shared?.status() ?? null };
  }

  /** This node in its fleet: role, shared-state health, the fleet's nodes, the front's backs (GET /cluster). */
  async clusterStatus(): Promise<ClusterDocument> {
    const doc: ClusterDocument = {
      role: this.#config.cluster.role,
      node: this.#shared?.status() ?? null,
      nodes: null,
    };
    if (this.#shared) {
      if (!this.#shared.link.up) doc.nodesError = 'Redis is unreachable';
      else {
        try {
          doc.nodes = await this.#shared.nodes();
        } catch (err) {
          doc.nodesError = (err as Error).message;
        }
      }
    }
    if (this.#back) doc.backs = this.#back.status().backs as ClusterDocument['backs'];
    if (this.#backServer) doc.fronts = this.#backServer.status().fronts as ClusterDocument['fronts'];
    return doc;
  }

  /** Front: the links to the backs; back: the link listener (null otherwise). Tests and the status. */
  get cluster(): { front: BackUpstream | null; back: BackServer | null } {
    return { front: this.#back, back: this.#backServer };
  }

  /** Names of the active listeners, in config order. */
  listenerNames(): string[] {
    return this.#config.listeners.map((l) => l.name).filter((n) => this.#listeners.has(n));
  }

  /** Open client connections (all listeners, or one), including ones still draining. */
  sessionCount(listener?: string): number {
    let n = 0;
    for (const s of this.#listeners.values())
      if (!listener || s.config.name === listener) n += s.sessions.size;
    for (const s of this.#draining) if (!listener || s.config.name === listener) n += s.sessions.size;
    return n;
  }

  #connectionsTotal(): number {
    let n = 0;
    for (const l of this.#stats.listeners.values()) n += l.connectionsTotal;
    return n;
  }

  /** The bound address of a listener (the real port when the config says 0). */
  address(listenerName: string): { host: string; port: number } {
    const state = this.#listeners.get(listenerName);
    const addr = state?.server.address();
    if (!state || !addr || typeof addr === 'string')
      throw new Error(`listener "${listenerName}" is not listening`);
    return { host: addr.address, port: addr.port };
  }

  /** The net.Server of an active listener (metrics, tests). */
  listeningServer(listenerName: string): net.Server {
    const state = this.#listeners.get(listenerName);
    if (!state) throw new Error(`listener "${listenerName}" is not listening`);
    return state.server;
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    tuneGarbageCollector();
    // Read now, so the fronting loop check never reads them on a client's path.
    interfaceAddresses();
    await this.#startNeededUpstreams(this.#config);
    const bound: ListenerState[] = [];
    try {
      await this.#shared?.start();
      await this.#startCluster();
      for (const [i, l] of this.#config.listeners.entries()) {
        const state = this.#createState(l);
        await this.#listen(state, i);
        bound.push(state);
        this.#listeners.set(l.name, state);
      }
      this.#fdUnsubscribe = onFdExhaustion((code, where) => this.#onFdExhaustion(code, where));
      this.#heapShrinker = startHeapShrinker(() => this.#connectionsTotal());
      if (this.#options.operations !== false) await this.#ops?.start(this);
      if (this.#options.coverProbes ?? process.env.NODE_TEST_CONTEXT === undefined) {
        this.#certProbes = startCertProbes(() => this.#config, this.#log);
      }
    } catch (e) {
      this.#fdUnsubscribe?.();
      this.#fdUnsubscribe = null;
      this.#heapShrinker?.stop();
      for (const s of bound) s.server.close();
      await Promise.allSettled([this.#back?.close(), this.#backServer?.close()]);
      this.#back = null;
      this.#backServer = null;
      await this.#ops?.stop();
      await this.#shared?.close();
      // A middle-proxy upstream may already be refreshing Telegram's config; don't leave its timers behind.
      await Promise.allSettled([this.#direct?.close(), this.#middle?.close()]);
      this.#listeners.clear();
      this.#started = false;
      throw e;
    }
    this.#log.info(
      { listeners: this.#config.listeners.map((l) => ({ name: l.name, ...this.address(l.name) })) },
      'proxy listening',
    );
  }

  /**
   * Stop accepting, let open sessions finish for up to `drainMs` (default `timeouts.drain`), then close what is
   * left and the upstreams. Idempotent.
   */
  stop(drainMs: number = this.#config.timeouts.drainMs): Promise<void> {
    this.#stopping ??= this.#stop(drainMs);
    return this.#stopping;
  }

  async #stop(drainMs: number): Promise<void> {
    this.#certProbes?.stop();
    this.#heapShrinker?.stop();
    this.#fdUnsubscribe?.();
    this.#fdUnsubscribe = null;
    const states = [...this.#listeners.values(), ...this.#draining];
    this.#listeners.clear();
    for (const s of states) this.#closeServer(s);
    await Promise.all(states.map((s) => this.#drain(s, drainMs)));
    this.#draining.clear();
    await Promise.allSettled([
      this.#direct?.close(),
      this.#middle?.close(),
      this.#back?.close(),
      this.#backServer?.close(),
    ]);
    await this.#ops?.stop();
    this.#users.close();
    await this.#shared?.close();
    this.#users.store?.close();
    this.#log.info('proxy stopped');
  }

  /**
   * Switch to a new (already validated) config. Listeners added, removed, or with a new host/port are
   * (re)started; if one of them cannot bind, nothing changes and the error is thrown. Everything else applies to
   * new connections through the SessionEnv getters.
   */
  applyConfig(next: Config): Promise<void> {
    return this.#reloads.run(() => this.#applyConfig(next));
  }

  async #applyConfig(next: Config): Promise<void> {
    if (this.#stopping) throw new Error('the proxy is stopping');
    if (!this.#started) {
      this.#config = next;
      return;
    }
    const keep: Array<[ListenerState, ListenerConfig]> = [];
    const rebind: Array<[ListenerState | null, ListenerConfig, number]> = [];
    const remove: ListenerState[] = [];
    const nextNames = new Set(next.listeners.map((l) => l.name));
    next.listeners.forEach((l, i) => {
      const current = this.#listeners.get(l.name);
      if (current && sameAddress(current.config, l)) keep.push([current, l]);
      else rebind.push([current ?? null, l, i]);
    });
    for (const state of this.#listeners.values()) if (!nextNames.has(state.config.name)) remove.push(state);

    await this.#startNeededUpstreams(next);

    // Free the old addresses first (a port may move from one listener to another), then bind the new ones.
    const released = [...remove, ...rebind.flatMap(([old]) => (old ? [old] : []))];
    for (const s of released) this.#closeServer(s);
    const fresh: ListenerState[] = [];
    try {
      for (const [, l, i] of rebind) {
        const state = this.#createState(l, next);
        await this.#listen(state, i);
        fresh.push(state);
      }
    } catch (e) {
      for (const s of fresh) s.server.close();
      await this.#rebindReleased(released);
      throw e;
    }

    const previous = this.#config;
    // One thread cannot become several: `run` picks a Supervisor at start. (The Supervisor warns for itself.)
    if (this.#ops && next.workers !== previous.workers) {
      this.#log.warn({ running: 1, configured: next.workers }, 'a new worker count applies after a restart');
    }
    this.#config = next;
    this.#direct?.configChanged?.();
    this.#middle?.configChanged?.();
    this.#back?.configChanged();
    // New cover domains get measured now rather than at the next periodic refresh.
    void this.#certProbes?.refresh();
    for (const [state, l] of keep) {
      state.config = l;
      state.server.maxConnections = maxConnectionsOf(l);
      // Read by net.Server for each connection it accepts, so new sessions get the new size.
      (state.server as net.Server & { highWaterMark: number }).highWaterMark =
        next.buffers.clientHighWaterMark;
    }
    for (const s of released) {
      this.#listeners.delete(s.config.name);
      this.#retire(s);
    }
    for (const s of fresh) this.#listeners.set(s.config.name, s);
    // A new cache forgets every handshake seen so far, so only build one when its settings changed.
    const r0 = previous.replay;
    const r1 = next.replay;
    if (
      !this.#replayInjected &&
      (r0.enabled !== r1.enabled || r0.maxEntries !== r1.maxEntries || r0.maxAgeMs !== r1.maxAgeMs)
    ) {
      this.#replay = createReplayGuard(r1);
    }
    this.#shared?.applyConfig(next);
    this.#policy.applyConfig?.(next);
    this.#users.store = openUserStore(next, this.#users.store);
    this.#users.applyConfig(next);
    // The admin API / metrics endpoint follow the new config; failing to bind a new address there is not a
    // reason to undo the listeners, so it is reported and the old address keeps serving.
    await this.#ops
      ?.applyConfig(next)
      .catch((e: Error) => this.#log.error({ err: e.message }, 'reload: ' + e.message));
    this.#log.level = next.log.level;
    setLogFormat(next.log.format);
    this.#log.info(
      {
        added: rebind.filter(([old]) => !old).map(([, l]) => l.name),
        restarted: rebind.filter(([old]) => old).map(([, l]) => l.name),
        removed: remove.map((s) => s.config.name),
      },
      'configuration applied',
    );
  }

  /** Re-read the configuration (SIGHUP, admin API, `mtproxy reload`). An invalid config leaves everything as is. */
  async reloadFromFile(): Promise<ReloadOutcome> {
    const { configFileLoader, reloadConfig } = await import('./reload.ts');
    const load = this.#options.loadConfig ?? configFileLoader(this.#config.file);
    return reloadConfig(load, (next) => this.applyConfig(next), this.#stats, this.#log);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Listeners

  #createState(l: ListenerConfig, config: Config = this.#config): ListenerState {
    const server = net.createServer({
      // Sessions handle a client's FIN themselves (direct mode passes it on and keeps relaying answers).
      allowHalfOpen: true,
      noDelay: true,
      highWaterMark: config.buffers.clientHighWaterMark,
    });
    server.maxConnections = maxConnectionsOf(l);
    // A worker process at its cap would send a connection back to the primary, which offers it to the next
    // worker, round and round while every worker is full: close it, as a thread or a single process does.
    if (cluster.isWorker) (server as net.Server & { dropMaxConnection: boolean }).dropMaxConnection = true;
    const state: ListenerState = {
      config: l,
      server,
      sessions: new Set(),
      env: null as unknown as SessionEnv,
      // "::" takes IPv4 too (dual stack) unless another listener has 0.0.0.0 on the same port.
      ipv6Only: l.host === '::' && config.listeners.some((o) => o.host === '0.0.0.0' && o.port === l.port),
      boundPort: 0,
      backoffMs: 0,
      backoffTimer: null,
      lastFdWarningAt: 0,
    };
    state.env = this.#createEnv(state);
    server.on('connection', (socket: net.Socket) => this.#accept(state, socket));
    return state;
  }

  #createEnv(state: ListenerState): SessionEnv {
    const proxy = this;
    return {
      config: () => proxy.#config,
      listener: () => state.config,
      upstream: (l: ListenerConfig) => proxy.#upstreamFor(l),
      get replay() {
        return proxy.#replay;
      },
      get policy() {
        return proxy.#policy;
      },
      stats: this.#stats,
      log: this.#log,
      users: this.#users,
    };
  }

  #listen(state: ListenerState, index: number, port = state.config.port): Promise<void> {
    const { server, config: l } = state;
    return new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        reject(new ListenError(index, l, err));
      };
      const onListening = () => {
        server.off('error', onError);
        state.boundPort = (server.address() as net.AddressInfo).port;
        server.on('error', (err: NodeJS.ErrnoException) => this.#onServerError(state, err));
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({
        host: l.host,
        port,
        ipv6Only: state.ipv6Only,
        ...(this.#options.reusePort ? { reusePort: true } : {}),
      });
    });
  }

  #accept(state: ListenerState, socket: net.Socket): void {
    state.sessions.add(socket);
    socket.once('close', () => state.sessions.delete(socket));
    try {
      this.#sessionHandler(socket, state.env);
    } catch (e) {
      // A session must never take the server down; this is a bug in the session code, so log it loudly.
      this.#log.error({ listener: state.config.name, err: e }, 'session failed to start');
      socket.destroy();
    }
  }

  /** Errors of a listening server: only accept() failures reach here, and none may stop the process. */
  #onServerError(state: ListenerState, err: NodeJS.ErrnoException): void {
    const now = Date.now();
    if (isFdExhaustion(err.code)) {
      if (now - state.lastFdWarningAt > 5000) {
        state.lastFdWarningAt = now;
        this.#log.warn(
          { listener: state.config.name, code: err.code, sessions: state.sessions.size },
          'out of file descriptors: accepting slowed down',
        );
      }
      this.#stats.listener(state.config.name).fail('MTP_ERR_ACCEPT_' + err.code);
      this.#slowAccepting(state);
      return;
    }
    this.#log.warn({ listener: state.config.name, code: err.code, err: err.message }, 'accept error');
  }

  /**
   * An upstream connect (or anything else off the accept path) failed for want of descriptors: accepting more
   * clients now would only fail them too, so every listener slows down as after an accept() EMFILE.
   */
  #onFdExhaustion(code: string, where: string): void {
    const now = Date.now();
    if (now - this.#lastFdReportWarningAt > 5000) {
      this.#lastFdReportWarningAt = now;
      this.#log.warn(
        { code, where, sessions: this.sessionCount() },
        'out of file descriptors: accepting slowed down',
      );
    }
    for (const state of this.#listeners.values()) this.#slowAccepting(state);
  }

  /**
   * Node cannot pause accept(), but with maxConnections at the current count it closes each new connection right
   * away, which gives the descriptor back at once instead of failing in a loop. The cap is lifted after a
   * backoff that doubles while the errors continue.
   */
  #slowAccepting(state: ListenerState): void {
    state.backoffMs = Math.min(ACCEPT_BACKOFF_MAX_MS, Math.max(ACCEPT_BACKOFF_MIN_MS, state.backoffMs * 2));
    state.server.maxConnections = Math.max(0, state.sessions.size - 1);
    if (state.backoffTimer) clearTimeout(state.backoffTimer);
    state.backoffTimer = setTimeout(() => {
      state.backoffTimer = null;
      state.server.maxConnections = maxConnectionsOf(state.config);
      // Forget the backoff if no new error arrives within one more period.
      state.backoffTimer = setTimeout(() => {
        state.backoffTimer = null;
        state.backoffMs = 0;
      }, state.backoffMs);
      state.backoffTimer.unref();
    }, state.backoffMs);
    state.backoffTimer.unref();
  }

  #closeServer(state: ListenerState): void {
    if (state.backoffTimer) clearTimeout(state.backoffTimer);
    state.backoffTimer = null;
    if (state.server.listening) state.server.close();
  }

  /** Put back the listeners a failed reload had released. */
  async #rebindReleased(released: ListenerState[]): Promise<void> {
    for (const old of released) {
      const index = this.#config.listeners.findIndex((l) => l.name === old.config.name);
      const replacement = this.#createState(old.config);
      replacement.sessions = old.sessions;
      try {
        await this.#listen(replacement, index, old.boundPort);
        this.#listeners.set(old.config.name, replacement);
      } catch (e) {
        this.#log.error(
          { listener: old.config.name, err: (e as Error).message },
          'could not restore listener',
        );
        this.#listeners.delete(old.config.name);
        this.#retire(old);
      }
    }
  }

  /** A listener left the config or moved: its sessions finish in the background within the drain time. */
  #retire(state: ListenerState): void {
    this.#closeServer(state);
    if (state.sessions.size === 0) return;
    this.#draining.add(state);
    void this.#drain(state, this.#config.timeouts.drainMs).then(() => this.#draining.delete(state));
  }

  #drain(state: ListenerState, drainMs: number): Promise<void> {
    if (state.sessions.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        clearInterval(poll);
        for (const socket of state.sessions) socket.destroy();
        state.sessions.clear();
        resolve();
      };
      const timer = setTimeout(finish, drainMs);
      // Sessions end on their own; look every so often rather than hooking every socket again.
      const poll = setInterval(() => {
        if (state.sessions.size === 0) finish();
      }, 50);
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Upstreams

  #upstreamFor(l: ListenerConfig): Upstream {
    if (this.#back !== null) return this.#back;
    return upstreamKind(this.#config, l) === 'middle' ? this.#middleUpstream() : this.#directUpstream();
  }

  // Upstreams not injected are built on first use.
  #directUpstream(): StartableUpstream {
    this.#direct ??= new DirectUpstream(() => this.#config, this.#log, this.#stats);
    return this.#direct;
  }

  #middleUpstream(): StartableUpstream {
    if (this.#middle) return this.#middle;
    const middle = this.#newMiddleUpstream();
    middle
      .start?.()
      .catch((e: Error) => this.#log.error({ err: e.message }, 'middle-proxy upstream failed to start'));
    return middle;
  }

  #newMiddleUpstream(getConfig: () => Config = () => this.#config): StartableUpstream {
    const middle = new MiddleUpstream(getConfig, this.#log, this.#stats);
    // No middle proxy of a DC answers: its clients are served directly (see upstream.middle_fallback).
    middle.fallback = this.#directUpstream();
    this.#middle = middle;
    return middle;
  }

  /**
   * `[cluster]` (read at start; a role change needs a restart): a front links to its backs, a back listens for
   * the fronts' links and serves their sessions with its own upstreams.
   */
  async #startCluster(): Promise<void> {
    const cluster = this.#config.cluster;
    if (cluster.role === 'front') {
      this.#back = new BackUpstream(() => this.#config, readCredentials(cluster), this.#log);
      await this.#back.start(FIRST_LINK_WAIT_MS);
      if (this.#back.readyCount() === 0) this.#log.warn('no back is linked yet; retrying in background');
    } else if (cluster.role === 'back' && cluster.linkListen !== null) {
      const server = new BackServer(readCredentials(cluster), {
        getConfig: () => this.#config,
        upstreamFor: (mode) => (mode === 'middle' ? this.#middleUpstream() : this.#directUpstream()),
        log: this.#log,
      });
      await server.listen(cluster.linkListen);
      this.#backServer = server;
      this.#log.info({ link: server.address() }, 'listening for front links');
    }
  }

  /** Middle mode needs Telegram's config before the first client: start it as soon as a listener needs it. */
  async #startNeededUpstreams(config: Config): Promise<void> {
    const needsMiddle =
      config.cluster.role !== 'front' && config.listeners.some((l) => upstreamKind(config, l) === 'middle');
    if (!needsMiddle || this.#middle) return;
    // In a reload the running config is still the old one while the upstream starts: Telegram's sources and
    // the state folder must come from the config that needs middle mode, not from the one it replaces.
    let startingWith: Config | null = config;
    const middle = this.#newMiddleUpstream(() => startingWith ?? this.#config);
    try {
      await middle.start?.();
    } catch (e) {
      this.#log.error(
        { err: (e as Error).message },
        'middle-proxy upstream failed to start; retrying in background',
      );
    } finally {
      startingWith = null;
    }
  }
}

/** How long a front's start waits for its first back link (the links keep trying afterwards). */
const FIRST_LINK_WAIT_MS = 3000;

/** The agreed name; import `ProxyServer` where a binding named `Proxy` would shadow the global. */
export { ProxyServer as Proxy };
