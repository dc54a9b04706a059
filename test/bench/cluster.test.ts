/**
 * Keeps the cluster bench figures from rotting: the session rate of a node using a real redis-server, and
 * latency and throughput through a front and a back (two proxy processes and their link). Checks that
 * figures come out, never how good they are.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { measureLatency } from '../../bench/latency.ts';
import { spawnLoadgens, stopAll } from '../../bench/lib/harness.ts';
import type { Actor } from '../../bench/lib/ipc.ts';
import { sizes } from '../../bench/lib/sizes.ts';
import { measureSessionRate } from '../../bench/session-rate.ts';
import { measureThroughput } from '../../bench/throughput.ts';
import { redisSkip, startRedis } from '../helpers/redis.ts';

describe('cluster bench smoke run', { timeout: 240_000 }, () => {
  let loadgens: Actor[];
  before(async () => {
    Object.assign(sizes, { durationMs: 300, pingConnections: 4, churnConcurrency: 4 });
    loadgens = await spawnLoadgens(1);
  });
  after(async () => {
    await stopAll(loadgens);
  });

  it('measures new fake-TLS sessions per second on a node using Redis', { skip: redisSkip }, async () => {
    const redis = await startRedis();
    try {
      const r = await measureSessionRate(loadgens, 'tls', 1, {
        cluster: { redis: redis.url, node_name: 'bench' },
      });
      assert.ok(r.perSec > 0);
      assert.equal(r.failures, 0);
      // The node registered itself and offered the handshakes to Redis.
      assert.match(await redis.command('KEYS', 'mtproxy:replay:*'), /^\*[1-9]/);
    } finally {
      await redis.stop();
    }
  });

  it('measures latency and throughput through a front and a back', async () => {
    const lat = await measureLatency(loadgens, 'front-back');
    assert.equal(lat.failures, 0);
    assert.ok(lat.p50 > 0 && lat.p99 >= lat.p50);
    const tp = await measureThroughput(loadgens, { kind: 'front-back' }, 2, 256 * 1024);
    assert.ok(tp.mbPerSec > 0 && tp.bytes >= 4 * 256 * 1024);
  });
});
