/**
 * The Prometheus endpoint: GET /metrics on its own address, off unless `[metrics] listen` is set, answering
 * only peers in the allow list (CIDRs or single addresses; an empty list allows everyone who can reach it).
 */
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { HostPort } from '../config/types.ts';
import type { Logger } from '../log.ts';
import { compileAllowList } from '../runtime/allow-list.ts';
import type { MetricsRegistry } from './registry.ts';

export function isAllowed(list: net.BlockList | null, remoteAddress: string | undefined): boolean {
  if (list === null) return true;
  if (!remoteAddress) return false;
  return list.check(remoteAddress, net.isIPv6(remoteAddress) ? 'ipv6' : 'ipv4');
}

export interface MetricsServerOptions {
  registry: MetricsRegistry;
  allow: readonly string[];
  log?: Logger;
  /** Runs before each scrape (worker threads report their counters on request). */
  beforeScrape?: () => Promise<void>;
}

export class MetricsServer {
  readonly #registry: MetricsRegistry;
  readonly #log: Logger | undefined;
  readonly #beforeScrape: (() => Promise<void>) | undefined;
  #allow: net.BlockList | null;
  #server: http.Server | null = null;

  constructor(opts: MetricsServerOptions) {
    this.#registry = opts.registry;
    this.#log = opts.log;
    this.#beforeScrape = opts.beforeScrape;
    this.#allow = compileAllowList(opts.allow);
  }

  /** Replace the allow list (hot reload); takes effect for the next request. */
  setAllow(allow: readonly string[]): void {
    this.#allow = compileAllowList(allow);
  }

  get listening(): boolean {
    return this.#server !== null;
  }

  async start(listen: HostPort): Promise<void> {
    if (this.#server) throw new Error('metrics server already started');
    const server = http.createServer((req, res) => this.#handle(req, res));
    server.headersTimeout = 10_000;
    server.requestTimeout = 15_000;
    server.listen(listen.port, listen.host);
    await once(server, 'listening');
    this.#server = server;
    this.#log?.info({ address: this.address() }, 'metrics endpoint listening');
  }

  address(): HostPort {
    const a = this.#server?.address();
    if (!a || typeof a === 'string') throw new Error('metrics server not listening');
    return { host: a.address, port: a.port };
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (!isAllowed(this.#allow, req.socket.remoteAddress)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const scrape = this.#beforeScrape
      ? this.#beforeScrape().then(() => this.#registry.scrape())
      : this.#registry.scrape();
    scrape.then(
      (text) => {
        res.writeHead(200, { 'content-type': this.#registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        this.#log?.warn({ err }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('scrape failed\n');
      },
    );
  }
}
