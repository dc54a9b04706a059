/** `mtproxy status`: uptime, version, sessions by listener / protocol / DC and upstream state, from the admin API. */
import { withAdmin } from '../admin-support.ts';
import { formatStatus, type ProxyStatus } from '../../admin/status.ts';
import { type ClusterDocument, formatCluster } from '../../cluster/status.ts';
import type { CliCommand } from '../command.ts';
import { formatTopUsers } from '../../users/api.ts';

export const command: CliCommand = {
  name: 'status',
  summary: 'Show what the running proxy is doing (needs [admin] in the config)',
  details:
    "Uptime, sessions by listener, protocol and DC, handshake failures by stage, client-hello fingerprints (JA4), policy rejections, the upstream state and, in middle mode, stalled links, fallbacks to direct and migrations per DC. With --cluster: the fleet, every node the shared Redis knows (alive or gone, sessions, connection leases, changes still waiting for Redis), this node's Redis health, and a front's backs with the sessions on each link.",
  usage: 'status [--config FILE] [--cluster] [--json]',
  options: {
    cluster: {
      type: 'boolean',
      description:
        "The fleet instead: every node's sessions and health, this node's Redis link, a front's backs",
    },
    json: { type: 'boolean', description: 'Print the raw JSON document' },
  },
  run(ctx) {
    return withAdmin(ctx, 'status', async (client) => {
      if (ctx.values.cluster) {
        const doc = await client.call<ClusterDocument>('GET', '/cluster');
        ctx.out(ctx.values.json ? JSON.stringify(doc, null, 2) : formatCluster(doc).trimEnd());
        return 0;
      }
      const status = await client.call<ProxyStatus & { users?: Parameters<typeof formatTopUsers>[0] }>(
        'GET',
        '/status',
      );
      if (ctx.values.json) ctx.out(JSON.stringify(status, null, 2));
      else ctx.out([formatStatus(status).trimEnd(), ...formatTopUsers(status.users)].join('\n'));
      return 0;
    });
  },
};
