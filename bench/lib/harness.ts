/**
 * Orchestration shared by every figure script: spawn the sink, the proxy under test and the load generators
 * as separate processes, run one scenario, read the proxy's own CPU and memory around it.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateClusterCerts } from '../../src/cluster/front-back/certs.ts';
import { type Actor, spawnActor } from './ipc.ts';
import { sizes } from './sizes.ts';
import type { Target } from './wire.ts';

const here = (p: string) => new URL(p, import.meta.url);

/**
 * What stands between the load generator and the sink. `front-back`: direct mode through a front and one
 * back, two proxy processes joined by their TLS link (the back reaches the sink).
 */
export type PathKind = 'ceiling' | 'direct' | 'tls' | 'middle' | 'front-back';

export interface PathSpec {
  kind: PathKind;
  workers?: number;
  /** Top-level config tables merged into the proxy's config (e.g. `{ cluster: { redis } }`). */
  extra?: Record<string, unknown>;
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
  /** front-back: the back's process (`proxy` is the front). */
  let back: Actor | null = null;
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
    } else if (spec.kind === 'front-back') {
      const { port: sinkPort } = await sink.call<{ port: number }>('start', {
        options: { skip: 64, ...sinkSetup },
      });
      const started = await startFrontBack(proxy, secret, sinkPort);
      back = started.back;
      target = { host: '127.0.0.1', port: started.port, wire: 'o2', secret };
    } else {
      const { port: sinkPort } = await sink.call<{ port: number }>('start', {
        options: { skip: 64, ...sinkSetup },
      });
      const config = { ...proxyConfig(spec.kind, secret, sinkPort, spec.workers ?? 1), ...spec.extra };
      const { port } = await proxy.call<{ port: number }>('start', { kind: 'mtproxy', config });
      target = {
        host: '127.0.0.1',
        port,
        wire: spec.kind === 'tls' ? 'tls' : 'o2',
        secret,
        domain: TLS_DOMAIN,
      };
    }
    const backActor = back;
    return {
      target,
      proxy,
      sink,
      // front-back: both processes' CPU and memory (the link costs on both sides).
      usage: async () => {
        const front = await proxy.call<Usage>('usage');
        if (backActor === null) return front;
        const b = await backActor.call<Usage>('usage');
        return {
          cpuUserUs: front.cpuUserUs + b.cpuUserUs,
          cpuSystemUs: front.cpuSystemUs + b.cpuSystemUs,
          rss: front.rss + b.rss,
          heapUsed: front.heapUsed + b.heapUsed,
        };
      },
      async stop() {
        await Promise.allSettled([proxy.call('stop'), sink.call('stop'), backActor?.call('stop')]);
        await Promise.all([proxy.stop(), sink.stop(), backActor?.stop()]);
      },
    };
  } catch (e) {
    await Promise.all([proxy.stop(), sink.stop(), back?.stop()]);
    throw e;
  }
}

/** Certificates of the bench's front and back, made once per run (removed when the orchestrator exits). */
let benchCerts: Promise<string> | null = null;

function frontBackCerts(): Promise<string> {
  benchCerts ??= (async () => {
    const dir = join(BENCH_STATE_DIR, 'certs');
    await generateClusterCerts(dir, ['front', 'back']);
    return dir;
  })();
  return benchCerts;
}

/** A back (its own proxy process, reaching the sink) and `front` linked to it; the front's client port. */
async function startFrontBack(
  front: Actor,
  secret: string,
  sinkPort: number,
): Promise<{ back: Actor; port: number }> {
  const dir = await frontBackCerts();
  const tlsFiles = (name: string) => ({
    cert: join(dir, `${name}.crt`),
    key: join(dir, `${name}.key`),
    ca: join(dir, 'ca.crt'),
  });
  const back = await spawnActor(here('./proxy-process.ts'), { execArgv: ['--max-semi-space-size=8'] });
  try {
    const backConfig = {
      ...proxyConfig('direct', secret, sinkPort, 1),
      cluster: { role: 'back', link_listen: '127.0.0.1:0', ...tlsFiles('back') },
    };
    const { linkPort } = await back.call<{ linkPort: number }>('start', {
      kind: 'mtproxy',
      config: backConfig,
    });
    // The front has no route to the sink: every session goes over the link.
    const frontConfig = {
      ...proxyConfig('direct', secret, 1, 1),
      cluster: { role: 'front', backs: [`127.0.0.1:${linkPort}`], ...tlsFiles('front') },
    };
    const { port } = await front.call<{ port: number }>('start', { kind: 'mtproxy', config: frontConfig });
    return { back, port };
  } catch (e) {
    await back.stop();
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
