/** `mtproxy status`: uptime, version, sessions by listener / protocol / DC and upstream state, from the admin API. */
import { withAdmin } from '../admin-support.ts';
import { formatStatus, type ProxyStatus } from '../../admin/status.ts';
import type { CliCommand } from '../command.ts';
import { formatTopUsers } from '../../users/api.ts';

export const command: CliCommand = {
  name: 'status',
  summary: 'Show what the running proxy is doing (needs [admin] in the config)',
  details:
    'Uptime, sessions by listener, protocol and DC, handshake failures by stage, client-hello fingerprints (JA4), policy rejections, the upstream state and, in middle mode, stalled links, fallbacks to direct and migrations per DC.',
  usage: 'status [--config FILE] [--json]',
  options: {
    json: { type: 'boolean', description: 'Print the raw JSON document' },
  },
  run(ctx) {
    return withAdmin(ctx, 'status', async (client) => {
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
