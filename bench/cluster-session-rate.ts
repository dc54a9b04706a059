/**
 * Figure: new fake-TLS sessions per second on one node alone and on a node of a fleet (`[cluster] redis`)
 * with a redis-server on this machine: the cost of replay protection across nodes (each new handshake is
 * also offered to Redis, the checks of one event-loop turn in one pipeline) and of the fleet-wide counters.
 * The two are measured in turns (BENCH_CLUSTER_ROUNDS, default 3) and the median of each is reported, so a
 * change of the machine's load hits both alike. Target: the fleet figure at least 0.9 of the single one.
 */
import { startRedis } from '../test/helpers/redis.ts';
import { redisSkip } from '../test/helpers/redis.ts';
import type { Actor } from './lib/ipc.ts';
import { type Row, row } from './lib/report.ts';
import { sizes } from './lib/sizes.ts';
import { runStandalone } from './lib/standalone.ts';
import { measureSessionRate, type RateResult } from './session-rate.ts';

const ROUNDS = Number(process.env.BENCH_CLUSTER_ROUNDS || (sizes.quick ? 1 : 3));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export async function run(loadgens: Actor[]): Promise<Row[]> {
  const figure = 'cluster-session-rate';
  if (redisSkip)
    return [row(figure, 'tls, 1 worker, local Redis', 'sessions/s', Number.NaN, '1/s', null, redisSkip)];
  const redis = await startRedis();
  try {
    const alone: RateResult[] = [];
    const fleet: RateResult[] = [];
    const cluster = { cluster: { redis: redis.url, node_name: 'bench' } };
    for (let i = 0; i < ROUNDS; i++) {
      alone.push(await measureSessionRate(loadgens, 'tls', 1));
      fleet.push(await measureSessionRate(loadgens, 'tls', 1, cluster));
    }
    const a = median(alone.map((r) => r.perSec));
    const f = median(fleet.map((r) => r.perSec));
    const note = (rs: RateResult[]) => {
      const cpu = median(rs.map((r) => r.cpuUsPerSession)).toFixed(0);
      const failed = rs.reduce((n, r) => n + r.failures, 0);
      const runs = rs.map((r) => r.perSec.toFixed(0)).join(' / ');
      return `runs ${runs}; ${cpu} µs proxy CPU/session${failed > 0 ? `; ${failed} failed` : ''}`;
    };
    // The ratio column is to the node alone: 0.90 or more meets the target.
    return [
      row(figure, 'tls, 1 worker, alone', 'sessions/s', a, '1/s', a, note(alone)),
      row(figure, 'tls, 1 worker, local Redis', 'sessions/s', f, '1/s', a, note(fleet)),
    ];
  } finally {
    await redis.stop();
  }
}

if (import.meta.main) await runStandalone(run);
