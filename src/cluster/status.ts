/**
 * What `mtproxy status --cluster` (GET /cluster of the admin API) shows: this node's role and its health in
 * the fleet (the Redis link, what it holds and what it still owes Redis), every node the fleet's Redis
 * knows with its sessions, and a front's backs or a back's fronts with the sessions on each link.
 */
import { formatNodes, type NodeView } from './shared-state/nodes.ts';
import type { ClusterStatus } from './shared-state/index.ts';

export interface ClusterDocument {
  role: 'both' | 'front' | 'back';
  /** This node in the shared state (null without `[cluster] redis`). */
  node: ClusterStatus | null;
  /** The fleet's nodes; null without Redis, or while it cannot be asked (then `nodesError` says why). */
  nodes: NodeView[] | null;
  nodesError?: string;
  /** Front: its backs and the sessions on each link. */
  backs?: { back: string; up: boolean; peer: string | null; streams: number }[];
  /** Back: the fronts linked to it. */
  fronts?: { name: string; streams: number }[];
}

/** One line of `mtproxy status` about the cluster; null on a machine alone. */
export function formatClusterLine(node: ClusterStatus | null | undefined, role: string): string | null {
  if (!node) return role === 'both' ? null : `cluster: role ${role}`;
  const health =
    node.redis === 'up' ? 'Redis up' : `Redis DOWN since ${node.downSince ?? '?'}, serving from local state`;
  const owed = node.pendingUsage + node.pendingTableEdits;
  return `cluster: role ${role}, node ${node.node}; ${health}; ${node.leases} leases held${owed > 0 ? `, ${owed} changes waiting for Redis` : ''}`;
}

export function formatCluster(doc: ClusterDocument, now = Date.now()): string {
  const lines: string[] = [];
  const n = doc.node;
  lines.push(
    formatClusterLine(n, doc.role) ?? `cluster: role ${doc.role}, no shared state ([cluster] redis unset)`,
  );
  if (n) {
    const errors = Object.entries(n.errors);
    if (errors.length > 0) lines.push(`Redis errors: ${errors.map(([k, v]) => `${k} ${v}`).join(', ')}`);
    if (n.replayLocalOnly > 0 || n.localLimitDecisions > 0)
      lines.push(
        `decided without Redis: ${n.replayLocalOnly} replay checks, ${n.localLimitDecisions} limit checks`,
      );
  }
  if (doc.nodes) {
    lines.push('', formatNodes(doc.nodes, now).trimEnd());
  } else if (n) {
    lines.push('', `nodes: unknown (${doc.nodesError ?? 'Redis cannot be asked'})`);
  }
  if (doc.backs) {
    lines.push('', 'backs:');
    if (doc.backs.length === 0) lines.push('  none configured');
    for (const b of doc.backs)
      lines.push(
        `  ${b.back} ${b.up ? 'up' : 'DOWN'}${b.peer ? ` (${b.peer})` : ''}, ${b.streams} session(s)`,
      );
  }
  if (doc.fronts) {
    lines.push('', 'fronts linked:');
    if (doc.fronts.length === 0) lines.push('  none');
    for (const f of doc.fronts) lines.push(`  ${f.name}, ${f.streams} session(s)`);
  }
  return `${lines.join('\n')}\n`;
}
