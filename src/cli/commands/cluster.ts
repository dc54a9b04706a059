/** `mtproxy cluster certs`: a CA and one certificate per node for the links between fronts and backs. */
import { isNodeName } from '../../cluster/front-back/node-name.ts';
import type { CliCommand } from '../command.ts';

const USAGE = 'cluster certs --out DIR --nodes NAME[,NAME...] [--days N]';

export const command: CliCommand = {
  name: 'cluster',
  summary: 'Generate the certificates of a front/back cluster (a CA and one per node)',
  details:
    'A folder that already holds ca.crt and ca.key keeps its CA, which signs the new nodes: run it again with the same --out to add a node to a running fleet.',
  usage: USAGE,
  options: {
    out: { type: 'string', valueName: 'DIR', description: 'Folder for the files (created; files mode 0600)' },
    nodes: { type: 'string', valueName: 'NAMES', description: 'Node names, comma-separated (one cert each)' },
    days: { type: 'string', valueName: 'N', description: 'Validity in days (default 3650)' },
  },
  async run(ctx) {
    const [action, ...extra] = ctx.positionals;
    const { out, nodes, days } = ctx.values;
    const names = typeof nodes === 'string' ? nodes.split(',').map((n) => n.trim()) : [];
    const validity = days === undefined ? 3650 : Number(days);
    if (
      action !== 'certs' ||
      extra.length > 0 ||
      typeof out !== 'string' ||
      names.length === 0 ||
      !Number.isInteger(validity) ||
      validity < 1
    ) {
      ctx.err(`mtproxy cluster: usage: mtproxy ${USAGE}`);
      return 2;
    }
    const bad = names.find((n) => !isNodeName(n) || n === 'ca');
    if (bad !== undefined || new Set(names).size !== names.length) {
      ctx.err(
        `mtproxy cluster: --nodes: expected distinct names of letters, digits, ".", "_", "-" (not "ca"), got ${JSON.stringify(bad ?? nodes)}`,
      );
      return 2;
    }
    // The certificate library is loaded only by this command.
    const { generateClusterCerts } = await import('../../cluster/front-back/certs.ts');
    let written: Awaited<ReturnType<typeof generateClusterCerts>>;
    try {
      written = await generateClusterCerts(out, names, validity);
    } catch (err) {
      ctx.err(`mtproxy cluster: ${out}: ${(err as Error).message}`);
      return 1;
    }
    const dir = out.replace(/\/$/, '');
    if (written.reusedCa) ctx.out(`signed with the fleet's CA already in ${dir} (ca.crt, ca.key)`);
    for (const f of written.files) ctx.out(`wrote ${dir}/${f}`);
    ctx.out(
      'copy ca.crt and <node>.crt/.key to each node; keep ca.key offline (run this again with the same --out to add nodes)',
    );
    return 0;
  },
};
