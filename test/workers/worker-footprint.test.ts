// A worker thread receives an already-checked config and leaves the admin API and /metrics to the
// supervisor, and the fleet's Redis link to the primary: the modules it loads must not pull in the config
// schema, prom-client, node:http, the TOML parser or the Redis client (each worker would carry their heap and
// code for nothing). The supervisor loads prom-client and node:http only once /metrics or the admin API is
// configured.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';

const WORKER_ENTRY = new URL('../../src/workers/worker-main.ts', import.meta.url).href;

/** Specifiers resolved while a fresh thread imports `entries` (relative to worker-main.ts). */
async function modulesOf(entries: string[]): Promise<string[]> {
  // The same module graph as the real thread (which needs the supervisor's workerData to run), recorded by a
  // resolve hook inside the thread.
  const source = `
    const { registerHooks } = await import('node:module');
    const { parentPort } = await import('node:worker_threads');
    const seen = [];
    registerHooks({ resolve(specifier, context, next) { seen.push(specifier); return next(specifier, context); } });
    const entry = ${JSON.stringify(WORKER_ENTRY)};
    for (const e of ${JSON.stringify(entries)}) await import(new URL(e, entry).href);
    parentPort.postMessage(seen);
  `;
  const worker = new Worker(source, { eval: true });
  try {
    return await new Promise<string[]>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
  } finally {
    await worker.terminate();
  }
}

test('the modules of a worker thread leave out the schema, metrics and admin servers and the Redis client', async () => {
  const seen = await modulesOf([
    './worker-runtime.ts',
    './shared-replay.ts',
    './shared-counters.ts',
    '../log.ts',
  ]);
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

test('the supervisor loads prom-client, node:http and the Redis client only when they are configured', async () => {
  const seen = await modulesOf(['./supervisor.ts', '../admin/operations.ts']);
  assert.ok(
    seen.some((s) => s.endsWith('/operations.ts')),
    'the admin operations are loaded',
  );
  for (const heavy of ['prom-client', 'node:http', 'ioredis'])
    assert.ok(!seen.includes(heavy), `${heavy} is not loaded before it is configured`);
});
