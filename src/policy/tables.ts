/**
 * Named policy tables (allow/deny lists), persisted in SQLite in the state folder so they survive restarts.
 * Reads on the connection path hit an in-memory Set per table; SQLite is touched only when an operator edits
 * a table or at start-up. Values are stored in their canonical form (see keys.ts canonicalTableValue).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { isValidName } from '../config/policy-keys.ts';

export const TABLES_DB_FILE = 'policy-tables.sqlite';
export const isValidTableName = isValidName;

/** The read side the engine needs on every admission. */
export interface TableLookup {
  has(table: string, value: string): boolean;
}

const LOCKED_RETRY_MS = 5000;
const LOCKED_PAUSE_MS = 20;

/** Run `step` again while SQLite says the database is locked, for up to `forMs` (start-up only: it blocks). */
export function retryWhileLocked<T>(step: () => T, forMs = LOCKED_RETRY_MS): T {
  const until = Date.now() + forMs;
  for (;;) {
    try {
      return step();
    } catch (e) {
      const message = (e as Error).message ?? '';
      const locked = /database (table )?is locked|SQLITE_BUSY/i.test(message);
      if (!locked || Date.now() >= until) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, LOCKED_PAUSE_MS);
    }
  }
}

export interface TableSummary {
  name: string;
  size: number;
}

export class PolicyTables implements TableLookup {
  readonly file: string;
  readonly #db: DatabaseSync;
  readonly #cache = new Map<string, Set<string>>();
  readonly #insert: StatementSync;
  readonly #delete: StatementSync;

  /** `stateDir` null keeps the tables in memory only (tests, or a proxy run without a state folder). */
  constructor(stateDir: string | null) {
    if (stateDir) {
      mkdirSync(stateDir, { recursive: true });
      this.file = join(stateDir, TABLES_DB_FILE);
    } else {
      this.file = ':memory:';
    }
    this.#db = new DatabaseSync(this.file);
    this.#db.exec('PRAGMA busy_timeout = 2000');
    const db = this.#db;
    // Worker processes open the same file at once. Switching to WAL and creating the table can answer
    // "database is locked" without waiting on busy_timeout, so the set-up is retried for a while.
    retryWhileLocked(() => {
      if (stateDir) db.exec('PRAGMA journal_mode = WAL');
      db.exec(
        `CREATE TABLE IF NOT EXISTS policy_table_values (
           table_name TEXT NOT NULL,
           value TEXT NOT NULL,
           added_at INTEGER NOT NULL,
           PRIMARY KEY (table_name, value)
         ) WITHOUT ROWID`,
      );
    });
    this.#insert = this.#db.prepare(
      'INSERT OR IGNORE INTO policy_table_values (table_name, value, added_at) VALUES (?, ?, ?)',
    );
    this.#delete = this.#db.prepare('DELETE FROM policy_table_values WHERE table_name = ? AND value = ?');
    this.refresh();
  }

  /** Re-read everything from disk (another process or worker may have edited the tables). */
  refresh(): void {
    const rows = this.#db.prepare('SELECT table_name, value FROM policy_table_values').all() as Array<{
      table_name: string;
      value: string;
    }>;
    this.#cache.clear();
    for (const row of rows) this.#values(row.table_name).add(row.value);
  }

  /** The cached values of a table, created empty on first use. */
  #values(table: string): Set<string> {
    let set = this.#cache.get(table);
    if (!set) {
      set = new Set();
      this.#cache.set(table, set);
    }
    return set;
  }

  has(table: string, value: string): boolean {
    const set = this.#cache.get(table);
    return set?.has(value) === true;
  }

  /** Adds a canonical value; false when it was already there. */
  add(table: string, value: string): boolean {
    if (!isValidTableName(table)) throw new RangeError(`invalid table name "${table}"`);
    if (this.has(table, value)) return false;
    this.#insert.run(table, value, Date.now());
    this.#values(table).add(value);
    return true;
  }

  /** Removes a canonical value; false when it was not there. */
  remove(table: string, value: string): boolean {
    const set = this.#cache.get(table);
    if (!set?.has(value)) return false;
    this.#delete.run(table, value);
    set.delete(value);
    if (set.size === 0) this.#cache.delete(table);
    return true;
  }

  /** Values in insertion-independent sorted order; empty for an unknown table. */
  list(table: string): string[] {
    return [...(this.#cache.get(table) ?? [])].sort();
  }

  size(table: string): number {
    return this.#cache.get(table)?.size ?? 0;
  }

  /** Tables that hold at least one value. */
  summaries(): TableSummary[] {
    return [...this.#cache.entries()]
      .map(([name, set]) => ({ name, size: set.size }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}
