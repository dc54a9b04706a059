/**
 * Orchestration shared by every figure script: spawn the sink, the proxy under test and the load generators
 * as separate processes, run one scenario, read the proxy's own CPU and memory around it.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Actor, spawnActor } from './ipc.ts';
import { sizes } from './sizes.ts';
import type { Target } from './wire.ts';

const here = (p: string) => new URL(p, import.meta.url);

/** What stands between the load generator and the sink. */
export type PathKind = 'ceiling' | 'direct' | 'tls' | 'middle';

export interface PathSpec {
  kind: PathKind;
  workers?: number;
}

/**
 * BENCH_WORKER_MODE=threads|processes|auto: the proxy's `worker_mode` (default: the config's own, auto).
 * With "processes" even one worker runs as a worker process behind the primary, so 1 and 2 compare alike.
 */
export const benchWorkerMode: string | undefined = process.env.BENCH_WORKER_MODE || undefined;

/** "2 workers", or "2 processes" when the bench runs them as worker processes. */
export function workersLabel(workers: number): string {
  if (benchWorkerMode === 'processes') return `${workers} process${workers > 1 ? 'es' : ''}`;
  return `${workers} worker${workers > 1 ? 's' : ''}`;
}

export interface Usage {
  cpuUserUs: number;
  cpuSystemUs: number;
  rss: number;
  heapUsed: number;
}

export function cpuSeconds(before: Usage, after: Usage): number {
  return (after.cpuUserUs + after.cpuSystemUs - before.cpuUserUs - before.cpuSystemUs) / 1e6;
}

export const TLS_DOMAIN = 'bench.example.com';

/** The proxy's state folder (policy tables) for this bench run; removed when the orchestrator exits. */
const BENCH_STATE_DIR = join(tmpdir(), `mtproxy-bench-state-${process.pid}`);
process.once('exit', () => rmSync(BENCH_STATE_DIR, { recursive: true, force: true }));

/** A running path: proxy process + sink process, and the target the load generators aim at. */
export interface RunningPath {
  target: Target;
  proxy: Actor;
  sink: Actor;
  usage(): Promise<Usage>;
  stop(): Promise<void>;
}

export interface SinkSetup {
  mode: 'echo' | 'stream';
  downBytes?: number;
}

/** The mtproxy config (TOML-shaped object) for a path whose upstream listens on `upstreamPort`. */
export function proxyConfig(
  kind: PathKind,
  secret: string,
  upstreamPort: number,
  workers: number,
  middleFiles?: { secretFile: string; configFile: string },
): Record<string, unknown> {
  const listener: Record<string, unknown> = {
    name: 'bench',
    host: '127.0.0.1',
    port: 0,
    secret,
    allowed_protocols: kind === 'tls' ? ['tls'] : ['classic', 'secure'],
  };
  if (kind === 'tls') listener.tls_domain = TLS_DOMAIN;
  const config: Record<string, unknown> = {
    workers,
    ...(benchWorkerMode ? { worker_mode: benchWorkerMode } : {}),
    state_dir: BENCH_STATE_DIR,
    listeners: [listener],
    upstream: { mode: kind === 'middle' ? 'middle' : 'direct' },
    timeouts: { idle: '30m', handshake: '30s' },
    log: { level: 'error' },
  };
  if (kind === 'middle' && middleFiles) {
    // The fake middle proxy echoes bulk uploads, which Telegram never does: megabytes of answers are already
    // on their way when a load generator that fell behind gets paused, more than the default backlog bound
    // (sized for real traffic) allows. A generous bound keeps such a client from being dropped mid-figure.
    config.buffers = { max_client_backlog: 32 * 1024 * 1024 };
    config.telegram = {
      proxy_secret: middleFiles.secretFile,
      proxy_config: middleFiles.configFile,
      proxy_config_v6: middleFiles.configFile,
      ip_lookup_url: '',
    };
  } else {
    const dc: Record<string, string[]> = {};
    for (const id of [1, 2, 3, 4, 5]) dc[String(id)] = [`127.0.0.1:${upstreamPort}`];
    (config.upstream as Record<string, unknown>).dc = dc;
  }
  return config;
}

export async function startPath(spec: PathSpec, sinkSetup: SinkSetup): Promise<RunningPath> {
  // The fake middle proxy decrypts and re-encrypts everything on the same two cores as the proxy under test:
  // its cipher output is short-lived external memory that would otherwise cost it a full collection every
  // few tens of ms.
  const sink = await spawnActor(here('./sink-process.ts'), {
    execArgv: ['--external-memory-accounted-in-global-limit'],
  });
  // BENCH_PROFILE=<dir>: write a V8 CPU profile of the proxy process (and its worker threads) per path.
  const profile = process.env.BENCH_PROFILE
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]
    : [];
  // BENCH_PROXY_FLAGS: extra node flags for the proxy process (e.g. "--max-semi-space-size=32").
  const extra = process.env.BENCH_PROXY_FLAGS ? process.env.BENCH_PROXY_FLAGS.split(' ').filter(Boolean) : [];
  // 8 MB semi-spaces, as the image and the systemd unit run it (worker threads get the same cap in any case).
  const proxy = await spawnActor(here('./proxy-process.ts'), {
    execArgv: ['--expose-gc', '--max-semi-space-size=8', ...profile, ...extra],
  });
  try {
    const secret = randomBytes(16).toString('hex');
    let target: Target;
    if (spec.kind === 'ceiling') {
      const { port: sinkPort } = await sink.call<{ port: number }>('start', {
        options: { skip: 0, ...sinkSetup },
      });
      const { port } = await proxy.call<{ port: number }>('start', { kind: 'ceiling', targetPort: sinkPort });
      target = { host: '127.0.0.1', port, wire: 'plain' };
    } else if (spec.kind === 'middle') {
      // The fake middle proxy echoes every packet: uploads come back as downloads of the same size.
      const files = await sink.call<{ port: number; secretFile: string; configFile: string }>('start', {
        kind: 'middle',
      });
      const config = proxyConfig('middle', secret, files.port, spec.workers ?? 1, files);
      const { port } = await proxy.call<{ port: number }>('start', { kind: 'mtproxy', config });
      target = { host: '127.0.0.1', port, wire: 'o2', secret, framed: true };
    } else {
      const { port: sinkPort } = await sink.call<{ port: number }>('start', {
        options: { skip: 64, ...sinkSetup },
      });
      const config = proxyConfig(spec.kind, secret, sinkPort, spec.workers ?? 1);
      const { port } = await proxy.call<{ port: number }>('start', { kind: 'mtproxy', config });
      target = {
        host: '127.0.0.1',
        port,
        wire: spec.kind === 'tls' ? 'tls' : 'o2',
        secret,
        domain: TLS_DOMAIN,
      };
    }
    return {
      target,
      proxy,
      sink,
      usage: () => proxy.call<Usage>('usage'),
      async stop() {
        await Promise.allSettled([proxy.call('stop'), sink.call('stop')]);
        await Promise.all([proxy.stop(), sink.stop()]);
      },
    };
  } catch (e) {
    await Promise.all([proxy.stop(), sink.stop()]);
    throw e;
  }
}

export async function spawnLoadgens(n = sizes.loadgens): Promise<Actor[]> {
  return Promise.all(Array.from({ length: n }, () => spawnActor(here('./loadgen-process.ts'))));
}

export async function stopAll(actors: Actor[]): Promise<void> {
  await Promise.all(actors.map((a) => a.stop()));
}

/** Split `total` sessions over the load generators and open them. */
export async function openSessions(
  loadgens: Actor[],
  target: Target,
  total: number,
  concurrency = 64,
): Promise<number> {
  const per = splitEvenly(total, loadgens.length);
  const results = await Promise.all(
    loadgens.map((g, i) =>
      per[i] > 0
        ? g.call<{ opened: number; failed: number }>('open', { target, count: per[i], concurrency })
        : { opened: 0, failed: 0 },
    ),
  );
  return results.reduce((n, r) => n + r.opened, 0);
}

export function splitEvenly(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export function mergeSamples(parts: Float64Array[]): Float64Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Float64Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out.sort();
}
