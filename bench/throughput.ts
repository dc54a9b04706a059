/**
 * Figure: relay throughput (MB/s, upload + download together) through each path, one stream and many, and
 * the proxy's CPU seconds per GB relayed in the same runs. Every session uploads and downloads the same
 * number of bytes at once.
 */
import type { Actor } from './lib/ipc.ts';
import { type PathKind, type PathSpec, cpuSeconds, openSessions, startPath } from './lib/harness.ts';
import { type Row, row, rowsOrFailure, slotRow } from './lib/report.ts';
import { runStandalone } from './lib/standalone.ts';
import { sizes } from './lib/sizes.ts';

export interface ThroughputResult {
  mbPerSec: number;
  cpuSecPerGb: number;
  bytes: number;
}

export async function measureThroughput(
  loadgens: Actor[],
  spec: PathSpec,
  streams: number,
  bytesPerStream: number,
): Promise<ThroughputResult> {
  const path = await startPath(spec, { mode: 'stream', downBytes: bytesPerStream });
  try {
    // One stream uses one generator; many streams are spread over all of them.
    const gens = streams === 1 ? loadgens.slice(0, 1) : loadgens;
    const opened = await openSessions(gens, path.target, streams);
    if (opened !== streams) throw new Error(`opened ${opened}/${streams} sessions`);
    const before = await path.usage();
    const startedAt = performance.now();
    const results = await Promise.all(
      gens.map((g) =>
        g.call<{ sent: number; received: number }>('throughput', {
          upBytes: bytesPerStream,
          downBytes: bytesPerStream,
          // The fake middle proxy echoes: what comes back is the upload itself.
          echo: spec.kind === 'middle',
        }),
      ),
    );
    const elapsed = (performance.now() - startedAt) / 1000;
    const after = await path.usage();
    await Promise.all(gens.map((g) => g.call('closeAll')));
    const bytes = results.reduce((n, r) => n + r.sent + r.received, 0);
    const received = results.reduce((n, r) => n + r.received, 0);
    // A session that closed early would make the figure meaningless: refuse it.
    if (received < streams * bytesPerStream)
      throw new Error(`only ${received} of ${streams * bytesPerStream} bytes came back`);
    return { mbPerSec: bytes / 1e6 / elapsed, cpuSecPerGb: cpuSeconds(before, after) / (bytes / 1e9), bytes };
  } finally {
    await path.stop();
  }
}

/** `BENCH_THROUGHPUT_PATHS` (comma list) narrows a run to some of them; the ceiling always runs. */
export const THROUGHPUT_PATHS: PathKind[] = process.env.BENCH_THROUGHPUT_PATHS
  ? (process.env.BENCH_THROUGHPUT_PATHS.split(',') as PathKind[])
  : ['direct', 'tls', 'middle'];

export async function run(loadgens: Actor[], paths = THROUGHPUT_PATHS): Promise<Row[]> {
  const rows: Row[] = [];
  for (const streams of [1, sizes.manyStreams]) {
    const perStream = Math.max(64 * 1024, Math.floor(sizes.streamBytes / streams));
    const ceiling = await measureThroughput(loadgens, { kind: 'ceiling' }, streams, perStream);
    const label = streams === 1 ? '1 stream' : `${streams} streams`;
    rows.push(row('throughput', `ceiling, ${label}`, 'MB/s', ceiling.mbPerSec, 'MB/s', ceiling.mbPerSec));
    for (const kind of paths) {
      const slot = {
        figure: 'throughput',
        scenario: `${kind}, ${label}`,
        metric: 'MB/s',
        unit: 'MB/s',
        ceiling: ceiling.mbPerSec,
      };
      rows.push(
        ...(await rowsOrFailure(slot, async () => {
          const r = await measureThroughput(loadgens, { kind, workers: 1 }, streams, perStream);
          return [slotRow(slot, r.mbPerSec)];
        })),
      );
    }
  }
  return rows;
}

if (import.meta.main) await runStandalone(run);
