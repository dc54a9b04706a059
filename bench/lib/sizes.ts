/**
 * Bench sizes, from the environment so a run can be shrunk or grown without editing code:
 * BENCH_QUICK=1 (a smoke run of a few seconds), BENCH_BYTES (per stream, throughput), BENCH_STREAMS (many-
 * streams count), BENCH_DURATION_MS (latency and session-rate windows), BENCH_PING_CONNS, BENCH_IDLE (comma
 * list of idle-session counts), BENCH_CHURN_CONCURRENCY.
 */
const quick = process.env.BENCH_QUICK === '1';

function num(name: string, full: number, small: number): number {
  const v = process.env[name];
  if (v !== undefined && v !== '') return Number(v);
  return quick ? small : full;
}

function list(name: string, full: number[], small: number[]): number[] {
  const v = process.env[name];
  if (v) return v.split(',').map(Number);
  return quick ? small : full;
}

export const sizes = {
  quick,
  /** Upload = download bytes per stream for the single-stream run. */
  streamBytes: num('BENCH_BYTES', 256 * 1024 * 1024, 8 * 1024 * 1024),
  manyStreams: num('BENCH_STREAMS', 32, 4),
  durationMs: num('BENCH_DURATION_MS', 4000, 600),
  pingConnections: num('BENCH_PING_CONNS', 200, 20),
  pingSize: num('BENCH_PING_SIZE', 512, 512),
  churnConcurrency: num('BENCH_CHURN_CONCURRENCY', 64, 8),
  idleCounts: list('BENCH_IDLE', [1000, 5000, 8000, 10000, 15000], [100]),
  loadgens: num('BENCH_LOADGENS', 2, 1),
  /** latency-under-load: saturating stream counts, paced clients, their message size and the window. */
  loadStreams: list('BENCH_LOAD_STREAMS', [1, 4, 16], [4]),
  tickConnections: num('BENCH_TICK_CONNS', 8, 2),
  tickSize: num('BENCH_TICK_SIZE', 128, 128),
  loadDurationMs: num('BENCH_LOAD_DURATION_MS', 6000, 800),
  /** memory-at-rest: sessions in the burst and how long to wait after it. */
  burstSessions: num('BENCH_BURST', 60000, 2000),
  settleMs: num('BENCH_SETTLE_MS', 60000, 3000),
};
