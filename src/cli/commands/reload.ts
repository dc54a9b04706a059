/** `mtproxy reload`: make the running proxy re-read its config file (same as SIGHUP), and say whether it took. */
import { withAdmin } from '../admin-support.ts';
import { AdminClient, failedResponseError } from '../../admin/client.ts';
import { ConfigError } from '../../config/load.ts';
import type { CliCommand } from '../command.ts';

export const command: CliCommand = {
  name: 'reload',
  summary: 'Make the running proxy re-read its config file (needs [admin]; or send SIGHUP)',
  usage: 'reload [--config FILE]',
  async run(ctx) {
    // The file the proxy would re-read is the one that tells us where its API is: when it does not parse,
    // say so plainly (the proxy would refuse it the same way and keep its running config).
    try {
      AdminClient.fromConfig((await ctx.loadConfig()).config);
    } catch (e) {
      if (e instanceof ConfigError) {
        ctx.err(
          `mtproxy reload: not sent, the config file is invalid (the running config stays): ${e.message}`,
        );
        return 1;
      }
    }
    return withAdmin(ctx, 'reload', async (client) => {
      const res = await client.request<{ ok: boolean; error?: string }>('POST', '/reload');
      if (res.status === 200 && res.body?.ok) {
        ctx.out('reload applied');
        return 0;
      }
      if (res.status === 422 && res.body && typeof res.body.error === 'string') {
        ctx.err(`mtproxy reload: refused, the running config stays: ${res.body.error}`);
        return 1;
      }
      throw failedResponseError(res);
    });
  },
};
