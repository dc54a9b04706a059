/**
 * The users a proxy (or one worker) serves: who owns which secret, what they may do, and what they used.
 *
 * - Users come from `[[users]]` in the file and from the state database (created at run time). A name in the
 *   file wins: a stored user of the same name is ignored while the file defines it.
 * - A session is bound to a user at its handshake (`bySecret`) and `admit` hands it a lease. Concurrent
 *   sessions (`max_connections`) and client addresses (`max_ips`) are counted in the policy counter store,
 *   so they hold across worker threads (shared memory) and processes (the primary). The lease gives back
 *   what it took exactly once.
 * - Bytes are counted on the lease's user; `flush` adds them to the database as deltas and reads the totals
 *   back, so the quota is checked against what every worker counted (up to one flush interval late).
 * - `tick` (every second) ends the sessions of a user that is over quota, expired, disabled or deleted.
 * - A user's rate is split evenly between the workers holding its sessions: each worker notes in the
 *   database which rate-limited users it serves (at a user's first session there, and at every flush) and
 *   runs its buckets at `rate / workers`, so the user's total stays at its rate whatever the worker count.
 */
import { threadId } from 'node:worker_threads';
import { generateSecret } from '../config/secrets.ts';
import type { Config, ListenerConfig } from '../config/types.ts';
import type { UserConfig } from '../config/users.ts';
import { normaliseDomain } from '../cover/domains.ts';
import type { Stats } from '../metrics/stats.ts';
import type { RemoteCounterStore } from '../policy/counters.ts';
import { LocalCounterStore } from '../policy/counters.ts';
import type { PolicyTicket } from '../policy/types.ts';
import { type Clock, type PeriodSpan, periodAt, systemClock } from './period.ts';
import { type UsageDelta, UserStore } from './store.ts';
import { TokenBucket } from './token-bucket.ts';

/** A cover domain of some users' own: their secrets, and the listener as a hello naming it sees it. */
export interface OwnDomain {
  readonly secrets: Buffer[];
  readonly view: ListenerConfig;
}

export type RefusalReason = 'disabled' | 'expired' | 'listener' | 'quota' | 'max_connections' | 'max_ips';

export const REFUSAL_REASONS: readonly RefusalReason[] = [
  'disabled',
  'expired',
  'listener',
  'quota',
  'max_connections',
  'max_ips',
];

/** What a session can be told by its user's limits. */
export interface BoundSession {
  /** End the session now (quota, expiry, disabled, deleted). */
  finish(reason: string): void;
}

/** Rate buckets start with this many seconds of rate as a burst (at least 64 KiB). */
const BURST_SECONDS = 1;
const MIN_BURST = 64 * 1024;

function burstOf(rate: number): number {
  return Math.max(MIN_BURST, rate * BURST_SECONDS);
}

export class UserState {
  config: UserConfig;
  secret: Buffer;
  readonly name: string;
  readonly up: TokenBucket;
  readonly down: TokenBucket;
  readonly leases = new Set<UserLease>();
  /** Where the definition lives. */
  source: 'file' | 'api';
  period: PeriodSpan;
  /** Totals for the current period as last read from the database (every worker's share). */
  storedUp = 0;
  storedDown = 0;
  storedSessions = 0;
  storedIps = 0;
  lastSeen = 0;
  /** Counted here and not yet flushed. */
  pendingUp = 0;
  pendingDown = 0;
  pendingSessions = 0;
  readonly pendingIps = new Set<string>();
  /** Process-local totals since start (metrics). */
  bytesUp = 0;
  bytesDown = 0;
  readonly refusals = new Map<string, number>();
  /** Workers holding this user's sessions (the rate is split between them); 1 alone. */
  share = 1;

  /** The listener with this user's ad tag, per listener (null tag: the listener itself). */
  readonly #withTag = new WeakMap<ListenerConfig, ListenerConfig>();

  listenerFor(l: ListenerConfig): ListenerConfig {
    const tag = this.config.adTag;
    if (tag === null || l.adTag?.equals(tag)) return l;
    let out = this.#withTag.get(l);
    if (out === undefined || !out.adTag!.equals(tag)) {
      out = { ...l, adTag: tag };
      this.#withTag.set(l, out);
    }
    return out;
  }

  constructor(config: UserConfig, secret: Buffer, source: 'file' | 'api', clock: Clock) {
    this.config = config;
    this.secret = secret;
    this.name = config.name;
    this.source = source;
    this.up = new TokenBucket(config.rate, burstOf(config.rate), clock);
    this.down = new TokenBucket(config.rate, burstOf(config.rate), clock);
    this.period = periodAt(clock.now(), config.quotaPeriod, config.quotaResetDay);
  }

  /** Bytes of the current period, both directions, as far as this worker knows. */
  get used(): number {
    return this.storedUp + this.storedDown + this.pendingUp + this.pendingDown;
  }

  overQuota(): boolean {
    return this.config.quota > 0 && this.used >= this.config.quota;
  }

  /** Per listener: the listener as this user's fake-TLS hellos see it (its cover domains and the user's). */
  readonly #tlsViews = new WeakMap<ListenerConfig, { domains: string[]; view: ListenerConfig }>();

  /**
   * The listener with this user's own cover domains added (the listener itself when the user has none or
   * the listener serves any name): a hello tried for this user only checks these domains.
   */
  tlsView(listener: ListenerConfig): ListenerConfig {
    const own = this.config.tlsDomains;
    if (own.length === 0 || listener.tlsDomains.length === 0) return listener;
    let entry = this.#tlsViews.get(listener);
    if (entry === undefined || entry.domains !== own) {
      const extra = own.filter((d) => !listener.tlsDomains.includes(d));
      entry = {
        domains: own,
        view: extra.length === 0 ? listener : { ...listener, tlsDomains: [...listener.tlsDomains, ...extra] },
      };
      this.#tlsViews.set(listener, entry);
    }
    return entry.view;
  }

  /** Run the buckets at this worker's share of the rate. */
  applyRate(): void {
    const rate = this.config.rate / Math.max(1, this.share);
    this.up.rate = this.down.rate = rate;
    this.up.burst = this.down.burst = burstOf(rate);
  }

  expired(now: number): boolean {
    return this.config.expires !== null && now >= this.config.expires;
  }

  refuse(reason: RefusalReason): void {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
  }
}

/** A session's hold on its user: counters taken, bytes counted, given back once. */
export class UserLease implements PolicyTicket {
  readonly user: UserState;
  readonly session: BoundSession;
  readonly address: string;
  #registry: UserRegistry | null;
  /** Counter keys this lease holds (an address's slot may pass to another lease of the same address). */
  #keys: string[];

  constructor(
    registry: UserRegistry,
    user: UserState,
    session: BoundSession,
    address: string,
    keys: string[],
  ) {
    this.#registry = registry;
    this.user = user;
    this.session = session;
    this.address = address;
    this.#keys = keys;
  }

  /** Client -> Telegram bytes; returns how long to pause reading the client (ms, 0 = go on). */
  fromClient(n: number): number {
    const u = this.user;
    u.pendingUp += n;
    u.bytesUp += n;
    return u.config.rate > 0 ? u.up.take(n) : 0;
  }

  /** Telegram -> client bytes; returns how long to pause the upstream (ms, 0 = go on). */
  toClient(n: number): number {
    const u = this.user;
    u.pendingDown += n;
    u.bytesDown += n;
    return u.config.rate > 0 ? u.down.take(n) : 0;
  }

  get released(): boolean {
    return this.#registry === null;
  }

  release(): void {
    const registry = this.#registry;
    if (registry === null) return;
    this.#registry = null;
    this.user.leases.delete(this);
    this.user.lastSeen = Date.now();
    let keys = this.#keys;
    const slot = keys.findIndex((k) => k.startsWith('user-ip:'));
    if (slot >= 0) {
      // Other sessions from this address still open: one of them takes over the address's slot (and its
      // place among the user's addresses), and its own "one more session" count is given back instead.
      for (const other of this.user.leases) {
        if (other.address !== this.address) continue;
        const theirs = other.#keys;
        const more = theirs.findIndex((k) => k.startsWith('user-ip+:'));
        if (more < 0) continue;
        const slotKeys = keys.filter((k) => k.startsWith('user-ip:') || k.startsWith('user-ips:'));
        const moreKey = theirs[more];
        other.#keys = [...theirs.filter((_, i) => i !== more), ...slotKeys];
        keys = [...keys.filter((k) => !slotKeys.includes(k)), moreKey];
        break;
      }
    }
    this.#keys = [];
    registry.giveBack(keys);
  }
}

export type UserAdmission = { ok: true; lease: UserLease } | { ok: false; reason: RefusalReason };

export interface UserRegistryOptions {
  clock?: Clock;
  counters?: RemoteCounterStore;
  store?: UserStore | null;
  /** How often usage goes to the database (ms); 0 = only when flush() is called. */
  flushMs?: number;
  /** How often limits are checked against open sessions (ms); 0 = only when tick() is called. */
  tickMs?: number;
  onError?: (err: unknown) => void;
  /** Per-user numbers for /metrics and the status, written at each tick. */
  stats?: Stats;
  /** This worker's name in the rate shares (default: process id and thread id). */
  workerId?: string;
}

const NO_SECRETS: readonly Buffer[] = [];
/** How often a flush also drops the usage periods older than the history keeps. */
const PRUNE_EVERY_MS = 3_600_000;
/** Client addresses remembered for the handshake hint. */
const MAX_HINTS = 100_000;

export class UserRegistry {
  readonly clock: Clock;
  readonly counters: RemoteCounterStore;
  /** Where run-time users and usage live; null = memory only (set when the config starts needing it). */
  store: UserStore | null;
  readonly #users = new Map<string, UserState>();
  readonly #bySecret = new Map<string, UserState>();
  /** Secrets each listener accepts (its own, then its users'), rebuilt on change. */
  readonly #listenerSecrets = new WeakMap<ListenerConfig, Buffer[]>();
  #fileUsers: UserConfig[] = [];
  /** Client address -> the user secret it used last (handshakes try it first). */
  readonly #hints = new Map<string, UserState>();
  readonly #tlsListeners = new WeakMap<ListenerConfig, { generation: number; view: ListenerConfig }>();
  readonly #ownDomains = new WeakMap<
    ListenerConfig,
    { generation: number; byDomain: Map<string, OwnDomain> }
  >();
  #outstanding = 0;
  #flushTimer: NodeJS.Timeout | null = null;
  #tickTimer: NodeJS.Timeout | null = null;
  readonly #onError: (err: unknown) => void;
  readonly #stats: Stats | null;
  /** Bumped when the user list changes (listener secret lists are rebuilt). */
  #generation = 0;
  /** When old periods were last pruned from the database (clock ms; 0 = not yet). */
  #prunedAt = 0;
  readonly #listenerGeneration = new WeakMap<ListenerConfig, number>();
  /** This worker's name in the rate shares (process and thread). */
  readonly #worker: string;
  /** A worker not heard of for this long no longer takes a share of a rate (it has stopped or died). */
  readonly #shareStaleMs: number;
  /** Whether this worker has rate shares on record (to be withdrawn when it has none left). */
  #sharing = false;

  constructor(opts: UserRegistryOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.counters = opts.counters ?? new LocalCounterStore();
    this.store = opts.store ?? null;
    this.#onError = opts.onError ?? (() => {});
    this.#stats = opts.stats ?? null;
    const flushMs = opts.flushMs ?? 0;
    this.#shareStaleMs = flushMs > 0 ? 3 * flushMs : 10_000;
    this.#worker = opts.workerId ?? `${process.pid}:${threadId}`;
    if (flushMs > 0) {
      this.#flushTimer = setInterval(() => this.#safely(() => this.flush()), flushMs);
      this.#flushTimer.unref();
    }
    const tickMs = opts.tickMs ?? 0;
    if (tickMs > 0) {
      this.#tickTimer = setInterval(() => this.#safely(() => this.tick()), tickMs);
      this.#tickTimer.unref();
    }
  }

  #safely(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.#onError(err);
    }
  }

  /** File users from a (re)loaded config; stored users are re-read too. */
  applyConfig(config: Config): void {
    this.#fileUsers = config.users;
    this.reload();
  }

  /** Re-read the run-time users (another worker or the admin API changed them) and merge with the file. */
  reload(): void {
    const next = new Map<string, { config: UserConfig; source: 'file' | 'api' }>();
    for (const u of this.store?.listUsers() ?? []) next.set(u.name, { config: u, source: 'api' });
    // The file wins over a stored user of the same name.
    for (const u of this.#fileUsers) next.set(u.name, { config: u, source: 'file' });
    for (const [name, state] of this.#users) {
      if (!next.has(name)) {
        this.#users.delete(name);
        this.#endSessions(state, 'user_deleted');
      }
    }
    this.#bySecret.clear();
    for (const [name, { config, source }] of next) {
      const secret = this.#secretOf(config);
      let state = this.#users.get(name);
      if (state === undefined) {
        state = new UserState(config, secret, source, this.clock);
        this.#users.set(name, state);
        this.#loadUsage(state);
      } else {
        const periodChanged =
          state.config.quotaPeriod !== config.quotaPeriod ||
          state.config.quotaResetDay !== config.quotaResetDay;
        const secretChanged = !state.secret.equals(secret);
        state.config = config;
        state.secret = secret;
        state.source = source;
        state.applyRate();
        if (periodChanged) {
          this.#flushUser(state);
          state.period = periodAt(this.clock.now(), config.quotaPeriod, config.quotaResetDay);
          this.#loadUsage(state);
        }
        if (secretChanged) this.#endSessions(state, 'user_secret_changed');
      }
      if (!config.enabled) this.#endSessions(state, 'user_disabled');
      this.#bySecret.set(secret.toString('hex'), state);
    }
    this.#generation++;
  }

  #secretOf(config: UserConfig): Buffer {
    if (config.secret) return config.secret;
    if (this.store) return this.store.secretFor(config.name, generateSecret);
    // No state database: one per process for as long as it runs.
    const existing = this.#users.get(config.name);
    return existing ? existing.secret : generateSecret();
  }

  #loadUsage(state: UserState): void {
    if (!this.store) return;
    const row = this.store.usage(state.name, state.period.key);
    state.storedUp = row.bytesUp;
    state.storedDown = row.bytesDown;
    state.storedSessions = row.sessions;
    state.storedIps = row.ips;
    state.lastSeen = Math.max(state.lastSeen, row.lastSeen);
  }

  get size(): number {
    return this.#users.size;
  }

  get(name: string): UserState | undefined {
    return this.#users.get(name);
  }

  all(): UserState[] {
    return [...this.#users.values()];
  }

  /** Leases not yet given back: zero once every session has ended. */
  get outstanding(): number {
    return this.#outstanding;
  }

  /** Secrets a listener accepts: its own first, then those of the users allowed on it. */
  secretsFor(listener: ListenerConfig): readonly Buffer[] {
    if (this.#users.size === 0)
      return listener.extraSecrets.length === 0 ? [listener.secret] : this.#base(listener);
    let list = this.#listenerSecrets.get(listener);
    if (list === undefined || this.#listenerGeneration.get(listener) !== this.#generation) {
      list = this.#base(listener);
      for (const u of this.#users.values()) {
        if (u.config.listeners === null || u.config.listeners.includes(listener.name)) list.push(u.secret);
      }
      this.#listenerSecrets.set(listener, list);
      this.#listenerGeneration.set(listener, this.#generation);
    }
    return list;
  }

  /**
   * The listener as a fake-TLS handshake sees it: its cover domains plus the users' own (a user's link for
   * its own domain must not be fronted as an unknown SNI).
   */
  tlsListener(listener: ListenerConfig): ListenerConfig {
    let entry = this.#tlsListeners.get(listener);
    if (entry === undefined || entry.generation !== this.#generation) {
      const extra = new Set<string>();
      // A listener without domains serves any SNI already.
      if (listener.tlsDomains.length > 0) {
        for (const u of this.#users.values()) {
          if (u.config.listeners !== null && !u.config.listeners.includes(listener.name)) continue;
          for (const d of u.config.tlsDomains) if (!listener.tlsDomains.includes(d)) extra.add(d);
        }
      }
      const view =
        extra.size === 0 ? listener : { ...listener, tlsDomains: [...listener.tlsDomains, ...extra] };
      entry = { generation: this.#generation, view };
      this.#tlsListeners.set(listener, entry);
    }
    return entry.view;
  }

  /**
   * The users allowed on `listener` that have cover domains of their own, by domain (normalised): a fake-TLS
   * hello naming one is tried with its owners' secrets first, against the listener with that domain added.
   */
  ownDomains(listener: ListenerConfig): ReadonlyMap<string, OwnDomain> {
    let entry = this.#ownDomains.get(listener);
    if (entry === undefined || entry.generation !== this.#generation) {
      const byDomain = new Map<string, OwnDomain>();
      for (const u of this.#users.values()) {
        if (u.config.listeners !== null && !u.config.listeners.includes(listener.name)) continue;
        for (const d of u.config.tlsDomains) {
          const key = normaliseDomain(d);
          const known = byDomain.get(key);
          if (known !== undefined) {
            known.secrets.push(u.secret);
            continue;
          }
          const view =
            listener.tlsDomains.length === 0
              ? listener
              : { ...listener, tlsDomains: [...listener.tlsDomains, key] };
          byDomain.set(key, { secrets: [u.secret], view });
        }
      }
      entry = { generation: this.#generation, byDomain };
      this.#ownDomains.set(listener, entry);
    }
    return entry.byDomain;
  }

  #base(listener: ListenerConfig): Buffer[] {
    return listener.extraSecrets.length === 0
      ? [listener.secret]
      : [listener.secret, ...listener.extraSecrets];
  }

  /**
   * The secret of the user this client address opened its last session as (tried first), or null: only
   * while that user still exists with that secret and may use `listener`.
   */
  hintFor(address: string, listener: ListenerConfig): Buffer | null {
    return this.hintUserFor(address, listener)?.secret ?? null;
  }

  /** The user behind `hintFor`, or null. */
  hintUserFor(address: string, listener: ListenerConfig): UserState | null {
    const u = this.#hints.get(address);
    if (u === undefined || this.#users.get(u.name) !== u) return null;
    if (u.config.listeners !== null && !u.config.listeners.includes(listener.name)) return null;
    return u;
  }

  /** Remember which user `address` connected as (bounded: the oldest addresses are forgotten first). */
  noteMatch(address: string, user: UserState): void {
    if (address === '') return;
    const hints = this.#hints;
    if (hints.get(address) === user) return;
    hints.delete(address);
    hints.set(address, user);
    if (hints.size > MAX_HINTS) hints.delete(hints.keys().next().value!);
  }

  bySecret(secret: Buffer): UserState | null {
    if (this.#users.size === 0) return null;
    return this.#bySecret.get(secret.toString('hex')) ?? null;
  }

  /**
   * Admit a session of `user` from `remoteAddress` on `listener`. Synchronous unless the counters live in
   * another process (worker processes), then a Promise.
   */
  admit(
    user: UserState,
    listener: string,
    remoteAddress: string,
    session: BoundSession,
  ): UserAdmission | Promise<UserAdmission> {
    const c = user.config;
    const now = this.clock.now();
    this.#rollPeriod(user, now);
    // This worker's first session of the user: what the others counted may be newer than its last flush.
    if (c.quota > 0 && user.leases.size === 0) this.#safely(() => this.#loadUsage(user));
    if (!c.enabled) return this.#refuse(user, 'disabled');
    if (user.expired(now)) return this.#refuse(user, 'expired');
    if (c.listeners !== null && !c.listeners.includes(listener)) return this.#refuse(user, 'listener');
    if (user.overQuota()) return this.#refuse(user, 'quota');
    const taken: string[] = [];
    const steps: Array<[key: string, limit: number, reason: RefusalReason | null]> = [];
    if (c.maxConnections > 0) steps.push([`user:${user.name}`, c.maxConnections, 'max_connections']);
    if (c.maxIps > 0) steps.push([`user-ip:${user.name}:${remoteAddress}`, 1, null]);
    return this.#take(user, session, remoteAddress, steps, 0, taken);
  }

  #take(
    user: UserState,
    session: BoundSession,
    remoteAddress: string,
    steps: Array<[string, number, RefusalReason | null]>,
    from: number,
    taken: string[],
  ): UserAdmission | Promise<UserAdmission> {
    for (let i = from; i < steps.length; i++) {
      const [key, limit, reason] = steps[i];
      const got = this.counters.tryAcquire(key, limit);
      const next = (ok: boolean): UserAdmission | Promise<UserAdmission> | null => {
        if (ok) {
          taken.push(key);
          // The first session from an address takes one of the user's address slots.
          if (reason === null) steps.push([`user-ips:${user.name}`, user.config.maxIps, 'max_ips']);
          return null;
        }
        if (reason !== null) {
          this.giveBack(taken, false);
          return this.#refuse(user, reason);
        }
        // This address already holds a slot: the session only counts towards it.
        steps.push([`user-ip+:${user.name}:${remoteAddress}`, Number.MAX_SAFE_INTEGER, 'max_ips']);
        return null;
      };
      if (typeof got === 'boolean') {
        const out = next(got);
        if (out !== null) return out;
        continue;
      }
      return got.then(
        (ok) => next(ok) ?? this.#take(user, session, remoteAddress, steps, i + 1, taken),
        (err: unknown) => {
          this.giveBack(taken, false);
          throw err;
        },
      );
    }
    return this.#grant(user, session, remoteAddress, taken);
  }

  #grant(user: UserState, session: BoundSession, remoteAddress: string, keys: string[]): UserAdmission {
    this.#outstanding++;
    const lease = new UserLease(this, user, session, remoteAddress, keys);
    user.leases.add(lease);
    if (user.leases.size === 1 && user.config.rate > 0) this.#joinRate(user);
    user.pendingSessions++;
    user.lastSeen = this.clock.now();
    if (remoteAddress) user.pendingIps.add(remoteAddress);
    return { ok: true, lease };
  }

  /** This worker's first session of a rate-limited user: take a share of its rate at once. */
  #joinRate(user: UserState): void {
    const store = this.store;
    if (!store) return;
    this.#safely(() => {
      const now = Date.now();
      user.share = Math.max(1, store.joinRate(user.name, this.#worker, now, now - this.#shareStaleMs));
      user.applyRate();
      this.#sharing = true;
    });
  }

  /** Note which rate-limited users this worker serves; run each at its share of the rate. */
  #shareRates(): void {
    const store = this.store;
    if (!store) return;
    const names: string[] = [];
    for (const u of this.#users.values()) if (u.config.rate > 0 && u.leases.size > 0) names.push(u.name);
    if (names.length === 0 && !this.#sharing) return;
    const now = Date.now();
    const counts = store.shareRates(this.#worker, names, now, now - this.#shareStaleMs);
    this.#sharing = names.length > 0;
    for (const name of names) {
      const u = this.#users.get(name)!;
      const share = Math.max(1, counts.get(name) ?? 1);
      if (share !== u.share) {
        u.share = share;
        u.applyRate();
      }
    }
  }

  /** Workers holding sessions of `user` now, as the database knows (a rate-limited user only; else null). */
  rateWorkers(user: UserState): number | null {
    if (user.config.rate <= 0) return null;
    if (!this.store) return user.leases.size > 0 ? 1 : 0;
    return this.store.rateWorkers(user.name, Date.now() - this.#shareStaleMs);
  }

  #refuse(user: UserState, reason: RefusalReason): UserAdmission {
    user.refuse(reason);
    return { ok: false, reason };
  }

  /** @internal Called by a lease exactly once (and on a refused admission with counted = false). */
  giveBack(keys: readonly string[], counted = true): void {
    if (counted) this.#outstanding--;
    for (const key of keys) this.counters.release(key);
  }

  #endSessions(user: UserState, reason: string): void {
    for (const lease of [...user.leases]) {
      try {
        lease.session.finish(reason);
      } finally {
        lease.release();
      }
    }
  }

  /** A new period started: flush the old one's counts, start from what is on record for the new one. */
  #rollPeriod(user: UserState, now: number): void {
    if (now < user.period.end && now >= user.period.start) return;
    this.#flushUser(user);
    user.period = periodAt(now, user.config.quotaPeriod, user.config.quotaResetDay);
    user.storedUp = user.storedDown = user.storedSessions = user.storedIps = 0;
    this.#loadUsage(user);
  }

  /** End the sessions of users over quota or expired; roll periods over. */
  tick(): void {
    const now = this.clock.now();
    for (const user of this.#users.values()) {
      this.#rollPeriod(user, now);
      if (user.leases.size > 0) {
        if (user.expired(now)) this.#endSessions(user, 'user_expired');
        else if (user.overQuota()) {
          // On record before the sessions end: another worker's next session of the user reads it.
          this.#safely(() => this.#flushUser(user));
          this.#endSessions(user, 'user_quota');
        }
      }
    }
    this.#writeStats();
  }

  #writeStats(): void {
    const s = this.#stats;
    if (s === null) return;
    s.userBytesUp.clear();
    s.userBytesDown.clear();
    s.userSessionsActive.clear();
    s.userRefusals.clear();
    for (const u of this.#users.values()) {
      s.userBytesUp.set(u.name, u.bytesUp);
      s.userBytesDown.set(u.name, u.bytesDown);
      s.userSessionsActive.set(u.name, u.leases.size);
      for (const [reason, n] of u.refusals) s.userRefusals.set(`${u.name}\t${reason}`, n);
    }
  }

  #flushUser(user: UserState): void {
    const delta = this.#deltaOf(user);
    if (delta === null || !this.store) return;
    this.store.addUsage([delta]);
    this.#loadUsage(user);
  }

  #deltaOf(user: UserState): UsageDelta | null {
    if (
      user.pendingUp === 0 &&
      user.pendingDown === 0 &&
      user.pendingSessions === 0 &&
      user.pendingIps.size === 0
    )
      return null;
    const delta: UsageDelta = {
      user: user.name,
      period: user.period.key,
      up: user.pendingUp,
      down: user.pendingDown,
      sessions: user.pendingSessions,
      lastSeen: user.lastSeen,
      ips: [...user.pendingIps],
    };
    if (this.store) {
      // Without a database the pending counts simply accumulate (they are the totals).
      user.pendingUp = user.pendingDown = user.pendingSessions = 0;
      user.pendingIps.clear();
    }
    return delta;
  }

  /** Usage to the database, then the totals (every worker's) back. */
  flush(): void {
    const store = this.store;
    if (!store) return;
    const deltas: UsageDelta[] = [];
    for (const user of this.#users.values()) {
      const d = this.#deltaOf(user);
      if (d) deltas.push(d);
    }
    store.addUsage(deltas);
    for (const user of this.#users.values())
      if (user.leases.size > 0 || deltas.length > 0) this.#loadUsage(user);
    this.#shareRates();
    const now = this.clock.now();
    if (this.#prunedAt === 0 || now - this.#prunedAt >= PRUNE_EVERY_MS || now < this.#prunedAt) {
      this.#prunedAt = now;
      store.prune(now);
    }
  }

  /** Re-read every user's totals of the current period from the database (what all workers flushed). */
  refreshUsage(): void {
    const now = this.clock.now();
    for (const user of this.#users.values()) {
      this.#rollPeriod(user, now);
      this.#loadUsage(user);
    }
  }

  /** Forget a user's usage of the current period (or all periods): here and in the database. */
  resetUsage(name: string, all = false): boolean {
    const user = this.#users.get(name);
    if (!user) return false;
    user.pendingUp = user.pendingDown = user.pendingSessions = 0;
    user.pendingIps.clear();
    user.storedUp = user.storedDown = user.storedSessions = user.storedIps = 0;
    this.store?.resetUsage(name, all ? null : user.period.key);
    return true;
  }

  /** Flush, stop the timers. Leases stay valid (sessions end on their own). */
  close(): void {
    if (this.#flushTimer) clearInterval(this.#flushTimer);
    if (this.#tickTimer) clearInterval(this.#tickTimer);
    this.#flushTimer = this.#tickTimer = null;
    this.#safely(() => this.flush());
    // This worker's shares of rates go: the others get the whole rate back at their next flush.
    this.#safely(() => {
      if (this.#sharing) this.store?.shareRates(this.#worker, [], Date.now(), Date.now());
      this.#sharing = false;
    });
  }
}

export { NO_SECRETS };

/**
 * The state database for users, opened once the config has users or an admin API (through which users are
 * created); `current` is kept when already open.
 */
export function openUserStore(config: Config, current: UserStore | null): UserStore | null {
  if (current) return current;
  if (config.users.length === 0 && config.admin.listen === null) return null;
  try {
    return new UserStore(config.stateDir);
  } catch (e) {
    throw new Error(`state_dir: cannot open the users database: ${(e as Error).message}`);
  }
}
