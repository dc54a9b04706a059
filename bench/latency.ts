/**
 * Figure: small-message round-trip latency p50/p99 under load: many sessions ping-pong a small message
 * (512 bytes by default) in a closed loop at once, through each path; the upstream echoes.
 */
import {
  cpuSeconds,
  mergeSamples,
  openSessions,
  type PathKind,
  percentile,
  startPath,
} from './lib/harness.ts';
import type { Actor } from './lib/ipc.ts';
import { type Row, row, rowsOrFailure } from './lib/report.ts';
import { sizes } from './lib/sizes.ts';
import { runStandalone } from './lib/standalone.ts';

export interface LatencyResult {
  p50: number;
  p99: number;
  roundTripsPerSec: number;
  cpuUsPerRoundTrip: number;
  failures: number;
}

export async function measureLatency(loadgens: Actor[], kind: PathKind, workers = 1): Promise<LatencyResult> {
  const path = await startPath({ kind, workers }, { mode: 'echo' });
  try {
    const opened = await openSessions(loadgens, path.target, sizes.pingConnections);
    if (opened !== sizes.pingConnections)
      throw new Error(`opened ${opened}/${sizes.pingConnections} sessions`);
    const before = await path.usage();
    const results = await Promise.all(
      loadgens.map((g) =>
        g.call<{ samples: Float64Array; failures: number }>('pingpong', {
          size: sizes.pingSize,
          durationMs: sizes.durationMs,
        }),
      ),
    );
    const after = await path.usage();
    await Promise.all(loadgens.map((g) => g.call('closeAll')));
    const samples = mergeSamples(results.map((r) => r.samples));
    return {
      p50: percentile(samples, 50),
      p99: percentile(samples, 99),
      roundTripsPerSec: samples.length / (sizes.durationMs / 1000),
      cpuUsPerRoundTrip: (cpuSeconds(before, after) * 1e6) / Math.max(1, samples.length),
      failures: results.reduce((n, r) => n + r.failures, 0),
    };
  } finally {
    await path.stop();
  }
}

export async function run(
  loadgens: Actor[],
  paths: PathKind[] = ['direct', 'tls', 'middle'],
): Promise<Row[]> {
  const rows: Row[] = [];
  const load = `${sizes.pingConnections} sessions × ${sizes.pingSize} B`;
  const ceiling = await measureLatency(loadgens, 'ceiling');
  const rowsFor = (name: string, r: LatencyResult, c: LatencyResult): Row[] => {
    const notes = r.failures > 0 ? `${r.failures} sessions failed` : undefined;
    return [
      row('latency', `${name}, ${load}`, 'p50', r.p50, 'µs', c.p50, notes),
      row('latency', `${name}, ${load}`, 'p99', r.p99, 'µs', c.p99),
      row('latency', `${name}, ${load}`, 'round trips/s', r.roundTripsPerSec, '1/s', c.roundTripsPerSec),
      row(
        'latency',
        `${name}, ${load}`,
        'CPU per round trip',
        r.cpuUsPerRoundTrip,
        'µs',
        c.cpuUsPerRoundTrip,
      ),
    ];
  };
  rows.push(...rowsFor('ceiling', ceiling, ceiling));
  for (const kind of paths) {
    const p50Slot = {
      figure: 'latency',
      scenario: `${kind}, ${load}`,
      metric: 'p50',
      unit: 'µs',
      ceiling: ceiling.p50,
    };
    rows.push(
      ...(await rowsOrFailure(p50Slot, async () =>
        rowsFor(kind, await measureLatency(loadgens, kind), ceiling),
      )),
    );
  }
  return rows;
}

if (import.meta.main) await runStandalone(run);
