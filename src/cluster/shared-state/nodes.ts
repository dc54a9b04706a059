/**
 * The fleet's node registry: every node writes `<prefix>alive:<id>` (expiring after `node_timeout`) and
 * its entry in the hash `<prefix>nodes` at each heartbeat. A node whose alive key expired is dead: its
 * connection leases stop counting (counters.ts), and `mtproxy status --cluster` shows it as gone until it
 * has been silent for an hour.
 */
import type { SharedStateLink } from './client.ts';

const FORGET_AFTER_MS = 3600_000;

export interface NodeInfo {
  id: string;
  name: string;
  pid: number;
  version: string;
  /** The node's `[cluster] role` (absent in entries written by older versions). */
  role?: 'both' | 'front' | 'back';
  startedAt: number;
  seenAt: number;
  sessions: number;
  /** Slots of max_connections / user limits this node's sessions hold. */
  leases: number;
  /** Usage deltas and table edits waiting for Redis (non-zero right after an outage). */
  pending: number;
}

export interface NodeView extends NodeInfo {
  alive: boolean;
}

export async function heartbeat(link: SharedStateLink, info: NodeInfo, ttlMs: number): Promise<void> {
  const text = JSON.stringify(info);
  await link.redis
    .multi()
    .set(link.key('alive', info.id), text, 'PX', ttlMs)
    .hset(link.key('nodes'), info.id, text)
    .exec();
}

/** A node stopping cleanly leaves at once (its leases are given back by its sessions anyway). */
export async function leave(link: SharedStateLink, id: string): Promise<void> {
  await link.redis.multi().del(link.key('alive', id)).hdel(link.key('nodes'), id).exec();
}

/** Every node the fleet knows, alive first, then by name. */
export async function listNodes(link: SharedStateLink, now = Date.now()): Promise<NodeView[]> {
  const all = await link.redis.hgetall(link.key('nodes'));
  const ids = Object.keys(all);
  const alive = ids.length === 0 ? [] : await link.redis.mget(...ids.map((id) => link.key('alive', id)));
  const out: NodeView[] = [];
  const stale: string[] = [];
  ids.forEach((id, i) => {
    let info: NodeInfo;
    try {
      info = JSON.parse(alive[i] ?? all[id]) as NodeInfo;
    } catch {
      return;
    }
    const isAlive = alive[i] !== null;
    if (!isAlive && now - info.seenAt > FORGET_AFTER_MS) stale.push(id);
    else out.push({ ...info, alive: isAlive });
  });
  if (stale.length > 0) await link.redis.hdel(link.key('nodes'), ...stale);
  return out.sort(
    (a, b) => Number(b.alive) - Number(a.alive) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id),
  );
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

/** The table `mtproxy status --cluster` prints. */
export function formatNodes(nodes: readonly NodeView[], now = Date.now()): string {
  const rows = [['NODE', 'STATE', 'SESSIONS', 'LEASES', 'PENDING', 'SEEN', 'UP', 'PID', 'VERSION']];
  for (const n of nodes) {
    rows.push([
      n.name,
      n.alive ? 'alive' : 'gone',
      String(n.sessions),
      String(n.leases),
      String(n.pending),
      `${ago(now - n.seenAt)} ago`,
      ago(now - n.startedAt),
      String(n.pid),
      n.version,
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const lines = rows.map((r) =>
    r
      .map((cell, c) => cell.padEnd(widths[c]))
      .join('  ')
      .trimEnd(),
  );
  const alive = nodes.filter((n) => n.alive);
  lines.push(`${alive.length} node(s) alive, ${alive.reduce((s, n) => s + n.sessions, 0)} session(s) open`);
  return `${lines.join('\n')}\n`;
}
