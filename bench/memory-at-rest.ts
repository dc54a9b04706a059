/**
 * Figure: memory at rest. The real `mtproxy run` (fake-TLS, 2 workers by default) as its own process: RSS
 * once it listens and before the first client, right after a burst of N short sessions (connect, handshake,
 * one round trip, close), and again a while after the burst (a minute by default). RSS is read from
 * /proc/<pid>/status (Linux); the ratio column (also in the notes, as "× idle") compares with the idle figure,
 * not with the ceiling relay.
 * BENCH_MEM_WORKERS sets the worker count; BENCH_PROXY_FLAGS adds node flags; the proxy inherits the
 * environment, so allocator settings (MALLOC_ARENA_MAX, ...) can be tried from the shell.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'smol-toml';
import { proxyConfig, TLS_DOMAIN } from './lib/harness.ts';
import { type Actor, spawnActor } from './lib/ipc.ts';
import { type Row, row } from './lib/report.ts';
import { sizes } from './lib/sizes.ts';
import { runStandalone } from './lib/standalone.ts';
import type { Target } from './lib/wire.ts';

// The launcher, as the image and the systemd unit start it (it enables the compile cache, see bin/mtproxy.js).
const MAIN = fileURLToPath(new URL('../bin/mtproxy.js', import.meta.url));

export interface MemoryResult {
  idleMb: number;
  afterBurstMb: number;
  settledMb: number;
  burstCompleted: number;
  burstPerSec: number;
}

/** Hellos each load generator makes before the burst (see measureMemory). */
const PREPARED_HELLOS = 5000;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** Whether something listens on 127.0.0.1:port, read from the kernel's table: connecting would be a client. */
function listening(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .some((l) => {
      const f = l.trim().split(/\s+/);
      return f[1]?.endsWith(hex) && f[3] === '0A';
    });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function measureMemory(
  loadgens: Actor[],
  workers = Number(process.env.BENCH_MEM_WORKERS ?? 2),
): Promise<MemoryResult> {
  const sink = await spawnActor(new URL('./lib/sink-process.ts', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'mtproxy-bench-mem-'));
  let proxy: ChildProcess | null = null;
  try {
    const { port: sinkPort } = await sink.call<{ port: number }>('start', {
      options: { skip: 64, mode: 'echo' },
    });
    const secret = randomBytes(16).toString('hex');
    const config = proxyConfig('tls', secret, sinkPort, workers);
    const port = await freePort();
    (config.listeners as Array<Record<string, unknown>>)[0].port = port;
    const file = join(dir, 'mtproxy.toml');
    writeFileSync(file, stringify(config));
    const extra = process.env.BENCH_PROXY_FLAGS
      ? process.env.BENCH_PROXY_FLAGS.split(' ').filter(Boolean)
      : [];
    // As the image and the systemd unit run it.
    proxy = spawn(process.execPath, ['--max-semi-space-size=8', ...extra, MAIN, 'run', '--config', file], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const pid = proxy.pid!;
    const exited = new Promise<void>((r) => proxy!.once('exit', () => r()));
    const deadline = Date.now() + 30_000;
    while (!listening(port)) {
      if (proxy.exitCode !== null || Date.now() > deadline) throw new Error('the proxy did not start');
      await sleep(100);
    }
    // Workers bind one after the other: let the last one finish starting before the idle figure.
    await sleep(sizes.quick ? 1000 : 3000);
    const idleMb = rssMb(pid);
    const target: Target = { host: '127.0.0.1', port, wire: 'tls', secret, domain: TLS_DOMAIN };
    const per = Math.ceil(sizes.burstSessions / loadgens.length);
    // Hellos carry the time they were made: prepared ones older than the listener's tls_time_skew (120 s) are
    // refused and fronted to the cover domain, which a slow (busy) machine reaches in a 60,000-session burst.
    // A few thousand ahead keep the load generators light; the rest are made as they go.
    const prepare = Math.min(per, PREPARED_HELLOS);
    const startedAt = performance.now();
    const results = await Promise.all(
      loadgens.map((g) =>
        g.call<{ completed: number }>('churn', {
          target,
          concurrency: sizes.churnConcurrency,
          durationMs: 600_000,
          count: per,
          prepare,
        }),
      ),
    );
    const elapsed = (performance.now() - startedAt) / 1000;
    const afterBurstMb = rssMb(pid);
    await sleep(sizes.settleMs);
    const settledMb = rssMb(pid);
    proxy.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    const burstCompleted = results.reduce((n, r) => n + r.completed, 0);
    return { idleMb, afterBurstMb, settledMb, burstCompleted, burstPerSec: burstCompleted / elapsed };
  } finally {
    if (proxy && proxy.exitCode === null) proxy.kill('SIGKILL');
    await sink.call('stop').catch(() => {});
    await sink.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(loadgens: Actor[]): Promise<Row[]> {
  const workers = Number(process.env.BENCH_MEM_WORKERS ?? 2);
  const r = await measureMemory(loadgens, workers);
  const scenario = `fake-TLS, ${workers} worker${workers > 1 ? 's' : ''}`;
  const burst = `after ${r.burstCompleted} sessions`;
  return [
    row('memory-at-rest', scenario, 'RSS idle', r.idleMb, 'MB', r.idleMb, 'before the first client'),
    row(
      'memory-at-rest',
      scenario,
      'RSS after burst',
      r.afterBurstMb,
      'MB',
      r.idleMb,
      `${burst} (${r.burstPerSec.toFixed(0)}/s); ${(r.afterBurstMb / r.idleMb).toFixed(2)}× idle`,
    ),
    row(
      'memory-at-rest',
      scenario,
      'RSS settled',
      r.settledMb,
      'MB',
      r.idleMb,
      `${(sizes.settleMs / 1000).toFixed(0)} s ${burst}; ${(r.settledMb / r.idleMb).toFixed(2)}× idle`,
    ),
  ];
}

if (import.meta.main) await runStandalone(run);
