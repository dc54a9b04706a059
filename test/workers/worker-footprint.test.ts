// A worker thread receives an already-checked config and leaves the admin API and /metrics to the
// supervisor, and the fleet's Redis link to the primary: the modules it loads must not pull in the config
// schema, prom-client, node:http, the TOML parser or the Redis client (each worker would carry their heap and
// code for nothing).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';

const WORKER_ENTRY = new URL('../../src/workers/worker-main.ts', import.meta.url).href;

test('the modules of a worker thread leave out the schema, metrics and admin servers and the Redis client', async () => {
  // The same module graph as worker-main.ts (which needs the supervisor's workerData to run), recorded by a
  // resolve hook inside the thread.
  const source = `
    const { registerHooks } = await import('node:module');
    const { parentPort } = await import('node:worker_threads');
    const seen = [];
    registerHooks({ resolve(specifier, context, next) { seen.push(specifier); return next(specifier, context); } });
    const entry = ${JSON.stringify(WORKER_ENTRY)};
    await import(new URL('./worker-runtime.ts', entry).href);
    await import(new URL('./shared-replay.ts', entry).href);
    await import(new URL('./shared-counters.ts', entry).href);
    await import(new URL('../log.ts', entry).href);
    parentPort.postMessage(seen);
  `;
  const worker = new Worker(source, { eval: true });
  const seen = await new Promise<string[]>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();
  assert.ok(
    seen.some((s) => s.endsWith('/proxy.ts')),
    'the proxy itself is loaded',
  );
  for (const heavy of [
    'zod',
    'prom-client',
    'node:http',
    'smol-toml',
    'ioredis',
    './schema.ts',
    '../config/schema.ts',
  ])
    assert.ok(!seen.includes(heavy), `${heavy} is not loaded by a worker`);
});
