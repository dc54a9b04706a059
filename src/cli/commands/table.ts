/** `mtproxy table list|add|del`: edit the policy tables of the running proxy (persisted, applied at once). */
import { withAdmin } from '../admin-support.ts';
import type { CliCommand } from '../command.ts';

interface TableSummary {
  name: string;
  key: string | null;
  size: number;
}

const USAGE = 'table list [TABLE] | table add TABLE VALUE | table del TABLE VALUE';

export const command: CliCommand = {
  name: 'table',
  summary: 'List, add or remove policy table values of the running proxy (needs [admin])',
  usage: `${USAGE} [--config FILE] [--json]`,
  options: {
    json: { type: 'boolean', description: 'Print the raw JSON answer' },
  },
  async run(ctx) {
    const [action, table, value, ...extra] = ctx.positionals;
    const arity: Record<string, [number, number]> = { list: [0, 1], add: [2, 2], del: [2, 2], rm: [2, 2] };
    const given = [table, value].filter((x) => x !== undefined).length;
    const range = action ? arity[action] : undefined;
    if (!range || given < range[0] || given > range[1] || extra.length > 0) {
      ctx.err(`mtproxy table: usage: mtproxy ${USAGE}`);
      return 2;
    }
    return withAdmin(ctx, 'table', async (client) => {
      const path = table === undefined ? '/tables' : `/tables/${encodeURIComponent(table)}`;
      if (action === 'list') {
        if (table === undefined) {
          const doc = await client.call<{ tables: TableSummary[] }>('GET', path);
          if (ctx.values.json) ctx.out(JSON.stringify(doc, null, 2));
          else if (doc.tables.length === 0) ctx.out('no tables');
          else for (const t of doc.tables) ctx.out(`${t.name}\t${t.key ?? '-'}\t${t.size} values`);
          return 0;
        }
        const doc = await client.call<TableSummary & { values: string[] }>('GET', path);
        if (ctx.values.json) ctx.out(JSON.stringify(doc, null, 2));
        else for (const v of doc.values) ctx.out(v);
        return 0;
      }
      if (action === 'add') {
        const res = await client.call<{ value: string; added: boolean }>('POST', path, { value });
        if (ctx.values.json) ctx.out(JSON.stringify(res));
        else ctx.out(res.added ? `added ${res.value} to ${table}` : `${res.value} was already in ${table}`);
        // A table no policy refers to changes nothing (often a typo in the table name): say so.
        const summary = await client.call<TableSummary>('GET', path);
        if (summary.key === null)
          ctx.err(
            `mtproxy table: warning: no policy uses table "${table}", so this value has no effect yet ` +
              '(see [[policies]] in the config)',
          );
        return 0;
      }
      const res = await client.call<{ value: string }>('DELETE', path, { value });
      if (ctx.values.json) ctx.out(JSON.stringify(res));
      else ctx.out(`removed ${res.value} from ${table}`);
      return 0;
    });
  },
};
