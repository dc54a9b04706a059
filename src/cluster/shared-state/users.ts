/**
 * Users and their usage shared by the fleet. The node keeps its SQLite state database as it does alone (a
 * copy of the users, and its own usage record), and mirrors Redis on top of it:
 *
 *   <prefix>users                  hash  name -> settings (JSON)
 *   <prefix>user-secrets           hash  name -> generated secret of a file user without one
 *   <prefix>usage:<name>:<period>  hash  up, down, sessions, last_seen: the fleet's totals
 *   <prefix>ips:<name>:<period>    set   client addresses seen
 *   <prefix>events                 channel: "users" (a user changed), "usage-reset"
 *
 * An edit is written locally, then to Redis and announced, and every node re-reads the users and reloads
 * its registry. Usage deltas go to Redis at each sync; until they are acknowledged they stay pending here
 * and count towards the quota, so nothing counted is lost while Redis is away and quotas keep counting.
 */
import type { Logger } from '../../log.ts';
import { type UsageDelta, type UsageRow, UserStore } from '../../users/store.ts';
import type { UserConfig } from '../../config/users.ts';
import type { SharedStateLink } from './client.ts';

/** A usage key not asked for this long is no longer pulled from Redis. */
const WATCH_MS = 10 * 60_000;

export function userToJson(u: UserConfig): string {
  return JSON.stringify({
    ...u,
    secret: u.secret ? u.secret.toString('hex') : null,
    adTag: u.adTag ? u.adTag.toString('hex') : null,
  });
}

export function userFromJson(text: string): UserConfig | null {
  try {
    const o = JSON.parse(text) as Record<string, unknown>;
    if (typeof o.name !== 'string') return null;
    return {
      ...(o as unknown as UserConfig),
      secret: typeof o.secret === 'string' ? Buffer.from(o.secret, 'hex') : null,
      adTag: typeof o.adTag === 'string' ? Buffer.from(o.adTag, 'hex') : null,
    };
  } catch {
    return null;
  }
}

interface Totals {
  up: number;
  down: number;
  sessions: number;
  lastSeen: number;
  ips: number;
}

interface Pending {
  user: string;
  period: string;
  up: number;
  down: number;
  sessions: number;
  lastSeen: number;
  ips: Set<string>;
}

const keyOf = (name: string, period: string) => `${name}\t${period}`;

function merge(into: Map<string, Pending>, d: UsageDelta | Pending): void {
  const k = keyOf(d.user, d.period);
  let p = into.get(k);
  if (!p) {
    p = { user: d.user, period: d.period, up: 0, down: 0, sessions: 0, lastSeen: 0, ips: new Set() };
    into.set(k, p);
  }
  p.up += d.up;
  p.down += d.down;
  p.sessions += d.sessions;
  p.lastSeen = Math.max(p.lastSeen, d.lastSeen);
  for (const ip of d.ips) p.ips.add(ip);
}

export interface ClusterUserStoreHooks {
  /** The users changed (another node or a reconnect): the registry should re-read them. */
  usersChanged(): void;
  /** The fleet's usage totals moved: the registry should re-read them. */
  usageChanged(): void;
}

export class ClusterUserStore extends UserStore {
  readonly #link: SharedStateLink;
  readonly #node: string;
  readonly #log: Logger;
  #hooks: ClusterUserStoreHooks | null = null;
  /** The users as Redis has them; null until read once (then the local copy serves). */
  #mirror: Map<string, UserConfig> | null = null;
  readonly #secrets = new Map<string, Buffer>();
  /** User writes Redis has not acknowledged: name -> settings, or null for a deletion. */
  readonly #userWrites = new Map<string, UserConfig | null>();
  readonly #secretWrites = new Map<string, Buffer>();
  readonly #remote = new Map<string, Totals>();
  #pending = new Map<string, Pending>();
  #inflight = new Map<string, Pending>();
  readonly #watched = new Map<string, number>();
  readonly #resets: Array<{ name: string; period: string | null }> = [];
  #syncing: Promise<void> | null = null;
  /** A re-read of the users failed (a command timed out): the next sync does it again. */
  #reloadDue = false;

  constructor(stateDir: string | null, link: SharedStateLink, nodeId: string, log: Logger) {
    super(stateDir);
    this.#link = link;
    this.#node = nodeId;
    this.#log = log;
  }

  get #events(): string {
    return this.#link.key('events');
  }

  attach(hooks: ClusterUserStoreHooks): void {
    this.#hooks = hooks;
  }

  /** Handle an event of the fleet's channel (see index.ts). */
  onEvent(event: { type: string; from?: string; name?: string; period?: string | null }): void {
    if (event.from === this.#node) return;
    if (event.type === 'users') void this.load().then((changed) => changed && this.#hooks?.usersChanged());
    else if (event.type === 'usage-reset' && typeof event.name === 'string') {
      for (const k of [...this.#remote.keys()]) {
        if (k.startsWith(`${event.name}\t`) && (event.period == null || k.endsWith(`\t${event.period}`)))
          this.#remote.delete(k);
      }
      void this.sync().then(() => this.#hooks?.usageChanged());
    }
  }

  /** Read the users (and generated secrets) from Redis; true when they differ from what this node had. */
  async load(): Promise<boolean> {
    if (!this.#link.up) return false;
    try {
      const r = this.#link.redis;
      if ((await r.exists(this.#link.key('users-seeded'))) === 0) {
        // The first node of a fleet brings the users it has.
        for (const u of super.listUsers()) if (!this.#userWrites.has(u.name)) this.#userWrites.set(u.name, u);
        if (this.#userWrites.size === 0) await r.set(this.#link.key('users-seeded'), '1');
      }
      await this.#pushUserWrites();
      const [users, secrets] = await Promise.all([
        this.#link.redis.hgetall(this.#link.key('users')),
        this.#link.redis.hgetall(this.#link.key('user-secrets')),
      ]);
      const next = new Map<string, UserConfig>();
      for (const [name, text] of Object.entries(users)) {
        const u = userFromJson(text);
        if (u && u.name === name) next.set(name, u);
      }
      let changed = false;
      for (const [name, hex] of Object.entries(secrets)) {
        const s = Buffer.from(hex, 'hex');
        if (!this.#secrets.get(name)?.equals(s)) changed = true;
        this.#secrets.set(name, s);
      }
      // Keep the local copy equal to the fleet's, so a restart without Redis serves the same users.
      const local = new Map(super.listUsers().map((u) => [u.name, u]));
      for (const [name, u] of next) {
        const had = local.get(name);
        if (!had || userToJson(had) !== userToJson(u)) {
          super.saveUser(u);
          changed = true;
        }
      }
      for (const name of local.keys()) {
        if (!next.has(name)) {
          super.deleteUser(name);
          changed = true;
        }
      }
      if (this.#mirror === null) changed = true;
      this.#mirror = next;
      return changed;
    } catch (err) {
      this.#link.fail('users', err);
      // An announced edit would otherwise stay unseen until the next one.
      this.#reloadDue = true;
      return false;
    }
  }

  override listUsers(): UserConfig[] {
    if (this.#mirror === null) return super.listUsers();
    return [...this.#mirror.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  override saveUser(u: UserConfig): void {
    super.saveUser(u);
    this.#mirror?.set(u.name, u);
    this.#userWrites.set(u.name, u);
    void this.#pushUserWrites();
  }

  override deleteUser(name: string): boolean {
    const had = super.deleteUser(name);
    const inFleet = this.#mirror?.delete(name) ?? false;
    this.#userWrites.set(name, null);
    void this.#pushUserWrites();
    return had || inFleet;
  }

  override secretFor(name: string, generate: () => Buffer): Buffer {
    const fleet = this.#secrets.get(name);
    if (fleet) return fleet;
    const mine = super.secretFor(name, generate);
    this.#secrets.set(name, mine);
    this.#secretWrites.set(name, mine);
    void this.#pushUserWrites();
    return mine;
  }

  /** Announced writes, in one transaction; what fails stays queued for the next attempt. */
  async #pushUserWrites(): Promise<void> {
    if (!this.#link.up || (this.#userWrites.size === 0 && this.#secretWrites.size === 0)) return;
    const users = [...this.#userWrites];
    const secrets = [...this.#secretWrites];
    this.#userWrites.clear();
    this.#secretWrites.clear();
    const m = this.#link.redis.multi();
    const usersKey = this.#link.key('users');
    for (const [name, u] of users) {
      if (u) m.hset(usersKey, name, userToJson(u));
      else m.hdel(usersKey, name);
    }
    for (const [name, s] of secrets) m.hsetnx(this.#link.key('user-secrets'), name, s.toString('hex'));
    m.set(this.#link.key('users-seeded'), '1');
    // Bumped with every edit: a node that missed the announcement sees it at its next heartbeat.
    m.incr(this.#link.key('users-version'));
    if (users.length > 0) m.publish(this.#events, JSON.stringify({ type: 'users', from: this.#node }));
    try {
      await m.exec();
      if (secrets.length > 0) {
        // Another node may have generated its secret first: the fleet keeps one.
        const stored = await this.#link.redis.hmget(
          this.#link.key('user-secrets'),
          ...secrets.map(([n]) => n),
        );
        let changed = false;
        secrets.forEach(([name, s], i) => {
          const hex = stored[i];
          if (hex && hex !== s.toString('hex')) {
            this.#secrets.set(name, Buffer.from(hex, 'hex'));
            changed = true;
          }
        });
        if (changed) this.#hooks?.usersChanged();
      }
    } catch (err) {
      this.#link.fail('users', err);
      for (const [name, u] of users) if (!this.#userWrites.has(name)) this.#userWrites.set(name, u);
      for (const [name, s] of secrets) if (!this.#secretWrites.has(name)) this.#secretWrites.set(name, s);
    }
  }

  // ---- usage -----------------------------------------------------------------------------------------

  override addUsage(deltas: readonly UsageDelta[]): void {
    super.addUsage(deltas);
    for (const d of deltas) merge(this.#pending, d);
  }

  override usage(name: string, period: string): UsageRow {
    const k = keyOf(name, period);
    this.#watched.set(k, Date.now());
    const remote = this.#remote.get(k);
    if (remote === undefined) return super.usage(name, period);
    const row: UsageRow = {
      period,
      bytesUp: remote.up,
      bytesDown: remote.down,
      sessions: remote.sessions,
      lastSeen: remote.lastSeen,
      ips: remote.ips,
    };
    for (const p of [this.#inflight.get(k), this.#pending.get(k)]) {
      if (!p) continue;
      row.bytesUp += p.up;
      row.bytesDown += p.down;
      row.sessions += p.sessions;
      row.lastSeen = Math.max(row.lastSeen, p.lastSeen);
    }
    return row;
  }

  override resetUsage(name: string, period: string | null): void {
    super.resetUsage(name, period);
    const matches = (k: string) =>
      k.startsWith(`${name}\t`) && (period === null || k.endsWith(`\t${period}`));
    for (const map of [this.#pending, this.#inflight, this.#remote])
      for (const k of [...map.keys()]) if (matches(k)) map.delete(k);
    this.#resets.push({ name, period });
    void this.sync();
  }

  /** Usage deltas not yet acknowledged by Redis (status). */
  get pendingDeltas(): number {
    return this.#pending.size + this.#inflight.size;
  }

  /** Push pending deltas and pull the fleet's totals of the usage this node looks at. */
  sync(): Promise<void> {
    this.#syncing ??= this.#sync().finally(() => {
      this.#syncing = null;
    });
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    if (!this.#link.up) return;
    await this.#pushUserWrites();
    if (this.#reloadDue) {
      this.#reloadDue = false;
      if (await this.load()) this.#hooks?.usersChanged();
    }
    const now = Date.now();
    for (const [k, at] of this.#watched) if (now - at > WATCH_MS) this.#watched.delete(k);
    for (const p of this.#pending.values()) merge(this.#inflight, p);
    for (const k of this.#inflight.keys()) this.#watched.set(k, now);
    this.#pending = new Map();
    const inflight = this.#inflight;
    const resets = this.#resets.splice(0);
    const r = this.#link.redis;
    const pipeline = r.pipeline();
    for (const { name, period } of resets) {
      if (period !== null)
        pipeline.del(this.#link.key('usage', name, period), this.#link.key('ips', name, period));
      else pipeline.eval(DELETE_ALL, 0, this.#link.key('usage', name, ''), this.#link.key('ips', name, ''));
      pipeline.publish(this.#events, JSON.stringify({ type: 'usage-reset', from: this.#node, name, period }));
    }
    for (const p of inflight.values()) {
      const usage = this.#link.key('usage', p.user, p.period);
      if (p.up) pipeline.hincrby(usage, 'up', p.up);
      if (p.down) pipeline.hincrby(usage, 'down', p.down);
      if (p.sessions) pipeline.hincrby(usage, 'sessions', p.sessions);
      pipeline.eval(MAX_FIELD, 1, usage, 'last_seen', p.lastSeen);
      if (p.ips.size > 0) pipeline.sadd(this.#link.key('ips', p.user, p.period), ...p.ips);
    }
    const watched = [...this.#watched.keys()];
    for (const k of watched) {
      const [name, period] = k.split('\t');
      pipeline.hmget(this.#link.key('usage', name, period), 'up', 'down', 'sessions', 'last_seen');
      pipeline.scard(this.#link.key('ips', name, period));
    }
    let results: Awaited<ReturnType<typeof pipeline.exec>>;
    try {
      results = await pipeline.exec();
    } catch (err) {
      this.#link.fail('usage', err);
      this.#resets.unshift(...resets);
      return;
    }
    const failed = results?.find((x) => x[0] !== null)?.[0];
    if (!results || failed) {
      // Whether the increments landed is unknown: the totals are re-read at the next sync, the deltas stay.
      this.#link.fail('usage', failed ?? new Error('no reply'));
      this.#resets.unshift(...resets);
      return;
    }
    this.#inflight = new Map();
    const base = results.length - watched.length * 2;
    let moved = false;
    watched.forEach((k, i) => {
      const [up, down, sessions, lastSeen] = (results[base + i * 2][1] as (string | null)[]).map((v) =>
        Number(v ?? 0),
      );
      const ips = Number(results[base + i * 2 + 1][1] ?? 0);
      const before = this.#remote.get(k);
      if (
        !before ||
        before.up !== up ||
        before.down !== down ||
        before.sessions !== sessions ||
        before.ips !== ips
      )
        moved = true;
      this.#remote.set(k, { up, down, sessions, lastSeen, ips });
    });
    if (moved) {
      try {
        this.#hooks?.usageChanged();
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'cluster: applying the fleet usage failed');
      }
    }
  }
}

/** Set a hash field to a number if it is larger than the stored one. */
const MAX_FIELD = `
local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > v then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
`;

/** Delete every key starting with one of the given prefixes (a user's usage of every period). */
const DELETE_ALL = `
for _, prefix in ipairs(ARGV) do
  local cursor = '0'
  repeat
    local r = redis.call('SCAN', cursor, 'MATCH', prefix .. '*', 'COUNT', 500)
    cursor = r[1]
    for _, k in ipairs(r[2]) do redis.call('DEL', k) end
  until cursor == '0'
end
return 1
`;
