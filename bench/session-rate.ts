/**
 * Figure: new sessions per second. Each load-generator loop connects, completes the handshake (fake-TLS:
 * ClientHello, ServerHello check, obfuscated2 header), does one small round trip through the upstream and
 * closes, as fast as it can, after a short warm-up that is not counted. With 2 workers the per-worker split of accepted connections is reported too.
 * BENCH_WORKER_MODE=processes runs the workers as processes (the fallback where SO_REUSEPORT is missing).
 */
import { cpuSeconds, type PathKind, startPath, workersLabel } from './lib/harness.ts';
import type { Actor } from './lib/ipc.ts';
import { type Row, row, rowsOrFailure, slotRow } from './lib/report.ts';
import { sizes } from './lib/sizes.ts';
import { runStandalone } from './lib/standalone.ts';

/** Warm-up churn before the timed window, in ms (default: a quarter of the window, at most 1 s). */
const WARMUP_MS = process.env.BENCH_WARMUP_MS ? Number(process.env.BENCH_WARMUP_MS) : undefined;

export interface RateResult {
  perSec: number;
  failures: number;
  perWorker: number[];
  /** Proxy CPU time per completed session. */
  cpuUsPerSession: number;
  /** Proxy CPU use during the run, in cores. */
  proxyCores: number;
}

export async function measureSessionRate(
  loadgens: Actor[],
  kind: PathKind,
  workers: number,
  extra?: Record<string, unknown>,
): Promise<RateResult> {
  const path = await startPath({ kind, workers, extra }, { mode: 'echo' });
  const churn = (durationMs: number) =>
    Promise.all(
      loadgens.map((g) =>
        g.call<{ completed: number; failures: number; elapsedMs: number }>('churn', {
          target: path.target,
          concurrency: sizes.churnConcurrency,
          durationMs,
          // Enough for ~8,000 sessions/s per generator over the window.
          prepare: Math.ceil((durationMs / 1000) * 8000),
        }),
      ),
    );
  try {
    // A proxy runs for months: measure it warm, not while its handshake code is still being compiled
    // (BENCH_WARMUP_MS; each worker compiles its own, so on a busy machine two workers need longer).
    await churn(WARMUP_MS ?? Math.min(1000, sizes.durationMs / 4));
    const spread = () => path.proxy.call<{ perWorker: number[] }>('spread');
    const acceptedBefore = (await spread()).perWorker;
    const before = await path.usage();
    const results = await churn(sizes.durationMs);
    const after = await path.usage();
    const perWorker = (await spread()).perWorker.map((n, i) => n - (acceptedBefore[i] ?? 0));
    const elapsed = Math.max(...results.map((r) => r.elapsedMs)) / 1000;
    const completed = results.reduce((n, r) => n + r.completed, 0);
    const cpu = cpuSeconds(before, after);
    return {
      perSec: completed / elapsed,
      cpuUsPerSession: (cpu * 1e6) / Math.max(1, completed),
      proxyCores: cpu / elapsed,
      failures: results.reduce((n, r) => n + r.failures, 0),
      perWorker,
    };
  } finally {
    await path.stop();
  }
}

function spreadNote(r: RateResult): string | undefined {
  const notes: string[] = [];
  if (r.perWorker.length > 1) {
    const total = r.perWorker.reduce((a, b) => a + b, 0);
    notes.push(
      `per-worker share ${r.perWorker.map((n) => `${((100 * n) / Math.max(1, total)).toFixed(0)}%`).join(' / ')}`,
    );
  }
  notes.push(`proxy at ${r.proxyCores.toFixed(2)} cores, ${r.cpuUsPerSession.toFixed(0)} µs CPU/session`);
  if (r.failures > 0) notes.push(`${r.failures} failed`);
  return notes.length ? notes.join('; ') : undefined;
}

/**
 * The mtproxy paths measured after the ceiling, as kind and worker count. `BENCH_SESSION_PATHS` (comma list of
 * `kind:workers`, e.g. `tls:2,direct:1`) narrows or widens a run; the ceiling always runs.
 */
export const SESSION_PATHS: Array<[PathKind, number]> = process.env.BENCH_SESSION_PATHS
  ? process.env.BENCH_SESSION_PATHS.split(',').map((p) => {
      const [kind, workers] = p.trim().split(':');
      return [kind as PathKind, Number(workers ?? 1) || 1];
    })
  : [
      ['tls', 1],
      ['tls', 2],
      ['direct', 1],
    ];

export async function run(loadgens: Actor[], paths = SESSION_PATHS): Promise<Row[]> {
  const ceiling = await measureSessionRate(loadgens, 'ceiling', 1);
  const rows = [
    row(
      'session-rate',
      'ceiling (connect + round trip)',
      'sessions/s',
      ceiling.perSec,
      '1/s',
      ceiling.perSec,
      spreadNote(ceiling),
    ),
  ];
  for (const [kind, workers] of paths) {
    const slot = {
      figure: 'session-rate',
      scenario: `${kind}, ${workersLabel(workers)}`,
      metric: 'sessions/s',
      unit: '1/s',
      ceiling: ceiling.perSec,
    };
    rows.push(
      ...(await rowsOrFailure(slot, async () => {
        const r = await measureSessionRate(loadgens, kind, workers);
        return [slotRow(slot, r.perSec, spreadNote(r))];
      })),
    );
  }
  return rows;
}

if (import.meta.main) await runStandalone(run);
