/**
 * The admin API's /users endpoints:
 *
 *   GET    /users                      every user with its current usage
 *   POST   /users                      create (JSON body, the config's field names)
 *   GET    /users/top                  top users by traffic (this period) and by connections now
 *   GET    /users/NAME                 one user with its usage
 *   PATCH  /users/NAME                 change fields (users created through the API only)
 *   DELETE /users/NAME                 delete (users created through the API only)
 *   POST   /users/NAME/enable|disable  (users created through the API only)
 *   POST   /users/NAME/reset           forget the current period's usage (?all=1: every period)
 *   GET    /users/NAME/usage           usage history, newest period first
 *   GET    /users/NAME/links           tg:// and https://t.me links, one per listener, protocol and domain
 *   GET    /users/NAME/qr.svg|qr.png   QR code of one link (?link=N, default 0)
 *
 * Bad input gets 400 with `errors`: one message per field.
 */
import { generateSecret } from '../config/secrets.ts';
import { formatSize } from '../config/size.ts';
import type { Config, ListenerConfig } from '../config/types.ts';
import type { UserConfig } from '../config/users.ts';
import type { Stats } from '../metrics/stats.ts';
import { applyUserInput, defaultUser, type FieldErrors, userToJson } from './input.ts';
import { userLinks } from './links.ts';
import { qrPng, qrSvg } from './qr.ts';
import type { UserRegistry, UserState } from './registry.ts';

export interface UsersApiHost {
  users: UserRegistry;
  config(): Config;
  portOf?(l: ListenerConfig): number;
  /** Every process's stats (sessions active per user, over all workers). */
  stats?(): readonly Stats[];
  /** Users changed in the database: other workers re-read them. */
  changed?(): Promise<void>;
}

export type ApiAnswer =
  | { status: number; json: unknown }
  | { status: number; body: Buffer | string; contentType: string };

const json = (status: number, body: unknown): ApiAnswer => ({ status, json: body });
const fail = (status: number, error: string, errors?: FieldErrors): ApiAnswer =>
  json(status, errors ? { error, errors } : { error });

function activeSessions(host: UsersApiHost, u: UserState): number {
  const sources = host.stats?.();
  if (!sources) return u.leases.size;
  let n = 0;
  for (const s of sources) n += s.userSessionsActive.get(u.name) ?? 0;
  return Math.max(n, u.leases.size);
}

function usageJson(host: UsersApiHost, u: UserState) {
  return {
    period: u.period.key,
    period_start: new Date(u.period.start).toISOString(),
    period_end: Number.isFinite(u.period.end) ? new Date(u.period.end).toISOString() : null,
    bytes_up: u.storedUp + u.pendingUp,
    bytes_down: u.storedDown + u.pendingDown,
    bytes: u.used,
    quota: u.config.quota,
    quota_left: u.config.quota > 0 ? Math.max(0, u.config.quota - u.used) : null,
    sessions: u.storedSessions + u.pendingSessions,
    distinct_ips: Math.max(u.storedIps, u.pendingIps.size),
    sessions_active: activeSessions(host, u),
    // A rate-limited user's rate is split evenly between the workers holding its sessions.
    rate_workers: host.users.rateWorkers(u),
    last_seen: u.lastSeen > 0 ? new Date(u.lastSeen).toISOString() : null,
  };
}

function describe(host: UsersApiHost, u: UserState) {
  return { ...userToJson(u.config, u.secret), source: u.source, usage: usageJson(host, u) };
}

function checkReferences(host: UsersApiHost, user: UserConfig, errors: FieldErrors): void {
  const config = host.config();
  if (user.listeners) {
    const names = new Set(config.listeners.map((l) => l.name));
    const unknown = user.listeners.find((n) => !names.has(n));
    if (unknown !== undefined) errors.listeners = `no listener named "${unknown}"`;
  }
  if (user.secret) {
    const hex = user.secret.toString('hex');
    for (const l of config.listeners)
      for (const s of [l.secret, ...l.extraSecrets])
        if (s.toString('hex') === hex) errors.secret = `already a secret of listener "${l.name}"`;
    for (const other of host.users.all())
      if (other.name !== user.name && other.secret.toString('hex') === hex)
        errors.secret = `already the secret of user "${other.name}"`;
  }
}

/** Top users by this period's bytes and by sessions now. */
export function topUsers(host: UsersApiHost, limit = 10) {
  const all = host.users.all();
  const byTraffic = [...all]
    .sort((a, b) => b.used - a.used)
    .slice(0, limit)
    .filter((u) => u.used > 0)
    .map((u) => ({ name: u.name, bytes: u.used, period: u.period.key }));
  const byConnections = all
    .map((u) => ({ name: u.name, sessions_active: activeSessions(host, u) }))
    .filter((u) => u.sessions_active > 0)
    .sort((a, b) => b.sessions_active - a.sessions_active)
    .slice(0, limit);
  return { by_traffic: byTraffic, by_connections: byConnections };
}

export async function handleUsers(
  method: string,
  path: string[],
  query: URLSearchParams,
  readBody: () => Promise<unknown>,
  host: UsersApiHost,
): Promise<ApiAnswer> {
  const registry = host.users;
  const store = registry.store;
  const [name, action, ...rest] = path;
  // What every worker flushed so far.
  if (store) registry.refreshUsage();
  if (name === undefined) {
    if (method === 'GET') {
      const users = registry.all().sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
      return json(200, { users: users.map((u) => describe(host, u)) });
    }
    if (method !== 'POST') return fail(405, 'method not allowed; use GET, POST');
    if (!store) return fail(409, 'users need a state database (state_dir)');
    const body = await readBody();
    const { user, errors } = applyUserInput(defaultUser(''), body, true);
    if (!errors.name && registry.get(user.name)) errors.name = `a user named "${user.name}" exists`;
    checkReferences(host, user, errors);
    if (Object.keys(errors).length > 0) return fail(400, 'invalid user', errors);
    user.secret ??= generateSecret();
    store.saveUser(user);
    registry.reload();
    await host.changed?.();
    return json(201, describe(host, registry.get(user.name)!));
  }
  if (name === 'top' && action === undefined) {
    if (method !== 'GET') return fail(405, 'method not allowed; use GET');
    const limit = Number(query.get('limit') ?? 10);
    return json(200, topUsers(host, Number.isInteger(limit) && limit > 0 ? limit : 10));
  }
  const user = registry.get(name);
  if (!user) return fail(404, `no user named "${name}"`);
  const fileOnly = () =>
    fail(409, `user "${name}" is defined in the config file: change it there and reload`);
  const save = async (next: UserConfig): Promise<ApiAnswer> => {
    store!.saveUser(next);
    registry.reload();
    await host.changed?.();
    return json(200, describe(host, registry.get(name)!));
  };
  if (rest.length > 0) return fail(404, 'no such endpoint');
  switch (action) {
    case undefined:
      if (method === 'GET') return json(200, describe(host, user));
      if (method === 'PATCH' || method === 'PUT') {
        if (user.source === 'file' || !store) return fileOnly();
        const { user: next, errors } = applyUserInput(
          { ...user.config, secret: user.secret },
          await readBody(),
          false,
        );
        checkReferences(host, next, errors);
        if (Object.keys(errors).length > 0) return fail(400, 'invalid user', errors);
        return save(next);
      }
      if (method === 'DELETE') {
        if (user.source === 'file' || !store) return fileOnly();
        store.deleteUser(name);
        registry.reload();
        await host.changed?.();
        return json(200, { name, deleted: true });
      }
      return fail(405, 'method not allowed; use GET, PATCH, DELETE');
    case 'enable':
    case 'disable':
      if (method !== 'POST') return fail(405, 'method not allowed; use POST');
      if (user.source === 'file' || !store) return fileOnly();
      return save({ ...user.config, secret: user.secret, enabled: action === 'enable' });
    case 'reset':
      if (method !== 'POST') return fail(405, 'method not allowed; use POST');
      registry.resetUsage(name, query.get('all') === '1');
      await host.changed?.();
      return json(200, { name, reset: true, usage: usageJson(host, user) });
    case 'usage': {
      if (method !== 'GET') return fail(405, 'method not allowed; use GET');
      registry.flush();
      const history = store?.history(name) ?? [];
      return json(200, {
        name,
        current: usageJson(host, user),
        periods: history.map((h) => ({
          period: h.period,
          bytes_up: h.bytesUp,
          bytes_down: h.bytesDown,
          sessions: h.sessions,
          distinct_ips: h.ips,
          last_seen: h.lastSeen > 0 ? new Date(h.lastSeen).toISOString() : null,
        })),
      });
    }
    case 'links':
      if (method !== 'GET') return fail(405, 'method not allowed; use GET');
      return json(200, { name, links: userLinks(host.config(), user, host.portOf) });
    case 'qr.svg':
    case 'qr.png': {
      if (method !== 'GET') return fail(405, 'method not allowed; use GET');
      const links = userLinks(host.config(), user, host.portOf);
      const index = Number(query.get('link') ?? 0);
      const link = Number.isInteger(index) ? links[index] : undefined;
      if (!link) return fail(404, `no link number ${query.get('link')} (the user has ${links.length})`);
      const target = query.get('form') === 'tg' ? link.tg : link.https;
      return action === 'qr.svg'
        ? { status: 200, body: qrSvg(target), contentType: 'image/svg+xml' }
        : { status: 200, body: qrPng(target), contentType: 'image/png' };
    }
    default:
      return fail(404, 'no such endpoint');
  }
}

/** The status's `users` part for `mtproxy status` (nothing when there are no users). */
export function formatTopUsers(users: ReturnType<typeof topUsers> | undefined): string[] {
  if (!users) return [];
  const lines = ['', 'top users by traffic (this period):'];
  if (users.by_traffic.length === 0) lines.push('  none yet');
  for (const u of users.by_traffic) lines.push(`  ${u.name} ${formatSize(u.bytes)} (${u.period})`);
  lines.push('top users by connections now:');
  if (users.by_connections.length === 0) lines.push('  none');
  for (const u of users.by_connections) lines.push(`  ${u.name} ${u.sessions_active}`);
  return lines;
}
