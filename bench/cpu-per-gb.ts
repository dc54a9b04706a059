/**
 * Figure: the proxy process's CPU seconds (user + system, all threads) per GB relayed, with 1 and 2 workers,
 * under the many-streams throughput load. The 2-worker figure shows what coordination costs the data path
 * (target: within 15% of one worker's). BENCH_WORKER_MODE=processes: worker processes, whose CPU is summed
 * with the primary's (which accepts every connection in that mode).
 */
import { type PathKind, workersLabel } from './lib/harness.ts';
import type { Actor } from './lib/ipc.ts';
import { type Row, row, rowsOrFailure, slotRow } from './lib/report.ts';
import { sizes } from './lib/sizes.ts';
import { runStandalone } from './lib/standalone.ts';
import { measureThroughput } from './throughput.ts';

export async function run(loadgens: Actor[], paths: PathKind[] = ['direct', 'middle']): Promise<Row[]> {
  const streams = sizes.manyStreams;
  const perStream = Math.max(64 * 1024, Math.floor(sizes.streamBytes / streams));
  const ceiling = await measureThroughput(loadgens, { kind: 'ceiling' }, streams, perStream);
  const rows = [
    row(
      'cpu-per-gb',
      `ceiling, ${streams} streams`,
      'CPU s/GB',
      ceiling.cpuSecPerGb,
      's/GB',
      ceiling.cpuSecPerGb,
    ),
  ];
  for (const kind of paths) {
    let one: number | null = null;
    for (const workers of [1, 2]) {
      const slot = {
        figure: 'cpu-per-gb',
        scenario: `${kind}, ${workersLabel(workers)}, ${streams} streams`,
        metric: 'CPU s/GB',
        unit: 's/GB',
        ceiling: ceiling.cpuSecPerGb,
      };
      rows.push(
        ...(await rowsOrFailure(slot, async () => {
          const r = await measureThroughput(loadgens, { kind, workers }, streams, perStream);
          const vsOne =
            one !== null ? `${((100 * (r.cpuSecPerGb - one)) / one).toFixed(0)}% vs 1 worker; ` : '';
          if (workers === 1) one = r.cpuSecPerGb;
          return [slotRow(slot, r.cpuSecPerGb, `${vsOne}${r.mbPerSec.toFixed(0)} MB/s`)];
        })),
      );
    }
  }
  return rows;
}

if (import.meta.main) await runStandalone(run);
