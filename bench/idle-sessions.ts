/**
 * Figure: idle sessions held at once, with the proxy's RSS per session, and how many still answer a round
 * trip after all of them were opened. RSS is measured after a full GC, before opening and after.
 * The proxy needs two descriptors per direct-mode session (client + DC) but one per middle-mode session, so
 * counts a 20,000-descriptor limit cannot hold are skipped and said so.
 */
import { openSessions, type PathKind, startPath, type Usage } from './lib/harness.ts';
import type { Actor } from './lib/ipc.ts';
import { type Row, row, rowsOrFailure, slotRow } from './lib/report.ts';
import { sizes } from './lib/sizes.ts';
import { runStandalone } from './lib/standalone.ts';

export interface IdleResult {
  opened: number;
  answered: number;
  rssPerSessionKiB: number;
  heapPerSessionKiB: number;
}

/** Descriptors the proxy process needs for `n` sessions on this path, plus some headroom. */
function descriptorsNeeded(kind: PathKind, n: number): number {
  return (kind === 'middle' ? n : 2 * n) + 200;
}

async function settledUsage(proxy: Actor): Promise<Usage> {
  await proxy.call('gc');
  await new Promise((r) => setTimeout(r, 200));
  await proxy.call('gc');
  return proxy.call<Usage>('usage');
}

export async function measureIdle(loadgens: Actor[], kind: PathKind, count: number): Promise<IdleResult> {
  const path = await startPath({ kind, workers: 1 }, { mode: 'echo' });
  try {
    // One warm-up session so lazily created state (upstream pools, code) is not charged to the idle ones.
    await openSessions(loadgens.slice(0, 1), path.target, 1);
    const warm = await loadgens[0].call<{ answered: number }>('check', { size: 64 });
    if (warm.answered !== 1) throw new Error('the warm-up session does not answer');
    const before = await settledUsage(path.proxy);
    const opened = (await openSessions(loadgens, path.target, count, 128)) + 1;
    // Every session makes one round trip first, so each has its upstream open and has moved data.
    await Promise.all(loadgens.map((g) => g.call('check', { size: 64 })));
    const after = await settledUsage(path.proxy);
    // Then hold them for a moment and ask every session again: all must still answer.
    await new Promise((r) => setTimeout(r, 500));
    const second = await Promise.all(
      loadgens.map((g) => g.call<{ answered: number }>('check', { size: 64 })),
    );
    await Promise.all(loadgens.map((g) => g.call('closeAll')));
    const n = Math.max(1, opened - 1);
    return {
      opened: opened - 1,
      answered: second.reduce((a, r) => a + r.answered, 0) - 1,
      rssPerSessionKiB: (after.rss - before.rss) / n / 1024,
      heapPerSessionKiB: (after.heapUsed - before.heapUsed) / n / 1024,
    };
  } finally {
    await path.stop();
  }
}

export async function run(loadgens: Actor[], paths: PathKind[] = ['direct', 'middle']): Promise<Row[]> {
  const rows: Row[] = [];
  const fdLimit = Number(process.env.BENCH_FD_LIMIT ?? 20_000);
  for (const count of sizes.idleCounts) {
    const ceilingOk = descriptorsNeeded('ceiling', count) <= fdLimit;
    const ceiling = ceilingOk ? await measureIdle(loadgens, 'ceiling', count) : null;
    if (ceiling) {
      rows.push(
        row(
          'idle-sessions',
          `ceiling, ${count} sessions`,
          'RSS/session',
          ceiling.rssPerSessionKiB,
          'KiB',
          ceiling.rssPerSessionKiB,
          `${ceiling.answered}/${ceiling.opened} answered`,
        ),
      );
    }
    for (const kind of paths) {
      // A path skipped or failed has no ceiling to compare with.
      const slot = {
        figure: 'idle-sessions',
        scenario: `${kind}, ${count} sessions`,
        metric: 'RSS/session',
        unit: 'KiB',
        ceiling: null,
      };
      if (descriptorsNeeded(kind, count) > fdLimit) {
        rows.push(slotRow(slot, Number.NaN, `skipped: needs more than ${fdLimit} descriptors`));
        continue;
      }
      rows.push(
        ...(await rowsOrFailure(slot, async () => {
          const r = await measureIdle(loadgens, kind, count);
          const notes = `${r.answered}/${r.opened} answered; heap ${r.heapPerSessionKiB.toFixed(1)} KiB/session`;
          return [
            slotRow({ ...slot, ceiling: ceiling?.rssPerSessionKiB ?? null }, r.rssPerSessionKiB, notes),
          ];
        })),
      );
    }
  }
  return rows;
}

if (import.meta.main) await runStandalone(run);
