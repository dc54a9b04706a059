/**
 * Shared plumbing of the CLI commands that talk to a running proxy (status, links, table, reload): they find
 * the admin API through the same config file the proxy runs with, and turn API errors into one line.
 */
import type { CliContext } from './command.ts';
import { AdminClient, AdminClientError } from '../admin/client.ts';

async function adminClientFor(ctx: CliContext): Promise<AdminClient> {
  const { config } = await ctx.loadConfig();
  return AdminClient.fromConfig(config);
}

/** Runs `body` with a client; an unreachable API or an API error prints one line and exits 1. */
export async function withAdmin(
  ctx: CliContext,
  commandName: string,
  body: (client: AdminClient) => Promise<number>,
): Promise<number> {
  try {
    return await body(await adminClientFor(ctx));
  } catch (e) {
    if (e instanceof AdminClientError) {
      const hint =
        e.status === 401 ? ' (does admin.token match the running proxy? try `mtproxy reload`)' : '';
      ctx.err(`mtproxy ${commandName}: ${e.message}${hint}`);
      return 1;
    }
    throw e;
  }
}
