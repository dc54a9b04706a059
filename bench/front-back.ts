/**
 * Figure: what the front→back link adds. The same client sessions (direct mode) once straight through one
 * proxy, once through a front and a back (two proxy processes, one mutually authenticated TLS link between
 * them): round-trip latency of small messages with many sessions at once, and throughput with one stream
 * and many. The ratio column is to the single proxy; the CPU figures add up the front and the back.
 */
import type { Actor } from './lib/ipc.ts';
import { type Row, row, rowsOrFailure } from './lib/report.ts';
import { sizes } from './lib/sizes.ts';
import { runStandalone } from './lib/standalone.ts';
import { measureLatency } from './latency.ts';
import { measureThroughput } from './throughput.ts';

export async function run(loadgens: Actor[]): Promise<Row[]> {
  const figure = 'front-back';
  const rows: Row[] = [];
  const load = `${sizes.pingConnections} sessions × ${sizes.pingSize} B`;
  rows.push(
    ...(await rowsOrFailure(
      { figure, scenario: `latency, ${load}`, metric: 'p50', unit: 'µs', ceiling: null },
      async () => {
        const one = await measureLatency(loadgens, 'direct');
        const fb = await measureLatency(loadgens, 'front-back');
        const failed = fb.failures > 0 ? `; ${fb.failures} sessions failed` : '';
        return [
          row(figure, `one proxy, ${load}`, 'p50', one.p50, 'µs', one.p50),
          row(figure, `one proxy, ${load}`, 'p99', one.p99, 'µs', one.p99),
          row(
            figure,
            `front→back, ${load}`,
            'p50',
            fb.p50,
            'µs',
            one.p50,
            `+${(fb.p50 - one.p50).toFixed(0)} µs${failed}`,
          ),
          row(
            figure,
            `front→back, ${load}`,
            'p99',
            fb.p99,
            'µs',
            one.p99,
            `+${(fb.p99 - one.p99).toFixed(0)} µs`,
          ),
          row(
            figure,
            `front→back, ${load}`,
            'CPU per round trip',
            fb.cpuUsPerRoundTrip,
            'µs',
            one.cpuUsPerRoundTrip,
          ),
        ];
      },
    )),
  );
  for (const streams of [1, sizes.manyStreams]) {
    const perStream = Math.max(64 * 1024, Math.floor(sizes.streamBytes / streams));
    const label = streams === 1 ? '1 stream' : `${streams} streams`;
    rows.push(
      ...(await rowsOrFailure(
        { figure, scenario: `front→back, ${label}`, metric: 'MB/s', unit: 'MB/s', ceiling: null },
        async () => {
          const one = await measureThroughput(loadgens, { kind: 'direct', workers: 1 }, streams, perStream);
          const fb = await measureThroughput(loadgens, { kind: 'front-back' }, streams, perStream);
          return [
            row(figure, `one proxy, ${label}`, 'MB/s', one.mbPerSec, 'MB/s', one.mbPerSec),
            row(figure, `front→back, ${label}`, 'MB/s', fb.mbPerSec, 'MB/s', one.mbPerSec),
            row(figure, `front→back, ${label}`, 'CPU s/GB', fb.cpuSecPerGb, 's', one.cpuSecPerGb),
          ];
        },
      )),
    );
  }
  return rows;
}

if (import.meta.main) await runStandalone(run);
