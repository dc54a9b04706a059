/**
 * Users and their usage in the SQLite state database (the same file as the policy tables). Every worker
 * opens it: usage is added as deltas (`bytes = bytes + ?`), so the totals over all workers are the sums
 * on disk, and a worker learns the others' share when it flushes. Tables:
 *
 *   users         users created through the admin API / CLI (name, settings as JSON)
 *   user_secrets  secrets generated for file users that have none (stable over restarts and workers)
 *   user_usage    per user and period: bytes each way, sessions, last seen
 *   user_ips      distinct client addresses per user and period
 *   user_workers  which workers hold sessions of a rate-limited user now (the rate is split between them)
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { retryWhileLocked, TABLES_DB_FILE } from '../policy/tables.ts';
import type { UserConfig } from '../config/users.ts';

export interface UsageRow {
  period: string;
  bytesUp: number;
  bytesDown: number;
  sessions: number;
  lastSeen: number;
  ips: number;
}

export interface UsageDelta {
  user: string;
  period: string;
  up: number;
  down: number;
  sessions: number;
  lastSeen: number;
  ips: string[];
}

/** Months of usage history kept per user (besides the current period): periods that started earlier go. */
export const KEPT_MONTHS = 13;

/** The key (local date, as period keys are) of the oldest period start still kept at `now`. */
export function oldestKeptKey(now: number): string {
  const d = new Date(now);
  const cut = new Date(d.getFullYear(), d.getMonth() - KEPT_MONTHS, d.getDate());
  const pad = (n: number) => (n < 10 ? `0${n}` : String(n));
  return `${cut.getFullYear()}-${pad(cut.getMonth() + 1)}-${pad(cut.getDate())}`;
}

interface StoredUser {
  name: string;
  secret: string | null;
  listeners: string[] | null;
  max_connections: number;
  max_ips: number;
  quota: number;
  quota_period: UserConfig['quotaPeriod'];
  quota_reset_day: number;
  rate: number;
  expires: number | null;
  enabled: boolean;
  ad_tag: string | null;
  note: string;
  tls_domains: string[];
}

function toStored(u: UserConfig): StoredUser {
  return {
    name: u.name,
    secret: u.secret ? u.secret.toString('hex') : null,
    listeners: u.listeners,
    max_connections: u.maxConnections,
    max_ips: u.maxIps,
    quota: u.quota,
    quota_period: u.quotaPeriod,
    quota_reset_day: u.quotaResetDay,
    rate: u.rate,
    expires: u.expires,
    enabled: u.enabled,
    ad_tag: u.adTag ? u.adTag.toString('hex') : null,
    note: u.note,
    tls_domains: u.tlsDomains,
  };
}

function fromStored(s: StoredUser): UserConfig {
  return {
    name: s.name,
    secret: s.secret ? Buffer.from(s.secret, 'hex') : null,
    listeners: s.listeners ?? null,
    maxConnections: s.max_connections ?? 0,
    maxIps: s.max_ips ?? 0,
    quota: s.quota ?? 0,
    quotaPeriod: s.quota_period ?? 'monthly',
    quotaResetDay: s.quota_reset_day ?? 1,
    rate: s.rate ?? 0,
    expires: s.expires ?? null,
    enabled: s.enabled !== false,
    adTag: s.ad_tag ? Buffer.from(s.ad_tag, 'hex') : null,
    note: s.note ?? '',
    tlsDomains: s.tls_domains ?? [],
  };
}

export class UserStore {
  readonly file: string;
  readonly #db: DatabaseSync;
  readonly #addUsage: StatementSync;
  readonly #addIp: StatementSync;
  readonly #countIps: StatementSync;
  readonly #readUsage: StatementSync;

  /** `stateDir` null keeps everything in memory (tests, or no state folder). */
  constructor(stateDir: string | null) {
    if (stateDir) {
      mkdirSync(stateDir, { recursive: true });
      this.file = join(stateDir, TABLES_DB_FILE);
    } else {
      this.file = ':memory:';
    }
    const db = new DatabaseSync(this.file);
    this.#db = db;
    db.exec('PRAGMA busy_timeout = 2000');
    retryWhileLocked(() => {
      if (stateDir) db.exec('PRAGMA journal_mode = WAL');
      db.exec(
        `CREATE TABLE IF NOT EXISTS users (
           name TEXT PRIMARY KEY, settings TEXT NOT NULL, created_at INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS user_secrets (
           name TEXT PRIMARY KEY, secret TEXT NOT NULL
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS user_usage (
           name TEXT NOT NULL, period TEXT NOT NULL,
           bytes_up INTEGER NOT NULL DEFAULT 0, bytes_down INTEGER NOT NULL DEFAULT 0,
           sessions INTEGER NOT NULL DEFAULT 0, last_seen INTEGER NOT NULL DEFAULT 0,
           PRIMARY KEY (name, period)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS user_ips (
           name TEXT NOT NULL, period TEXT NOT NULL, ip TEXT NOT NULL,
           PRIMARY KEY (name, period, ip)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS user_workers (
           name TEXT NOT NULL, worker TEXT NOT NULL, seen INTEGER NOT NULL,
           PRIMARY KEY (name, worker)
         ) WITHOUT ROWID;`,
      );
    });
    this.#addUsage = db.prepare(
      `INSERT INTO user_usage (name, period, bytes_up, bytes_down, sessions, last_seen) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (name, period) DO UPDATE SET bytes_up = bytes_up + excluded.bytes_up,
         bytes_down = bytes_down + excluded.bytes_down, sessions = sessions + excluded.sessions,
         last_seen = max(last_seen, excluded.last_seen)`,
    );
    this.#addIp = db.prepare('INSERT OR IGNORE INTO user_ips (name, period, ip) VALUES (?, ?, ?)');
    this.#countIps = db.prepare('SELECT count(*) AS n FROM user_ips WHERE name = ? AND period = ?');
    this.#readUsage = db.prepare(
      'SELECT period, bytes_up, bytes_down, sessions, last_seen FROM user_usage WHERE name = ? AND period = ?',
    );
  }

  // ---- users created at run time ---------------------------------------------------------------------

  listUsers(): UserConfig[] {
    const rows = this.#db.prepare('SELECT settings FROM users ORDER BY name').all() as Array<{
      settings: string;
    }>;
    return rows.map((r) => fromStored(JSON.parse(r.settings) as StoredUser));
  }

  /** Insert or replace a run-time user. */
  saveUser(u: UserConfig): void {
    this.#db
      .prepare(
        `INSERT INTO users (name, settings, created_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET settings = excluded.settings`,
      )
      .run(u.name, JSON.stringify(toStored(u)), Date.now());
  }

  deleteUser(name: string): boolean {
    return this.#db.prepare('DELETE FROM users WHERE name = ?').run(name).changes > 0;
  }

  /** The secret kept for a file user without one: created once, the same for every worker after that. */
  secretFor(name: string, generate: () => Buffer): Buffer {
    this.#db
      .prepare('INSERT OR IGNORE INTO user_secrets (name, secret) VALUES (?, ?)')
      .run(name, generate().toString('hex'));
    const row = this.#db.prepare('SELECT secret FROM user_secrets WHERE name = ?').get(name) as
      | { secret: string }
      | undefined;
    return Buffer.from(row!.secret, 'hex');
  }

  // ---- usage -----------------------------------------------------------------------------------------

  /** Add the deltas (one transaction). */
  addUsage(deltas: readonly UsageDelta[]): void {
    if (deltas.length === 0) return;
    const db = this.#db;
    db.exec('BEGIN IMMEDIATE');
    try {
      for (const d of deltas) {
        this.#addUsage.run(d.user, d.period, d.up, d.down, d.sessions, d.lastSeen);
        for (const ip of d.ips) this.#addIp.run(d.user, d.period, ip);
      }
      db.exec('COMMIT');
    } catch (e) {
      db.exec('ROLLBACK');
      throw e;
    }
  }

  usage(name: string, period: string): UsageRow {
    const row = this.#readUsage.get(name, period) as
      | { period: string; bytes_up: number; bytes_down: number; sessions: number; last_seen: number }
      | undefined;
    const ips = (this.#countIps.get(name, period) as { n: number }).n;
    return {
      period,
      bytesUp: row?.bytes_up ?? 0,
      bytesDown: row?.bytes_down ?? 0,
      sessions: row?.sessions ?? 0,
      lastSeen: row?.last_seen ?? 0,
      ips,
    };
  }

  /** Every period on record for a user, newest first. */
  history(name: string): UsageRow[] {
    const rows = this.#db
      .prepare('SELECT period FROM user_usage WHERE name = ? ORDER BY period DESC')
      .all(name) as Array<{ period: string }>;
    return rows.map((r) => this.usage(name, r.period));
  }

  /** Drop a user's usage for one period (`reset`), or all of it (period null). */
  resetUsage(name: string, period: string | null): void {
    if (period === null) {
      this.#db.prepare('DELETE FROM user_usage WHERE name = ?').run(name);
      this.#db.prepare('DELETE FROM user_ips WHERE name = ?').run(name);
    } else {
      this.#db.prepare('DELETE FROM user_usage WHERE name = ? AND period = ?').run(name, period);
      this.#db.prepare('DELETE FROM user_ips WHERE name = ? AND period = ?').run(name, period);
    }
  }

  /**
   * Forget the periods that started more than KEPT_MONTHS months before `now` (the `total` period stays):
   * the current period and at least the twelve months before it are always kept, whatever the period kind.
   */
  prune(now: number): void {
    const oldest = oldestKeptKey(now);
    const db = this.#db;
    db.prepare("DELETE FROM user_usage WHERE period <> 'total' AND period < ?").run(oldest);
    db.prepare("DELETE FROM user_ips WHERE period <> 'total' AND period < ?").run(oldest);
  }

  // ---- rate shares -----------------------------------------------------------------------------------

  /**
   * Record that `worker` holds sessions of exactly the users in `names` (rows of its other users go), at
   * `seen` (ms); answer how many workers seen since `since` hold sessions of each of those users.
   */
  shareRates(worker: string, names: readonly string[], seen: number, since: number): Map<string, number> {
    const db = this.#db;
    const out = new Map<string, number>();
    db.exec('BEGIN IMMEDIATE');
    try {
      const mine = db.prepare('SELECT name FROM user_workers WHERE worker = ?').all(worker) as Array<{
        name: string;
      }>;
      const keep = new Set(names);
      const drop = db.prepare('DELETE FROM user_workers WHERE name = ? AND worker = ?');
      for (const r of mine) if (!keep.has(r.name)) drop.run(r.name, worker);
      const put = db.prepare(
        `INSERT INTO user_workers (name, worker, seen) VALUES (?, ?, ?)
         ON CONFLICT (name, worker) DO UPDATE SET seen = excluded.seen`,
      );
      const count = db.prepare('SELECT count(*) AS n FROM user_workers WHERE name = ? AND seen >= ?');
      for (const name of names) {
        put.run(name, worker, seen);
        out.set(name, (count.get(name, since) as { n: number }).n);
      }
      db.exec('COMMIT');
    } catch (e) {
      db.exec('ROLLBACK');
      throw e;
    }
    return out;
  }

  /** `worker` holds sessions of `name` from now on: how many workers seen since `since` do (with it). */
  joinRate(name: string, worker: string, seen: number, since: number): number {
    this.#db
      .prepare(
        `INSERT INTO user_workers (name, worker, seen) VALUES (?, ?, ?)
         ON CONFLICT (name, worker) DO UPDATE SET seen = excluded.seen`,
      )
      .run(name, worker, seen);
    return this.rateWorkers(name, since);
  }

  /** How many workers seen since `since` hold sessions of `name` (0 when none). */
  rateWorkers(name: string, since: number): number {
    const row = this.#db
      .prepare('SELECT count(*) AS n FROM user_workers WHERE name = ? AND seen >= ?')
      .get(name, since) as { n: number };
    return row.n;
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}
