/** Run one figure script on its own: spawn load generators, print the rows, clean up. */
import type { Actor } from './ipc.ts';
import { spawnLoadgens, stopAll } from './harness.ts';
import { printRows, type Row } from './report.ts';

export async function runStandalone(run: (loadgens: Actor[]) => Promise<Row[]>): Promise<void> {
  const loadgens = await spawnLoadgens();
  try {
    printRows(await run(loadgens));
  } finally {
    await stopAll(loadgens);
  }
}
