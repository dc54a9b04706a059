/**
 * `npm run bench`: every figure in one run, each printed with its ratio to the no-crypto ceiling relay, then
 * bench/results/report.json and report.md. Sizes come from the environment (see lib/sizes.ts; BENCH_QUICK=1
 * for a smoke run). BENCH_ONLY=throughput,latency,... runs a subset.
 */
import { run as clusterSessionRate } from './cluster-session-rate.ts';
import { run as cpuPerGb } from './cpu-per-gb.ts';
import { run as frontBack } from './front-back.ts';
import { run as idleSessions } from './idle-sessions.ts';
import { spawnLoadgens, stopAll } from './lib/harness.ts';
import type { Actor } from './lib/ipc.ts';
import { printRows, type Row, writeReport } from './lib/report.ts';
import { sizes } from './lib/sizes.ts';
import { run as latency } from './latency.ts';
import { run as latencyUnderLoad } from './latency-under-load.ts';
import { run as memoryAtRest } from './memory-at-rest.ts';
import { run as sessionRate } from './session-rate.ts';
import { run as throughput } from './throughput.ts';

export const FIGURES: Record<string, (loadgens: Actor[]) => Promise<Row[]>> = {
  throughput: (g) => throughput(g),
  latency: (g) => latency(g),
  'latency-under-load': (g) => latencyUnderLoad(g),
  'session-rate': (g) => sessionRate(g),
  'idle-sessions': (g) => idleSessions(g),
  'cpu-per-gb': (g) => cpuPerGb(g),
  'memory-at-rest': (g) => memoryAtRest(g),
  'cluster-session-rate': (g) => clusterSessionRate(g),
  'front-back': (g) => frontBack(g),
};

export async function runAll(
  only: string[] = Object.keys(FIGURES),
  outDir = new URL('./results/', import.meta.url),
): Promise<{ rows: Row[]; json: string; md: string }> {
  const loadgens = await spawnLoadgens();
  const rows: Row[] = [];
  const startedAt = Date.now();
  try {
    for (const name of only) {
      const figure = FIGURES[name];
      if (!figure) throw new Error(`unknown figure "${name}" (known: ${Object.keys(FIGURES).join(', ')})`);
      const figureRows = await figure(loadgens);
      printRows(figureRows);
      rows.push(...figureRows);
    }
  } finally {
    await stopAll(loadgens);
  }
  const files = writeReport(outDir, rows, {
    loadgens: sizes.loadgens,
    sizes: JSON.stringify(sizes),
    seconds: ((Date.now() - startedAt) / 1000).toFixed(0),
  });
  return { rows, ...files };
}

if (import.meta.main) {
  const only = process.env.BENCH_ONLY ? process.env.BENCH_ONLY.split(',') : undefined;
  const { json, md } = await runAll(only);
  console.log(`\nreport: ${json}\n        ${md}`);
}
