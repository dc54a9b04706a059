/**
 * The web console under /console/ of the admin server.
 *
 *   GET  /console/sign-in          the sign-in page (and /console/public/*: its style) — no session needed
 *   POST /console/sign-in          the admin token (form or JSON) → a session cookie; wrong ones rate-limited
 *   POST /console/sign-out         ends the session (CSRF header or form field)
 *   GET  /console/                 the console itself; /console/app/*, /console/vendor/*: its modules
 *   GET  /console/api/session      the page's CSRF token and the session's expiry
 *   GET  /console/api/events       server-sent events: the status snapshot, users and traffic every few seconds
 *   *    /console/api/PATH         the admin API's own route PATH (/status, /users/alice, /tables/x ...)
 *
 * Everything but the sign-in page needs the session cookie (HttpOnly, SameSite=Strict, Path=/console, with an
 * expiry). Every request that changes something also needs the session's CSRF token in `X-CSRF-Token`, and
 * a request a browser marks as coming from another site (Origin, Sec-Fetch-Site) is refused whatever it
 * carries. The API part runs the admin API's routes as they are: the admin API stays the one place where
 * an action is done.
 */
import type http from 'node:http';
import type { Logger } from '../../log.ts';
import { handleUsers, type UsersApiHost } from '../../users/api.ts';
import { sendJson } from '../send-json.ts';
import { type Asset, consoleAssets } from './assets.ts';
import { sampleOf, TrafficHistory } from './history.ts';
import { FailureLimiter, sourceKey } from './rate-limit.ts';
import { type ConsoleSession, ConsoleSessions, csrfMatches } from './sessions.ts';

export const CONSOLE_PREFIX = '/console';
export const COOKIE_NAME = 'mtp_console';
export const CSRF_HEADER = 'x-csrf-token';
/** How often the live endpoint pushes a snapshot (and the traffic history takes a sample). */
export const PUSH_INTERVAL_MS = 2000;
const MAX_FORM_BYTES = 4096;
const MAX_STREAMS = 16;

export interface ConsoleOptions {
  enabled: boolean;
  /** Lifetime of a sign-in. */
  sessionTtlMs: number;
}

export const CONSOLE_DEFAULTS: ConsoleOptions = { enabled: true, sessionTtlMs: 12 * 3_600_000 };

/** What the console reads directly: the same operations the admin API's /status and /users run. */
export interface ConsoleHost {
  status(): unknown;
  refresh?(): Promise<void>;
  users?: UsersApiHost;
}

export interface ConsoleDeps {
  host: ConsoleHost;
  /** The admin token check (the admin server's own, so a rotated token applies at once). */
  checkToken(token: string): boolean;
  /** Run the admin API route for `target` ("/users/alice?x=1") on this request. */
  route(req: http.IncomingMessage, res: http.ServerResponse, target: string): Promise<void>;
  log?: Logger;
}

export function isConsolePath(target: string | undefined): boolean {
  if (!target) return false;
  return (
    target === CONSOLE_PREFIX ||
    target.startsWith(`${CONSOLE_PREFIX}/`) ||
    target.startsWith(`${CONSOLE_PREFIX}?`)
  );
}

const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
};

function cookies(req: http.IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  const header = req.headers.cookie;
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

function readSmallBody(req: http.IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_FORM_BYTES) chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => resolve(size > MAX_FORM_BYTES ? null : Buffer.concat(chunks).toString('utf8')));
  });
}

/** Is the connection (as the browser sees it) https? Only a TLS proxy in front says so. */
function viaHttps(req: http.IncomingMessage): boolean {
  const proto = req.headers['x-forwarded-proto'];
  return typeof proto === 'string' && proto.split(',')[0].trim().toLowerCase() === 'https';
}

/**
 * Why a browser request is taken for a cross-site one, or null. `change`: the request would change state
 * (only same-origin passes); otherwise a navigation typed by the user ("none") passes too.
 */
export function crossSiteReason(req: http.IncomingMessage, change: boolean): string | null {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string') {
    const ok = site === 'same-origin' || (!change && site === 'none');
    if (!ok) return `Sec-Fetch-Site: ${site}`;
  }
  const origin = req.headers.origin;
  if (typeof origin === 'string') {
    const host = req.headers.host;
    let originHost: string | null = null;
    try {
      const u = new URL(origin);
      if (u.protocol === 'http:' || u.protocol === 'https:') originHost = u.host;
    } catch {
      originHost = null;
    }
    if (!host || originHost === null || originHost.toLowerCase() !== host.toLowerCase()) {
      return `Origin: ${origin}`;
    }
  }
  return null;
}

interface Stream {
  res: http.ServerResponse;
  session: ConsoleSession;
  /** The page shows users (`?users=1`): the list is pushed too. It is the big part of a snapshot. */
  users: boolean;
}

export class ConsoleHandler {
  readonly #deps: ConsoleDeps;
  readonly #sessions: ConsoleSessions;
  readonly #limiter: FailureLimiter;
  readonly #history = new TrafficHistory();
  readonly #streams = new Set<Stream>();
  #options: ConsoleOptions;
  #timer: NodeJS.Timeout | null = null;
  #ticking = false;
  /** The admin server is listening. */
  #serving = false;
  /** Something changed while a snapshot was being taken: take another one right after. */
  #again = false;
  #last: { status: unknown; users: unknown } | null = null;

  constructor(deps: ConsoleDeps, options: ConsoleOptions, limiter = new FailureLimiter()) {
    this.#deps = deps;
    this.#options = options;
    this.#sessions = new ConsoleSessions(options.sessionTtlMs);
    this.#limiter = limiter;
  }

  get enabled(): boolean {
    return this.#options.enabled;
  }

  setOptions(options: ConsoleOptions): void {
    this.#options = options;
    this.#sessions.ttlMs = options.sessionTtlMs;
    if (!options.enabled) {
      this.signOutEveryone();
      if (this.#timer) clearInterval(this.#timer);
      this.#timer = null;
    } else if (this.#serving) this.start();
  }

  /** The admin token changed or the console was turned off: every sign-in ends. */
  signOutEveryone(): void {
    this.#sessions.clear();
    for (const s of this.#streams) s.res.end();
    this.#streams.clear();
  }

  /** Sample the traffic and push to the live streams from now on (the admin server started). */
  start(): void {
    this.#serving = true;
    if (this.#timer || !this.#options.enabled) return;
    this.#timer = setInterval(() => void this.#tick(), PUSH_INTERVAL_MS);
    this.#timer.unref();
    void this.#tick();
  }

  /** Stop sampling and end the live streams (the admin server stops). */
  close(): void {
    this.#serving = false;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    for (const s of this.#streams) s.res.end();
    this.#streams.clear();
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    if (!this.#options.enabled)
      return this.#json(res, 404, { error: 'the console is turned off (admin.console)' });
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const pathname = q < 0 ? target : target.slice(0, q);
    const search = q < 0 ? '' : target.slice(q);
    const method = req.method ?? 'GET';
    const rest = pathname.slice(CONSOLE_PREFIX.length);

    // Public: the sign-in page, its style, the sign-in itself.
    if (rest === '' || rest === '/index.html') {
      return this.#redirect(res, `${CONSOLE_PREFIX}/`);
    }
    if (rest === '/sign-in') {
      if (method === 'POST') return this.#signIn(req, res);
      if (method !== 'GET' && method !== 'HEAD') return this.#json(res, 405, { error: 'use GET or POST' });
      if (this.#session(req)) return this.#redirect(res, `${CONSOLE_PREFIX}/`);
      return this.#signInPage(res, 200, '');
    }
    if (rest.startsWith('/public/') && (method === 'GET' || method === 'HEAD')) {
      return this.#asset(req, res, rest.slice(1));
    }

    // Everything else needs a session.
    const session = this.#session(req);
    const isApi = rest.startsWith('/api/');
    const change = !(method === 'GET' || method === 'HEAD');
    if (!session) {
      req.resume();
      if (!isApi && !change && rest === '/') return this.#redirect(res, `${CONSOLE_PREFIX}/sign-in`);
      return this.#json(res, 401, { error: 'sign in first' }, { connection: 'close' });
    }
    const cross = crossSiteReason(req, change || isApi);
    if (cross) {
      req.resume();
      this.#deps.log?.warn({ reason: cross, path: pathname }, 'console request refused as cross-site');
      return this.#json(res, 403, { error: 'cross-site request refused' });
    }
    if (change && rest !== '/sign-out' && !csrfMatches(session, req.headers[CSRF_HEADER])) {
      req.resume();
      return this.#json(res, 403, { error: 'missing or wrong CSRF token' });
    }

    if (rest === '/sign-out') {
      if (method !== 'POST') return this.#json(res, 405, { error: 'use POST' });
      return this.#signOut(req, res, session);
    }
    if (rest === '/') {
      if (change) return this.#json(res, 405, { error: 'use GET' });
      return this.#asset(req, res, 'index.html');
    }
    if ((rest.startsWith('/app/') || rest.startsWith('/vendor/')) && !change) {
      return this.#asset(req, res, rest.slice(1));
    }
    if (rest === '/api/session') {
      if (change) return this.#json(res, 405, { error: 'use GET' });
      return this.#json(res, 200, {
        csrf: session.csrf,
        expiresAt: new Date(session.expiresAt).toISOString(),
        users: this.#deps.host.users !== undefined,
      });
    }
    if (rest === '/api/events') {
      if (change) return this.#json(res, 405, { error: 'use GET' });
      return this.#openStream(res, session, new URLSearchParams(search).get('users') === '1');
    }
    if (isApi) {
      const inner = rest.slice('/api'.length);
      // A change shows in the live views at once, not at the next push.
      if (change) res.once('finish', () => void this.#tick());
      return this.#deps.route(req, res, `${inner}${search}`);
    }
    return this.#json(res, 404, { error: `no such page: ${pathname}` });
  }

  #session(req: http.IncomingMessage): ConsoleSession | null {
    return this.#sessions.get(cookies(req).get(COOKIE_NAME));
  }

  #json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    sendJson(res, status, body, headers, 0);
  }

  #redirect(
    res: http.ServerResponse,
    location: string,
    headers: Record<string, string | string[]> = {},
  ): void {
    res.writeHead(303, { location, 'cache-control': 'no-store', 'content-length': 0, ...headers });
    res.end();
  }

  #csp(): string {
    const scripts = ["'self'", ...consoleAssets().scriptHashes].join(' ');
    return [
      "default-src 'none'",
      `script-src ${scripts}`,
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data:",
      "connect-src 'self'",
      "font-src 'self'",
      "manifest-src 'self'",
      "base-uri 'none'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ].join('; ');
  }

  #send(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    asset: Asset,
    body: Buffer = asset.body,
    status = 200,
  ): void {
    const headers: Record<string, string | number> = {
      'content-type': asset.type,
      'content-length': body.length,
      // Pages carry no secret, but a shared cache has no business keeping anything of the console.
      'cache-control': 'no-store',
    };
    if (asset.type.startsWith('text/html')) headers['content-security-policy'] = this.#csp();
    if (status === 200) headers.etag = asset.etag;
    if (status === 200 && req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, { etag: asset.etag, 'cache-control': 'no-store' });
      res.end();
      return;
    }
    res.writeHead(status, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  #asset(req: http.IncomingMessage, res: http.ServerResponse, rel: string): void {
    // The map holds the only files there are: a path with ".." or "%2e" simply is not in it.
    const asset = consoleAssets().get(rel);
    if (asset) this.#send(req, res, asset);
    else this.#json(res, 404, { error: 'no such file' });
  }

  #signInPage(
    res: http.ServerResponse,
    status: number,
    message: string,
    headers: Record<string, string> = {},
  ): void {
    const asset = consoleAssets().get('sign-in.html');
    if (!asset) {
      this.#json(res, 500, { error: 'console files missing' });
      return;
    }
    const html = asset.body
      .toString('utf8')
      .replace('<!--message-->', message ? `<p class="error" role="alert">${escapeHtml(message)}</p>` : '');
    const body = Buffer.from(html);
    res.writeHead(status, {
      'content-type': asset.type,
      'content-length': body.length,
      'cache-control': 'no-store',
      'content-security-policy': this.#csp(),
      ...headers,
    });
    res.end(body);
  }

  async #signIn(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const wantsJson = (req.headers.accept ?? '').includes('application/json');
    const refuse = (status: number, message: string, headers: Record<string, string> = {}) => {
      if (wantsJson) return this.#json(res, status, { error: message }, headers);
      return this.#signInPage(res, status, message, headers);
    };
    const cross = crossSiteReason(req, true);
    if (cross) {
      req.resume();
      return refuse(403, 'cross-site sign-in refused');
    }
    const source = sourceKey(req.socket.remoteAddress);
    const wait = this.#limiter.retryAfter(source);
    if (wait > 0) {
      req.resume();
      return refuse(429, `too many wrong tokens; try again in ${wait} s`, { 'retry-after': String(wait) });
    }
    const text = await readSmallBody(req);
    let token: unknown = null;
    if (text !== null) {
      const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (type === 'application/json') {
        try {
          token = (JSON.parse(text) as { token?: unknown })?.token;
        } catch {
          token = null;
        }
      } else if (type === 'application/x-www-form-urlencoded') {
        token = new URLSearchParams(text).get('token');
      }
    }
    if (typeof token !== 'string' || token === '' || !this.#deps.checkToken(token.trim())) {
      this.#limiter.fail(source);
      this.#deps.log?.warn({ source }, 'console sign-in with a wrong token');
      return refuse(401, 'wrong token');
    }
    this.#limiter.succeed(source);
    const session = this.#sessions.create(source);
    this.#deps.log?.info({ source }, 'console sign-in');
    const maxAge = Math.floor(this.#options.sessionTtlMs / 1000);
    const cookie = [
      `${COOKIE_NAME}=${session.id}`,
      `Path=${CONSOLE_PREFIX}`,
      `Max-Age=${maxAge}`,
      `Expires=${new Date(session.expiresAt).toUTCString()}`,
      'HttpOnly',
      'SameSite=Strict',
      ...(viaHttps(req) ? ['Secure'] : []),
    ].join('; ');
    if (wantsJson) {
      return this.#json(res, 200, { ok: true, expiresAt: new Date(session.expiresAt).toISOString() }, {
        'set-cookie': cookie,
      } as Record<string, string>);
    }
    this.#redirect(res, `${CONSOLE_PREFIX}/`, { 'set-cookie': cookie });
  }

  async #signOut(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    session: ConsoleSession,
  ): Promise<void> {
    // From the page's script (header) or from a plain form (field).
    let ok = csrfMatches(session, req.headers[CSRF_HEADER]);
    if (!ok) {
      const text = await readSmallBody(req);
      ok = text !== null && csrfMatches(session, new URLSearchParams(text).get('csrf') ?? undefined);
    } else {
      req.resume();
    }
    if (!ok) return this.#json(res, 403, { error: 'missing or wrong CSRF token' });
    this.#sessions.destroy(session.id);
    for (const s of this.#streams) {
      if (s.session === session) {
        s.res.end();
        this.#streams.delete(s);
      }
    }
    const clear = `${COOKIE_NAME}=; Path=${CONSOLE_PREFIX}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Strict`;
    if ((req.headers.accept ?? '').includes('application/json')) {
      return this.#json(res, 200, { ok: true }, { 'set-cookie': clear });
    }
    this.#redirect(res, `${CONSOLE_PREFIX}/sign-in`, { 'set-cookie': clear });
  }

  #openStream(res: http.ServerResponse, session: ConsoleSession, users: boolean): void {
    if (this.#streams.size >= MAX_STREAMS) {
      // The oldest gives way: a phone that went to sleep leaves its stream behind.
      const oldest = this.#streams.values().next().value as Stream;
      oldest.res.end();
      this.#streams.delete(oldest);
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    const stream: Stream = { res, session, users };
    this.#streams.add(stream);
    res.on('close', () => this.#streams.delete(stream));
    res.write(`retry: 3000\n\n`);
    this.#event(stream, 'history', {
      hour: this.#history.hour,
      day: this.#history.day,
      intervalMs: PUSH_INTERVAL_MS,
    });
    if (this.#last) {
      this.#event(stream, 'status', this.#last.status);
      if (users && this.#last.users !== null) this.#event(stream, 'users', this.#last.users);
    }
    // A fresh snapshot for the newcomer (and everyone) rather than one up to a push interval old.
    void this.#tick();
  }

  #event(stream: Stream, name: string, data: unknown): void {
    stream.res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  async #tick(): Promise<void> {
    if (this.#ticking) {
      this.#again = true;
      return;
    }
    this.#ticking = true;
    this.#again = false;
    try {
      const host = this.#deps.host;
      await host.refresh?.();
      const status = host.status();
      const now = Date.now();
      const sample = sampleOf(status, now);
      const day = this.#history.add(sample);
      const wanted = [...this.#streams].some((s) => s.users);
      const users = host.users && wanted ? await this.#users(host.users) : null;
      this.#last = { status, users };
      for (const stream of this.#streams) {
        if (this.#sessions.get(stream.session.id) === null) {
          stream.res.end();
          this.#streams.delete(stream);
          continue;
        }
        this.#event(stream, 'sample', { ...sample, day });
        this.#event(stream, 'status', status);
        if (stream.users && users !== null) this.#event(stream, 'users', users);
      }
    } catch (err) {
      this.#deps.log?.warn({ err }, 'console snapshot failed');
    } finally {
      this.#ticking = false;
      if (this.#again && this.#timer) void this.#tick();
    }
  }

  /** The /users list as the admin API gives it, without the secrets (the list page shows none). */
  async #users(host: UsersApiHost): Promise<unknown> {
    const answer = await handleUsers('GET', [], new URLSearchParams(), async () => undefined, host);
    if (!('json' in answer) || answer.status !== 200) return null;
    const list = (answer.json as { users: Array<Record<string, unknown>> }).users;
    return { users: list.map(({ secret: _secret, ...rest }) => rest) };
  }
}
