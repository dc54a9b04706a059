/**
 * `mtproxy user list|add|show|set|del|enable|disable|reset|link NAME`: manage the named users of the running
 * proxy through its admin API (kept in the state database, applied at once). Flags take the config's names:
 * `mtproxy user add alice --quota 50GB --period monthly --max-ips 3 --expires 2027-06-01`.
 */
import { qrMatrix, qrTerminal } from '../../links/qr.ts';
import { AdminClientError } from '../../admin/client.ts';
import { formatSize } from '../../config/size.ts';
import { withAdmin } from '../admin-support.ts';
import type { CliCommand, CliContext, OptionValues } from '../command.ts';

const USAGE =
  'user list | user add NAME [FLAGS] | user show NAME | user set NAME FLAGS | user del NAME | ' +
  'user enable NAME | user disable NAME | user reset NAME [--all] | user link NAME';

/** CLI flag -> API field, and whether it is an integer. */
const FLAGS: Array<[flag: string, field: string, kind: 'int' | 'size' | 'text' | 'list']> = [
  ['secret', 'secret', 'text'],
  ['listener', 'listeners', 'list'],
  ['max-connections', 'max_connections', 'int'],
  ['max-ips', 'max_ips', 'int'],
  ['quota', 'quota', 'size'],
  ['period', 'quota_period', 'text'],
  ['reset-day', 'quota_reset_day', 'int'],
  ['rate', 'rate', 'size'],
  ['expires', 'expires', 'text'],
  ['note', 'note', 'text'],
  ['tls-domain', 'tls_domains', 'list'],
  ['ad-tag', 'ad_tag', 'text'],
];

const FLAG_OF: Record<string, string> = Object.fromEntries(FLAGS.map(([flag, field]) => [field, flag]));

function bodyFrom(values: OptionValues): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const [flag, field, kind] of FLAGS) {
    const v = values[flag];
    if (v === undefined) continue;
    if (kind === 'list') body[field] = Array.isArray(v) ? v : [v];
    else if (typeof v !== 'string') continue;
    // Numbers as numbers; anything else goes as written and the API says what is wrong with it.
    else if ((kind === 'int' || kind === 'size') && /^\d+$/.test(v)) body[field] = Number(v);
    else if (field === 'expires' && v === 'never') body[field] = null;
    else body[field] = v;
  }
  return body;
}

interface UserJson {
  name: string;
  secret: string;
  enabled: boolean;
  source: string;
  quota: number;
  quota_period: string;
  max_connections: number;
  max_ips: number;
  rate: number;
  expires: string | null;
  note: string;
  listeners: string[] | null;
  usage: { bytes: number; sessions_active: number; period: string; last_seen: string | null };
}

interface LinkJson {
  listener: string;
  protocol: string;
  domain: string | null;
  tg: string;
  https: string;
}

function summaryLine(u: UserJson): string {
  const quota =
    u.quota > 0
      ? `${formatSize(u.usage.bytes)}/${formatSize(u.quota)} ${u.quota_period}`
      : formatSize(u.usage.bytes);
  return [
    u.name,
    u.enabled ? 'enabled' : 'disabled',
    `${u.usage.sessions_active} sessions`,
    quota,
    u.expires ? `expires ${u.expires}` : 'no expiry',
  ].join('\t');
}

function detailLines(u: UserJson): string[] {
  return [
    `name: ${u.name} (${u.source === 'file' ? 'config file' : 'state database'})`,
    `secret: ${u.secret}`,
    `enabled: ${u.enabled}`,
    `listeners: ${u.listeners ? u.listeners.join(', ') : 'all'}`,
    `max_connections: ${u.max_connections || 'no cap'}`,
    `max_ips: ${u.max_ips || 'no cap'}`,
    `quota: ${u.quota ? `${formatSize(u.quota)} ${u.quota_period}` : 'none'}`,
    `rate: ${u.rate ? `${formatSize(u.rate)}/s each way` : 'unlimited'}`,
    `expires: ${u.expires ?? 'never'}`,
    `used this period (${u.usage.period}): ${formatSize(u.usage.bytes)}`,
    `sessions now: ${u.usage.sessions_active}`,
    `last seen: ${u.usage.last_seen ?? 'never'}`,
    ...(u.note ? [`note: ${u.note}`] : []),
  ];
}

/** An API refusal: the field errors one per line, named as the flags. */
function printRefusal(ctx: CliContext, status: number, body: unknown): number {
  const doc = (body ?? {}) as { error?: string; errors?: Record<string, string> };
  if (doc.errors) {
    for (const [field, message] of Object.entries(doc.errors)) {
      const flag = FLAG_OF[field];
      ctx.err(`mtproxy user: ${flag ? `--${flag}` : field}: ${message}`);
    }
  } else {
    ctx.err(`mtproxy user: ${doc.error ?? `HTTP ${status}`}`);
  }
  return 1;
}

export const command: CliCommand = {
  name: 'user',
  summary: 'Manage named users of the running proxy: limits, quota, expiry, links (needs [admin])',
  usage: `${USAGE} [--json]`,
  options: {
    json: { type: 'boolean', description: 'Print JSON' },
    secret: { type: 'string', valueName: 'HEX', description: "The user's secret (default: generated)" },
    listener: {
      type: 'string',
      multiple: true,
      valueName: 'NAME',
      description: 'Listener the user may use (repeatable; default all)',
    },
    'max-connections': { type: 'string', valueName: 'N', description: 'Concurrent sessions (0 = no cap)' },
    'max-ips': {
      type: 'string',
      valueName: 'N',
      description: 'Distinct client addresses at once (0 = no cap)',
    },
    quota: { type: 'string', valueName: 'SIZE', description: 'Bytes per period, e.g. 50GB (0 = none)' },
    period: { type: 'string', valueName: 'P', description: 'Quota period: total, daily, weekly or monthly' },
    'reset-day': {
      type: 'string',
      valueName: 'D',
      description: 'First day of a period (month day, or 1-7 for weekly)',
    },
    rate: {
      type: 'string',
      valueName: 'SIZE',
      description: 'Bytes per second each way, e.g. 2MB (0 = unlimited)',
    },
    expires: { type: 'string', valueName: 'TIME', description: 'RFC 3339 time or date (or "never")' },
    note: { type: 'string', valueName: 'TEXT', description: 'Free text' },
    'tls-domain': {
      type: 'string',
      multiple: true,
      valueName: 'DOMAIN',
      description: "The user's own fake-TLS domain (repeatable)",
    },
    'ad-tag': { type: 'string', valueName: 'HEX', description: "Ad tag overriding the listener's" },
    all: { type: 'boolean', description: 'reset: every period, not only the current one' },
  },
  async run(ctx) {
    const [action, name, ...extra] = ctx.positionals;
    const needsName = action !== 'list';
    if (!action || (needsName && !name) || (!needsName && name) || extra.length > 0) {
      ctx.err(`mtproxy user: usage: mtproxy ${USAGE}`);
      return 2;
    }
    const known = ['list', 'add', 'show', 'set', 'del', 'rm', 'enable', 'disable', 'reset', 'link'];
    if (!known.includes(action)) {
      ctx.err(`mtproxy user: unknown action "${action}" (${known.join(', ')})`);
      return 2;
    }
    const body = bodyFrom(ctx.values);
    // These flags mean the user here, not the first listener of the config the CLI reads.
    const values = ctx.values;
    delete values.secret;
    delete values['tls-domain'];
    const json = values.json === true;
    const path = name === undefined ? '/users' : `/users/${encodeURIComponent(name)}`;
    return withAdmin(ctx, 'user', async (client) => {
      const send = async (method: string, url: string, payload?: unknown) => {
        const res = await client.request(method, url, payload);
        if (res.status < 200 || res.status >= 300) throw new Refused(res.status, res.body);
        return res.body;
      };
      try {
        switch (action) {
          case 'list': {
            const doc = (await send('GET', '/users')) as { users: UserJson[] };
            if (json) ctx.out(JSON.stringify(doc, null, 2));
            else if (doc.users.length === 0) ctx.out('no users');
            else for (const u of doc.users) ctx.out(summaryLine(u));
            return 0;
          }
          case 'show': {
            const u = (await send('GET', path)) as UserJson;
            if (json) ctx.out(JSON.stringify(u, null, 2));
            else for (const line of detailLines(u)) ctx.out(line);
            return 0;
          }
          case 'add':
          case 'set': {
            const u = (await send(
              action === 'add' ? 'POST' : 'PATCH',
              action === 'add' ? '/users' : path,
              action === 'add' ? { name, ...body } : body,
            )) as UserJson;
            if (json) ctx.out(JSON.stringify(u, null, 2));
            else for (const line of detailLines(u)) ctx.out(line);
            return 0;
          }
          case 'del':
          case 'rm': {
            const res = await send('DELETE', path);
            ctx.out(json ? JSON.stringify(res) : `deleted user ${name}`);
            return 0;
          }
          case 'enable':
          case 'disable': {
            const u = (await send('POST', `${path}/${action}`)) as UserJson;
            ctx.out(json ? JSON.stringify(u, null, 2) : `user ${name} ${u.enabled ? 'enabled' : 'disabled'}`);
            return 0;
          }
          case 'reset': {
            const res = await send('POST', `${path}/reset${values.all ? '?all=1' : ''}`);
            ctx.out(json ? JSON.stringify(res) : `usage of ${name} reset`);
            return 0;
          }
          default: {
            const doc = (await send('GET', `${path}/links`)) as { links: LinkJson[] };
            if (json) {
              ctx.out(JSON.stringify(doc, null, 2));
              return 0;
            }
            for (const l of doc.links) {
              const what = l.domain ? `${l.protocol} ${l.domain}` : l.protocol;
              ctx.out(`${l.listener} ${what}: ${l.tg}`);
              ctx.out(`${' '.repeat(l.listener.length + what.length + 2)} ${l.https}`);
            }
            const best = doc.links.find((l) => l.protocol === 'tls') ?? doc.links[0];
            if (best) ctx.out(qrTerminal(qrMatrix(best.https, { border: 1 })));
            return 0;
          }
        }
      } catch (e) {
        if (e instanceof Refused) return printRefusal(ctx, e.status, e.body);
        throw e;
      }
    });
  },
};

class Refused extends AdminClientError {
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    super(`HTTP ${status}`, status);
    this.body = body;
  }
}
