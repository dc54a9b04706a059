/**
 * Policy tables shared by the fleet: `<prefix>table:<name>` is a set of canonical values and
 * `<prefix>tables` the set of table names. The node keeps its SQLite copy (what it serves from, and what
 * it falls back to without Redis); an edit goes to the copy, then to Redis with an announcement on the
 * fleet's channel, and every node re-reads the tables. Edits made while Redis is away are sent when it is
 * back.
 */
import { PolicyTables } from '../../policy/tables.ts';
import type { SharedStateLink } from './client.ts';

type Edit = { op: 'add' | 'remove'; table: string; value: string };

export class ClusterPolicyTables extends PolicyTables {
  #link: SharedStateLink | null = null;
  #node = '';
  /** Edits not in Redis yet, the last one per table value (so the queue is bounded by the tables' size). */
  #edits = new Map<string, Edit>();
  /** Called when another node's edits were applied here. */
  onChange: (() => void) | null = null;

  /** Set after construction (the base class reads the database in its constructor). */
  bind(link: SharedStateLink, nodeId: string): this {
    this.#link = link;
    this.#node = nodeId;
    return this;
  }

  override add(table: string, value: string): boolean {
    const added = super.add(table, value);
    if (added) this.#queue({ op: 'add', table, value });
    return added;
  }

  override remove(table: string, value: string): boolean {
    const removed = super.remove(table, value);
    if (removed) this.#queue({ op: 'remove', table, value });
    return removed;
  }

  #queue(edit: Edit): void {
    const k = `${edit.table}\n${edit.value}`;
    // Only the last edit of a value matters; it goes to the end of the queue.
    this.#edits.delete(k);
    this.#edits.set(k, edit);
    void this.push();
  }

  onEvent(event: { type: string; from?: string }): void {
    if (event.type === 'tables' && event.from !== this.#node) void this.load();
  }

  /** Send queued edits; what fails stays queued. */
  async push(): Promise<void> {
    const link = this.#link;
    if (!link?.up || this.#edits.size === 0) return;
    const edits = [...this.#edits.values()];
    this.#edits = new Map();
    const m = link.redis.multi();
    for (const e of edits) {
      if (e.op === 'add') m.sadd(link.key('table', e.table), e.value).sadd(link.key('tables'), e.table);
      else m.srem(link.key('table', e.table), e.value);
    }
    m.set(link.key('tables-seeded'), '1');
    // Bumped with every edit: a node that missed the announcement sees it at its next heartbeat.
    m.incr(link.key('tables-version'));
    m.publish(link.key('events'), JSON.stringify({ type: 'tables', from: this.#node }));
    try {
      await m.exec();
    } catch (err) {
      link.fail('tables', err);
      // Put back what failed, unless the value was edited again meanwhile (the newer edit wins).
      const newer = this.#edits;
      this.#edits = new Map();
      for (const e of edits) this.#edits.set(`${e.table}\n${e.value}`, e);
      for (const [k, e] of newer) {
        this.#edits.delete(k);
        this.#edits.set(k, e);
      }
    }
  }

  /**
   * Make the local copy equal to Redis (the first node to connect seeds Redis with its own tables instead).
   * True when something changed here.
   */
  async load(): Promise<boolean> {
    const link = this.#link;
    if (!link?.up) return false;
    try {
      await this.push();
      const r = link.redis;
      if ((await r.exists(link.key('tables-seeded'))) === 0) {
        for (const { name } of this.summaries())
          for (const v of this.list(name)) this.#queueQuietly({ op: 'add', table: name, value: v });
        if (this.#edits.size === 0) await r.set(link.key('tables-seeded'), '1');
        await this.push();
        return false;
      }
      const names = await r.smembers(link.key('tables'));
      const pipeline = r.pipeline();
      for (const n of names) pipeline.smembers(link.key('table', n));
      const results = (await pipeline.exec()) ?? [];
      const fleet = new Map<string, Set<string>>();
      names.forEach((n, i) => {
        fleet.set(n, new Set((results[i]?.[1] as string[] | undefined) ?? []));
      });
      let changed = false;
      for (const [name, values] of fleet) {
        for (const v of values) if (super.add(name, v)) changed = true;
      }
      for (const { name } of this.summaries()) {
        const want = fleet.get(name);
        for (const v of this.list(name)) if (!want?.has(v) && super.remove(name, v)) changed = true;
      }
      if (changed) this.onChange?.();
      return changed;
    } catch (err) {
      link.fail('tables', err);
      return false;
    }
  }

  #queueQuietly(edit: Edit): void {
    const k = `${edit.table}\n${edit.value}`;
    if (!this.#edits.has(k)) this.#edits.set(k, edit);
  }

  /** Edits not yet in Redis (status). */
  get pendingEdits(): number {
    return this.#edits.size;
  }
}
