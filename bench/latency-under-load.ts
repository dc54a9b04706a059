/**
 * Figure: small-message latency while other sessions saturate the proxy. A few paced clients (their own load
 * generator process) send a small message every 20 ms and time its echo, while N streams send 16 KiB packets
 * as fast as their sockets take them (the upstream echoes, so both directions are saturated). p50, p99 and
 * p99.9 of the paced round trips and the saturating streams' MB/s, each beside the same figure through the
 * ceiling relay under the same load.
 */
import {
  mergeSamples,
  openSessions,
  type PathKind,
  percentile,
  spawnLoadgens,
  startPath,
  stopAll,
} from './lib/harness.ts';
import type { Actor } from './lib/ipc.ts';
import { type Row, row, rowsOrFailure } from './lib/report.ts';
import { sizes } from './lib/sizes.ts';
import { runStandalone } from './lib/standalone.ts';

export const PACKET_SIZE = 16 * 1024;
export const TICK_INTERVAL_MS = 20;

export interface UnderLoadResult {
  p50: number;
  p99: number;
  p999: number;
  samples: number;
  /** Saturating streams, upload + download. */
  mbPerSec: number;
  failures: number;
}

export async function measureUnderLoad(
  loadgens: Actor[],
  pinger: Actor,
  kind: PathKind,
  streams: number,
  workers = 1,
): Promise<UnderLoadResult> {
  const path = await startPath({ kind, workers }, { mode: 'echo' });
  try {
    const opened = await openSessions(loadgens, path.target, streams);
    if (opened !== streams) throw new Error(`opened ${opened}/${streams} streams`);
    const ticking = await openSessions([pinger], path.target, sizes.tickConnections);
    if (ticking !== sizes.tickConnections)
      throw new Error(`opened ${ticking}/${sizes.tickConnections} clients`);
    const durationMs = sizes.loadDurationMs;
    const [ticks, ...bulk] = await Promise.all([
      pinger.call<{ samples: Float64Array; failures: number }>('tick', {
        size: sizes.tickSize,
        intervalMs: TICK_INTERVAL_MS,
        durationMs,
      }),
      ...loadgens.map((g) =>
        g.call<{ sent: number; received: number }>('saturate', { packetSize: PACKET_SIZE, durationMs }),
      ),
    ]);
    await Promise.all([...loadgens, pinger].map((g) => g.call('closeAll')));
    const samples = mergeSamples([ticks.samples]);
    const bytes = bulk.reduce((n, r) => n + r.sent + r.received, 0);
    return {
      p50: percentile(samples, 50),
      p99: percentile(samples, 99),
      p999: percentile(samples, 99.9),
      samples: samples.length,
      mbPerSec: bytes / 1e6 / (durationMs / 1000),
      failures: ticks.failures,
    };
  } finally {
    await path.stop();
  }
}

/** `BENCH_UNDER_LOAD_PATHS` (comma list) narrows a run to some of them; the ceiling always runs. */
export const UNDER_LOAD_PATHS: PathKind[] = process.env.BENCH_UNDER_LOAD_PATHS
  ? (process.env.BENCH_UNDER_LOAD_PATHS.split(',') as PathKind[])
  : ['direct', 'tls', 'middle'];

export async function run(loadgens: Actor[], paths = UNDER_LOAD_PATHS): Promise<Row[]> {
  const rows: Row[] = [];
  // The paced clients get a process of their own: a generator busy pumping bulk data would delay them itself.
  const [pinger] = await spawnLoadgens(1);
  try {
    for (const streams of sizes.loadStreams) {
      const load = `${streams} saturating stream${streams > 1 ? 's' : ''}`;
      const ceiling = await measureUnderLoad(loadgens, pinger, 'ceiling', streams);
      const rowsFor = (name: string, r: UnderLoadResult, c: UnderLoadResult): Row[] => {
        const scenario = `${name}, ${load}`;
        const notes = `${r.samples} round trips${r.failures > 0 ? `, ${r.failures} clients failed` : ''}`;
        return [
          row('latency-under-load', scenario, 'p50', r.p50, 'µs', c.p50, notes),
          row('latency-under-load', scenario, 'p99', r.p99, 'µs', c.p99),
          row('latency-under-load', scenario, 'p99.9', r.p999, 'µs', c.p999),
          row('latency-under-load', scenario, 'bulk MB/s', r.mbPerSec, 'MB/s', c.mbPerSec),
        ];
      };
      rows.push(...rowsFor('ceiling', ceiling, ceiling));
      for (const kind of paths) {
        const slot = {
          figure: 'latency-under-load',
          scenario: `${kind}, ${load}`,
          metric: 'p50',
          unit: 'µs',
          ceiling: ceiling.p50,
        };
        rows.push(
          ...(await rowsOrFailure(slot, async () =>
            rowsFor(kind, await measureUnderLoad(loadgens, pinger, kind, streams), ceiling),
          )),
        );
      }
    }
  } finally {
    await stopAll([pinger]);
  }
  return rows;
}

if (import.meta.main) await runStandalone(run);
