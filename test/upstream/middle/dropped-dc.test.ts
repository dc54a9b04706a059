/**
 * A DC that Telegram's refreshed config no longer lists, while its pool still exists: every loop that waits for
 * a link must end when no link can be opened. (ensureMinimum and grow used to spin forever on an unchanged
 * condition, freezing the thread.) The scenario runs in a worker thread so that a frozen event loop shows up
 * as a test failure (the main thread terminates the worker at its bound) instead of freezing the runner.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { fakeProxyConfigText } from '../../helpers/fake-middle-proxy.ts';
import { encryptedPayload, startMiddleSetup } from '../../helpers/middle-harness.ts';

/** How long the scenario may take before the worker counts as frozen (a bound, not a measurement). */
const SCENARIO_BOUND_MS = 30_000;

async function scenario(): Promise<string> {
  const setup = await startMiddleSetup({ minConnections: 2 });
  try {
    const c = await setup.connect('intermediate', 4);
    const p = encryptedPayload(1);
    c.sendFrame(p);
    assert.deepEqual((await c.nextFrame()).payload, p);
    assert.ok(setup.upstream.pool(4), 'DC 4 has a pool');
    // Telegram's refreshed config drops DC 4; then its middle proxy closes the links (they rotate).
    const without4 = [1, 2, 3, 5, -1, -2, -3, -5];
    await writeFile(path.join(setup.dir, 'proxy-config.txt'), fakeProxyConfigText(setup.fake.port, without4));
    await setup.upstream.refreshTelegramConfig();
    setup.fake.rotate();
    // The client cannot move anywhere: it is closed, so the app reconnects (and lands on the default DC).
    await c.closed;
    const again = await setup.connect('intermediate', 4);
    const q = encryptedPayload(2);
    again.sendFrame(q);
    assert.deepEqual((await again.nextFrame()).payload, q);
    again.close();
    return `migration failures: ${setup.stats.dc(4).migrationFailures}`;
  } finally {
    await setup.stop();
  }
}

if (!isMainThread) {
  scenario().then(
    (result) => parentPort?.postMessage({ ok: true, result }),
    (err: unknown) => parentPort?.postMessage({ ok: false, error: String((err as Error)?.stack ?? err) }),
  );
} else {
  test('a pool whose DC left the Telegram config closes its clients instead of freezing the thread', async () => {
    const worker = new Worker(new URL(import.meta.url));
    try {
      const outcome = await new Promise<{ ok: boolean; result?: string; error?: string }>(
        (resolve, reject) => {
          const bound = setTimeout(
            () => reject(new Error('the worker did not finish: its event loop is frozen')),
            SCENARIO_BOUND_MS,
          );
          worker.once('message', (m) => {
            clearTimeout(bound);
            resolve(m);
          });
          worker.once('error', (e) => {
            clearTimeout(bound);
            reject(e);
          });
        },
      );
      assert.ok(outcome.ok, outcome.error);
      assert.match(outcome.result ?? '', /migration failures: [1-9]/);
    } finally {
      await worker.terminate();
    }
  });
}
