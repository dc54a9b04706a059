/**
 * A real HTTPS site on loopback standing in for a cover domain: node's https server with a self-signed
 * certificate for example.com, made fresh with openssl when it is installed (else the committed test pair).
 * Also a plain TCP "site" that records every byte it receives (to check fronting is byte for byte).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const SITE_PAGE = '<html><body>cover site for tests</body></html>\n';
export const SITE_DOMAIN = 'example.com';

export function hasCommand(cmd: string): boolean {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    try {
      execFileSync(cmd, ['version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  }
}

export function testCertificate(): { key: Buffer; cert: Buffer; generated: boolean } {
  if (hasCommand('openssl')) {
    const dir = mkdtempSync(path.join(tmpdir(), 'mtproxy-cert-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-subj',
          `/CN=${SITE_DOMAIN}`,
          '-addext',
          `subjectAltName=DNS:${SITE_DOMAIN},DNS:localhost,IP:127.0.0.1`,
          '-days',
          '2',
          '-keyout',
          path.join(dir, 'key.pem'),
          '-out',
          path.join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
      return {
        key: readFileSync(path.join(dir, 'key.pem')),
        cert: readFileSync(path.join(dir, 'cert.pem')),
        generated: true,
      };
    } catch {
      // fall through to the committed pair
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const fixtures = path.join(import.meta.dirname, '..', 'fixtures', 'tls');
  return {
    key: readFileSync(path.join(fixtures, 'key.pem')),
    cert: readFileSync(path.join(fixtures, 'cert.pem')),
    generated: false,
  };
}

export interface HttpsSite {
  port: number;
  cert: Buffer;
  requests: number;
  stop(): Promise<void>;
}

export interface HttpsSiteOptions {
  /** Key-exchange groups the site accepts, OpenSSL style ("X25519:P-256"); default: Node's. */
  ecdhCurve?: string;
}

export async function startHttpsSite(opts: HttpsSiteOptions = {}): Promise<HttpsSite> {
  const { key, cert } = testCertificate();
  const sockets = new Set<net.Socket>();
  const site: HttpsSite = {
    port: 0,
    cert,
    requests: 0,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const tlsOptions = opts.ecdhCurve ? { key, cert, ecdhCurve: opts.ecdhCurve } : { key, cert };
  const server = https.createServer(tlsOptions, (_req, res) => {
    site.requests++;
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(SITE_PAGE);
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  site.port = (server.address() as net.AddressInfo).port;
  return site;
}

export interface RecordingSite {
  port: number;
  /** Bytes received per connection, in connection order. */
  received: Buffer[];
  /** Resolves when connection number `index` (0-based, in accept order) has received at least `n` bytes. */
  waitForBytes(index: number, n: number, timeoutMs?: number): Promise<Buffer>;
  stop(): Promise<void>;
}

/** Records what arrives and answers every connection with `reply` (then keeps reading). */
export async function startRecordingSite(
  reply = Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'),
): Promise<RecordingSite> {
  const received: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const waiters: { index: number; n: number; resolve: (b: Buffer) => void }[] = [];
  const check = (): void => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const got = received[waiters[i].index];
      if (got && got.length >= waiters[i].n) {
        waiters[i].resolve(got);
        waiters.splice(i, 1);
      }
    }
  };
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    const index = received.push(Buffer.alloc(0)) - 1;
    s.on('error', () => {});
    s.write(reply);
    s.on('data', (chunk: Buffer) => {
      received[index] = Buffer.concat([received[index], chunk]);
      check();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    waitForBytes: (index, n, timeoutMs = 5000) =>
      new Promise<Buffer>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`recording site: fewer than ${n} bytes`)), timeoutMs);
        waiters.push({
          index,
          n,
          resolve: (b) => {
            clearTimeout(t);
            resolve(b);
          },
        });
        check();
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
