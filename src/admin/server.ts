/**
 * The admin HTTP API (JSON in and out). Off unless `[admin] listen` is set; every request must carry
 * `Authorization: Bearer <token>` and is refused with 401 before routing, so an unauthenticated caller
 * learns nothing, not even which paths exist. The proxy is reached only through the hooks passed in.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { formatPolicyKey, PolicyKeyError } from '../config/policy-keys.ts';
import type { HostPort, PolicyKey } from '../config/types.ts';
import { qrMatrix, qrSvg } from '../links/qr.ts';
import type { Logger } from '../log.ts';
import { canonicalTableValue } from '../policy/keys.ts';
import { isValidTableName, type PolicyTables } from '../policy/tables.ts';
import { MtpError } from '../runtime/errors.ts';
import { handleUsers, type UsersApiHost } from '../users/api.ts';
import { ConsoleHandler, type ConsoleOptions, isConsolePath } from './console/handler.ts';
import { sendJson } from './send-json.ts';

export interface ReloadOutcome {
  ok: boolean;
  error?: string;
}

export interface AdminHooks {
  /** Uptime, version, sessions by listener / protocol / DC, upstream state. */
  status(): unknown;
  /** Client links per listener. */
  links(): unknown;
  /** Optional: bring the numbers up to date before /status (worker threads report asynchronously). */
  refresh?(): Promise<void>;
  /** Optional: a table was edited (worker threads re-read their copies). */
  tablesChanged?(): Promise<void>;
  reload(): Promise<ReloadOutcome>;
  tables: PolicyTables;
  /** Key the current policy rules check a table against (null: not referenced). */
  tableKey(table: string): PolicyKey | null;
  referencedTables(): string[];
  /** Named users (/users); absent = 404. */
  users?: UsersApiHost;
  /** The node in its fleet (/cluster); absent = 404. */
  cluster?(): Promise<unknown>;
}

export interface AdminServerOptions {
  hooks: AdminHooks;
  token: string;
  log?: Logger;
  /** When the proxy started (ms since the epoch), for `/health`; default: when this server was built. */
  startedAt?: number;
  /** Bounds on slow and idle clients; default: ADMIN_LIMITS_DEFAULT. */
  limits?: Partial<AdminLimits>;
  /** The web console under /console/ (signed in with the token); default off. */
  console?: ConsoleOptions;
}

/** How long a request may take to arrive, how long an idle connection stays, how many connections at once. */
export interface AdminLimits {
  bodyTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
}

/** The same defaults as the `[admin]` section. */
export const ADMIN_LIMITS_DEFAULT: AdminLimits = {
  bodyTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  maxConnections: 32,
};

const MAX_BODY_BYTES = 64 * 1024;
/** How long stop() lets requests in flight finish. */
const STOP_GRACE_MS = 2000;

class HttpError extends MtpError {
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super('admin', 'MTP_ERR_ADMIN_REQUEST', message);
    this.name = 'HttpError';
    this.status = status;
    this.headers = headers;
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function readJsonBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size > MAX_BODY_BYTES) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // Answered at once and the connection closed after it; the rest of the upload is read and dropped
        // (within the request timeout), so the client sees the 413 instead of a reset in mid-upload.
        chunks.length = 0;
        reject(new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`, { connection: 'close' }));
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) return;
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (text === '') return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new HttpError(400, 'request body is not valid JSON'));
      }
    });
  });
}

function valueFromBody(body: unknown): string {
  if (body && typeof body === 'object' && 'value' in body) {
    const value = (body as { value: unknown }).value;
    if (typeof value === 'string') return value;
  }
  throw new HttpError(400, 'expected a JSON body {"value": "..."}');
}

function methodNotAllowed(allowed: string): never {
  throw new HttpError(405, `method not allowed; use ${allowed}`, { allow: allowed });
}

export class AdminServer {
  readonly #hooks: AdminHooks;
  readonly #log: Logger | undefined;
  #tokenDigest: Buffer;
  #server: http.Server | null = null;
  /** Responses not yet finished, so stop() can make them the last on their connection. */
  readonly #inFlight = new Set<http.ServerResponse>();
  readonly #startedAt: number;
  #limits: AdminLimits;
  /** Connections with a request whose answer is not finished: the idle timeout leaves them alone. */
  readonly #busy = new Map<net.Socket, number>();
  readonly #console: ConsoleHandler;

  constructor(opts: AdminServerOptions) {
    this.#limits = { ...ADMIN_LIMITS_DEFAULT, ...opts.limits };
    this.#hooks = opts.hooks;
    // The admin API may be started or moved by a reload long after the proxy started.
    this.#startedAt = opts.startedAt ?? Date.now();
    this.#log = opts.log;
    this.#tokenDigest = AdminServer.#checkToken(opts.token);
    this.#console = new ConsoleHandler(
      {
        host: this.#hooks,
        checkToken: (token) => timingSafeEqual(digest(token), this.#tokenDigest),
        route: (req, res, target) => this.#route(req, res, target),
        log: this.#log,
      },
      opts.console ?? { enabled: false, sessionTtlMs: 0 },
    );
  }

  /** Turn the console on or off, or change its sign-in lifetime (hot reload). */
  setConsole(options: ConsoleOptions): void {
    this.#console.setOptions(options);
  }

  static #checkToken(token: string): Buffer {
    if (typeof token !== 'string' || token.trim() === '') {
      throw new RangeError('admin.token: expected a token when admin.listen is set');
    }
    return digest(token);
  }

  /** Replace the token (hot reload); the next request must use the new one. */
  setToken(token: string): void {
    const next = AdminServer.#checkToken(token);
    // A new token signs every console session out.
    if (!next.equals(this.#tokenDigest)) this.#console.signOutEveryone();
    this.#tokenDigest = next;
  }

  /** Replace the bounds (hot reload); they apply to the next requests and idle periods. */
  setLimits(limits: Partial<AdminLimits>): void {
    this.#limits = { ...this.#limits, ...limits };
    if (this.#server) this.#applyLimits(this.#server);
  }

  #applyLimits(server: http.Server): void {
    const { bodyTimeoutMs, idleTimeoutMs, maxConnections } = this.#limits;
    // Node answers 408 and closes a connection whose request has not fully arrived in time (headers and
    // body); it checks every connectionsCheckingInterval.
    server.requestTimeout = bodyTimeoutMs;
    server.headersTimeout = Math.min(bodyTimeoutMs, 10_000);
    server.keepAliveTimeout = Math.min(idleTimeoutMs, 5_000);
    server.timeout = idleTimeoutMs;
    // Connections past this are closed as soon as they are accepted.
    server.maxConnections = maxConnections;
  }

  get listening(): boolean {
    return this.#server !== null;
  }

  async start(listen: HostPort): Promise<void> {
    if (this.#server) throw new Error('admin server already started');
    // Timeouts are enforced at this granularity: a quarter of the shortest bound, at most a second.
    const checkEvery = Math.max(
      20,
      Math.min(1000, Math.floor(Math.min(this.#limits.bodyTimeoutMs, this.#limits.idleTimeoutMs) / 4)),
    );
    const server = http.createServer({ connectionsCheckingInterval: checkEvery }, (req, res) => {
      this.#inFlight.add(res);
      const socket = req.socket;
      this.#busy.set(socket, (this.#busy.get(socket) ?? 0) + 1);
      res.once('close', () => {
        this.#inFlight.delete(res);
        const left = (this.#busy.get(socket) ?? 1) - 1;
        if (left > 0) this.#busy.set(socket, left);
        else this.#busy.delete(socket);
      });
      this.#handle(req, res).catch((err: unknown) => this.#fail(res, err));
    });
    this.#applyLimits(server);
    // No byte for idle_timeout: close, unless a request on it is still being answered (a slow reload).
    server.on('timeout', (socket: net.Socket) => {
      if (!this.#busy.has(socket)) socket.destroy();
    });
    server.on('drop', () => this.#log?.debug({}, 'admin connection refused: max_connections reached'));
    server.listen(listen.port, listen.host);
    await once(server, 'listening');
    this.#server = server;
    this.#console.start();
    this.#log?.info({ address: this.address() }, 'admin API listening');
  }

  address(): HostPort {
    const a = this.#server?.address();
    if (!a || typeof a === 'string') throw new Error('admin server not listening');
    return { host: a.address, port: a.port };
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    this.#console.close();
    // A reload that moves or turns off the admin API is itself an admin request: let requests in flight get
    // their answer (close() drops idle keep-alive connections), and cut whatever is left after a grace period.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    for (const res of this.#inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
    const grace = setTimeout(() => server.closeAllConnections(), STOP_GRACE_MS);
    await closed;
    clearTimeout(grace);
  }

  #authorized(req: http.IncomingMessage): boolean {
    const header = req.headers.authorization;
    if (typeof header !== 'string') return false;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) return false;
    return timingSafeEqual(digest(match[1]), this.#tokenDigest);
  }

  #fail(res: http.ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HttpError) {
      sendJson(res, err.status, { error: err.message }, err.headers);
      return;
    }
    this.#log?.warn({ err }, 'admin request failed');
    sendJson(res, 500, { error: 'internal error' });
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // The console authenticates by its own session cookie, then runs the routes below (#route).
    if (this.#console.enabled && isConsolePath(req.url)) return this.#console.handle(req, res);
    if (!this.#authorized(req)) {
      // Do not read the body of an unauthenticated request; close instead of keeping the socket.
      sendJson(
        res,
        401,
        { error: 'missing or wrong bearer token' },
        {
          'www-authenticate': 'Bearer realm="mtproxy"',
          connection: 'close',
        },
      );
      req.resume();
      return;
    }
    return this.#route(req, res, req.url ?? '/');
  }

  /** An authenticated request for `target` (the bearer API's own path, or the console's API path). */
  async #route(req: http.IncomingMessage, res: http.ServerResponse, target: string): Promise<void> {
    let url: URL;
    try {
      url = new URL(target, 'http://admin');
    } catch {
      throw new HttpError(400, 'malformed request target');
    }
    const segments = url.pathname
      .split('/')
      .filter((s) => s !== '')
      .map((s) => {
        try {
          return decodeURIComponent(s);
        } catch {
          throw new HttpError(400, 'malformed percent-encoding in path');
        }
      });
    const method = req.method ?? 'GET';
    const [head, name, ...rest] = segments;

    if (segments.length === 1 && head === 'health') {
      if (method !== 'GET') methodNotAllowed('GET');
      return sendJson(res, 200, {
        status: 'ok',
        uptimeSeconds: Math.round((Date.now() - this.#startedAt) / 1000),
      });
    }
    if (segments.length === 1 && head === 'status') {
      if (method !== 'GET') methodNotAllowed('GET');
      await this.#hooks.refresh?.();
      return sendJson(res, 200, this.#hooks.status());
    }
    if (segments.length === 1 && head === 'cluster' && this.#hooks.cluster) {
      if (method !== 'GET') methodNotAllowed('GET');
      return sendJson(res, 200, await this.#hooks.cluster());
    }
    if (segments.length === 1 && head === 'links') {
      if (method !== 'GET') methodNotAllowed('GET');
      return sendJson(res, 200, this.#hooks.links());
    }
    if (segments.length === 2 && head === 'links' && name === 'qr.svg') {
      if (method !== 'GET') methodNotAllowed('GET');
      const links = (this.#hooks.links() as { links?: Array<{ tg: string; https: string }> }).links ?? [];
      const index = Number(url.searchParams.get('link') ?? 0);
      const link = Number.isInteger(index) ? links[index] : undefined;
      if (!link) throw new HttpError(404, `no link number ${url.searchParams.get('link')}`);
      const svg = qrSvg(qrMatrix(url.searchParams.get('form') === 'tg' ? link.tg : link.https));
      res.writeHead(200, { 'content-type': 'image/svg+xml', 'cache-control': 'no-store' });
      res.end(svg);
      return;
    }
    if (segments.length === 1 && head === 'reload') {
      if (method !== 'POST') methodNotAllowed('POST');
      const outcome = await this.#hooks.reload();
      return sendJson(
        res,
        outcome.ok ? 200 : 422,
        outcome.ok ? { ok: true } : { ok: false, error: outcome.error },
      );
    }
    if (head === 'tables') {
      if (segments.length === 1) {
        if (method !== 'GET') methodNotAllowed('GET');
        return sendJson(res, 200, { tables: this.#tableSummaries() });
      }
      if (!isValidTableName(name)) {
        throw new HttpError(400, 'table names are 1-64 characters of letters, digits, "_", "-" and "."');
      }
      if (rest.length === 0) {
        if (method === 'GET') return this.#getTable(res, name);
        if (method === 'POST' || method === 'PUT') {
          return this.#addValue(res, name, valueFromBody(await readJsonBody(req)));
        }
        if (method === 'DELETE') return this.#removeValue(res, name, valueFromBody(await readJsonBody(req)));
        methodNotAllowed('GET, POST, DELETE');
      }
      // A subnet value may arrive unencoded ("10.0.0.0/24"), so the rest of the path is the value.
      if (method !== 'DELETE') methodNotAllowed('DELETE');
      return this.#removeValue(res, name, rest.join('/'));
    }
    if (head === 'users' && this.#hooks.users) {
      const answer = await handleUsers(
        method,
        segments.slice(1),
        url.searchParams,
        () => readJsonBody(req),
        this.#hooks.users,
      );
      if ('json' in answer) return sendJson(res, answer.status, answer.json);
      res.writeHead(answer.status, { 'content-type': answer.contentType, 'cache-control': 'no-store' });
      res.end(answer.body);
      return;
    }
    throw new HttpError(404, `no such endpoint: ${method} ${url.pathname}`);
  }

  #tableSummaries() {
    const tables = this.#hooks.tables;
    const names = new Set([...tables.summaries().map((t) => t.name), ...this.#hooks.referencedTables()]);
    return [...names].sort().map((name) => this.#describe(name));
  }

  #describe(name: string) {
    const key = this.#hooks.tableKey(name);
    return { name, key: key ? formatPolicyKey(key) : null, size: this.#hooks.tables.size(name) };
  }

  #getTable(res: http.ServerResponse, name: string): void {
    const tables = this.#hooks.tables;
    if (tables.size(name) === 0 && this.#hooks.tableKey(name) === null) {
      throw new HttpError(404, `no table "${name}" (it has no values and no policy uses it)`);
    }
    sendJson(res, 200, { ...this.#describe(name), values: tables.list(name) });
  }

  #canonical(name: string, input: string): string {
    try {
      return canonicalTableValue(input, this.#hooks.tableKey(name));
    } catch (err) {
      if (err instanceof PolicyKeyError) throw new HttpError(400, err.message);
      throw err;
    }
  }

  async #addValue(res: http.ServerResponse, name: string, input: string): Promise<void> {
    const value = this.#canonical(name, input);
    const added = this.#hooks.tables.add(name, value);
    if (added) await this.#hooks.tablesChanged?.();
    this.#log?.info({ table: name, value, added }, 'policy table value added');
    sendJson(res, added ? 201 : 200, { table: name, value, added });
  }

  async #removeValue(res: http.ServerResponse, name: string, input: string): Promise<void> {
    const value = this.#canonical(name, input);
    if (!this.#hooks.tables.remove(name, value)) {
      throw new HttpError(404, `"${value}" is not in table "${name}"`);
    }
    await this.#hooks.tablesChanged?.();
    this.#log?.info({ table: name, value }, 'policy table value removed');
    sendJson(res, 200, { table: name, value, removed: true });
  }
}
