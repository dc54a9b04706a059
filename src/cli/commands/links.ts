/**
 * `mtproxy links`: the links the running proxy serves (real bound ports), each with a QR code for the
 * terminal so a phone can scan it. `mtproxy link` prints the same from the config file without a proxy.
 */
import { withAdmin } from '../admin-support.ts';
import type { LinksDocument } from '../../admin/status.ts';
import type { CliCommand } from '../command.ts';
import { qrMatrix, qrTerminal } from '../../links/qr.ts';

export const command: CliCommand = {
  name: 'links',
  summary: "Show the running proxy's links with QR codes (needs [admin] in the config)",
  usage: 'links [--config FILE] [--listener NAME] [--no-qr] [--json]',
  options: {
    listener: { type: 'string', valueName: 'NAME', description: 'Only this listener' },
    'no-qr': { type: 'boolean', description: 'Links only, no QR codes' },
    json: { type: 'boolean', description: 'One JSON object per link' },
  },
  run(ctx) {
    return withAdmin(ctx, 'links', async (client) => {
      const doc = await client.call<LinksDocument>('GET', '/links');
      const only = typeof ctx.values.listener === 'string' ? ctx.values.listener : null;
      const links = doc.links.filter((l) => !only || l.listener === only);
      if (links.length === 0) {
        ctx.err(`mtproxy links: no links${only ? ` for listener "${only}"` : ''}`);
        return 1;
      }
      for (const link of links) {
        if (ctx.values.json) {
          ctx.out(JSON.stringify(link));
          continue;
        }
        const kind = link.domain ? `${link.protocol} ${link.domain}` : link.protocol;
        ctx.out(`${link.listener} ${kind}:`);
        ctx.out(`  ${link.tg}`);
        ctx.out(`  ${link.https}`);
        if (!ctx.values['no-qr']) ctx.out(qrTerminal(qrMatrix(link.https)));
      }
      return 0;
    });
  },
};
