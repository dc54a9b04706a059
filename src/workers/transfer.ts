/**
 * What crosses the thread boundary. Structured clone keeps Maps, arrays and plain objects but turns Buffers
 * into Uint8Arrays and drops class prototypes, so the config gets its Buffers back and stats snapshots are
 * poured back into real Stats objects on arrival.
 */
import type { Config } from '../config/types.ts';
import { Stats } from '../metrics/stats.ts';

/** Give a structured-cloned value its Buffers back (in place where possible). */
export function reviveBuffers<T>(value: T): T {
  return revive(value) as T;
}

function revive(v: unknown): unknown {
  if (v instanceof Uint8Array)
    return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = revive(v[i]);
    return v;
  }
  if (v instanceof Map) {
    for (const [k, x] of v) v.set(k, revive(x));
    return v;
  }
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = revive(o[k]);
    return o;
  }
  return v;
}

export function reviveConfig(config: Config): Config {
  return reviveBuffers(config);
}

/** A cloneable copy of a Stats object (the fields of every listener/DC entry, Maps kept as Maps). */
export type StatsSnapshot = {
  listeners: Map<string, Record<string, unknown>>;
  dcs: Map<number, Record<string, unknown>>;
  fields: Record<string, unknown>;
};

function plainFields(o: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (typeof v === 'function') continue;
    out[k] = v instanceof Map ? new Map(v) : v !== null && typeof v === 'object' ? { ...v } : v;
  }
  return out;
}

export function snapshotStats(stats: Stats): StatsSnapshot {
  const listeners = new Map<string, Record<string, unknown>>();
  for (const [name, l] of stats.listeners) listeners.set(name, plainFields(l));
  const dcs = new Map<number, Record<string, unknown>>();
  for (const [id, d] of stats.dcs) dcs.set(id, plainFields(d));
  const fields = plainFields(stats);
  delete fields.listeners;
  delete fields.dcs;
  return { listeners, dcs, fields };
}

/** Copy (or with `add`, sum) snapshot fields into a live object: numbers, Maps of numbers, records of numbers. */
function pour(target: Record<string, unknown>, source: Record<string, unknown>, add: boolean): void {
  for (const [k, v] of Object.entries(source)) {
    const cur = target[k];
    if (typeof v === 'number') {
      if (typeof cur === 'number' || cur === undefined) {
        try {
          target[k] = add ? ((cur as number | undefined) ?? 0) + v : v;
        } catch {
          // Read-only fields (startedAt) keep the live object's value.
        }
      }
    } else if (v instanceof Map && cur instanceof Map) {
      if (!add) cur.clear();
      for (const [mk, mv] of v) cur.set(mk, add ? (cur.get(mk) ?? 0) + mv : mv);
    } else if (
      v !== null &&
      typeof v === 'object' &&
      cur !== null &&
      typeof cur === 'object' &&
      !(cur instanceof Map)
    ) {
      pour(cur as Record<string, unknown>, v as Record<string, unknown>, add);
    } else if (!add && typeof v === 'boolean') {
      target[k] = v;
    }
  }
}

/** A fresh Stats holding a worker's snapshot. */
export function statsFromSnapshot(snap: StatsSnapshot): Stats {
  const stats = new Stats();
  addSnapshot(stats, snap);
  return stats;
}

/** Sum a snapshot into `stats` (used to keep the counters of workers that died). */
export function addSnapshot(stats: Stats, snap: StatsSnapshot): void {
  for (const [name, fields] of snap.listeners)
    pour(stats.listener(name) as unknown as Record<string, unknown>, fields, true);
  for (const [id, fields] of snap.dcs) pour(stats.dc(id) as unknown as Record<string, unknown>, fields, true);
  const own: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(snap.fields)) if (typeof v === 'number' || v instanceof Map) own[k] = v;
  delete own.startedAt;
  pour(stats as unknown as Record<string, unknown>, own, true);
}

/** Gauges describe the present: a dead worker's connections are gone, its totals are kept. */
export function zeroGauges(stats: Stats): void {
  for (const l of stats.listeners.values()) {
    l.connectionsActive = 0;
    for (const k of Object.keys(l.sessionsActive)) l.sessionsActive[k as keyof typeof l.sessionsActive] = 0;
  }
  for (const d of stats.dcs.values()) d.linksActive = 0;
  stats.userSessionsActive.clear();
}
