/**
 * A real redis-server for a test, on a loopback port of its own (never the default 6379), with nothing
 * persisted. Tests that need it skip when the binary is missing (`redisSkip`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { freePort } from './ports.ts';

export const REDIS_SERVER = process.env.MTP_REDIS_SERVER ?? '/usr/bin/redis-server';

/** A reason to skip (for `describe(..., { skip })`), or false when redis-server can run. */
export const redisSkip: string | false = existsSync(REDIS_SERVER)
  ? false
  : `${REDIS_SERVER} is missing (install the redis-server package to run these tests)`;

export interface TestRedis {
  port: number;
  url: string;
  /** Stop the server (SIGKILL with `hard`); it can be started again on the same port with `start()`. */
  stop(hard?: boolean): Promise<void>;
  start(): Promise<void>;
  /** Freeze the server (SIGSTOP): connections stay open and nothing answers, as with a hung Redis. */
  pause(): void;
  /** Let a paused server go on (SIGCONT). */
  resume(): void;
  /** One command over a fresh connection (inline protocol), the raw reply. */
  command(...args: string[]): Promise<string>;
}

/** Data folders of persistent servers, removed when the test process exits. */
const rmLater = new Set<string>();
process.once('exit', () => {
  for (const d of rmLater) rmSync(d, { recursive: true, force: true });
});

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface TestRedisOptions {
  /** Keep the data over a stop and start (an append-only file in a folder of its own). */
  persist?: boolean;
  /** More redis-server arguments ("--requirepass", "--user", ...). */
  args?: string[];
  /**
   * TLS only, on 127.0.0.1 and ::1 (the certificate names "localhost"): the URL is then
   * rediss://localhost:port, and `command()` cannot be used.
   */
  tls?: { cert: string; key: string; ca: string };
}

export async function startRedis(opts: TestRedisOptions = {}): Promise<TestRedis> {
  const port = await freePort();
  const dir = opts.persist ? mkdtempSync(path.join(tmpdir(), 'mtp-redis-')) : null;
  const persistence = dir
    ? ['--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always']
    : ['--appendonly', 'no'];
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    const listen = opts.tls
      ? [
          '--port',
          '0',
          '--tls-port',
          String(port),
          '--tls-cert-file',
          opts.tls.cert,
          '--tls-key-file',
          opts.tls.key,
          '--tls-ca-cert-file',
          opts.tls.ca,
          '--tls-auth-clients',
          'no',
          '--bind',
          '127.0.0.1 -::1',
        ]
      : ['--port', String(port), '--bind', '127.0.0.1'];
    const proc = spawn(
      REDIS_SERVER,
      [...listen, '--save', '', ...persistence, '--protected-mode', 'yes', ...(opts.args ?? [])],
      { stdio: 'ignore' },
    );
    child = proc;
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    for (let i = 0; i < 500; i++) {
      if (exited) throw new Error(`redis-server exited at start (port ${port})`);
      if (await canConnect(port)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    proc.kill('SIGKILL');
    throw new Error(`redis-server did not listen on ${port}`);
  };
  const stop = async (hard = false): Promise<void> => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    // A paused server would not act on SIGTERM.
    if (!hard) proc.kill('SIGCONT');
    proc.kill(hard ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };
  const command = (...args: string[]): Promise<string> =>
    new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      let reply = '';
      s.on('data', (c) => {
        reply += c.toString('utf8');
        if (reply.endsWith('\r\n')) {
          s.destroy();
          resolve(reply);
        }
      });
      s.once('error', reject);
      const parts = [`*${args.length}`, ...args.flatMap((a) => [`$${Buffer.byteLength(a)}`, a])];
      s.write(`${parts.join('\r\n')}\r\n`);
    });
  await start();
  if (dir) rmLater.add(dir);
  const signal = (sig: NodeJS.Signals): void => {
    const proc = child as ChildProcess | null;
    if (!proc || proc.exitCode !== null) throw new Error('redis-server is not running');
    proc.kill(sig);
  };
  const pause = () => signal('SIGSTOP');
  const resume = () => signal('SIGCONT');
  const url = opts.tls ? `rediss://localhost:${port}` : `redis://127.0.0.1:${port}`;
  return { port, url, stop, start, pause, resume, command };
}
