/**
 * Keeps the bench scripts from rotting: one tiny scenario of each kind end to end, through real child
 * processes (proxy, sink, load generator). Checks that figures come out, never how good they are.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { measureLatency } from '../../bench/latency.ts';
import { measureUnderLoad } from '../../bench/latency-under-load.ts';
import { spawnLoadgens, stopAll } from '../../bench/lib/harness.ts';
import type { Actor } from '../../bench/lib/ipc.ts';
import { row, writeReport } from '../../bench/lib/report.ts';
import { sizes } from '../../bench/lib/sizes.ts';
import { measureSessionRate } from '../../bench/session-rate.ts';
import { measureThroughput } from '../../bench/throughput.ts';

describe('bench smoke run', { timeout: 240_000 }, () => {
  let loadgens: Actor[];
  before(async () => {
    Object.assign(sizes, {
      durationMs: 300,
      pingConnections: 4,
      churnConcurrency: 4,
      loadDurationMs: 400,
      tickConnections: 2,
    });
    loadgens = await spawnLoadgens(1);
  });
  after(async () => {
    await stopAll(loadgens);
  });

  it('measures throughput through the ceiling relay and direct mode with 2 workers', async () => {
    const ceiling = await measureThroughput(loadgens, { kind: 'ceiling' }, 2, 256 * 1024);
    const direct = await measureThroughput(loadgens, { kind: 'direct', workers: 2 }, 2, 256 * 1024);
    for (const r of [ceiling, direct]) {
      assert.ok(r.mbPerSec > 0);
      assert.ok(r.bytes >= 4 * 256 * 1024);
    }
  });

  it('measures ping-pong latency through fake-TLS', async () => {
    const r = await measureLatency(loadgens, 'tls');
    assert.equal(r.failures, 0);
    assert.ok(r.p50 > 0 && r.p99 >= r.p50);
  });

  it('measures paced round trips through middle mode while a stream saturates it', async () => {
    const [pinger] = await spawnLoadgens(1);
    try {
      const r = await measureUnderLoad(loadgens, pinger, 'middle', 1);
      assert.equal(r.failures, 0);
      assert.ok(r.samples > 0 && r.p99 >= r.p50 && r.mbPerSec > 0);
    } finally {
      await stopAll([pinger]);
    }
  });

  it('measures new sessions per second through middle mode', async () => {
    const r = await measureSessionRate(loadgens, 'middle', 1);
    assert.ok(r.perSec > 0);
  });

  it('writes the JSON and markdown report', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mtproxy-bench-report-'));
    try {
      const files = writeReport(pathToFileURL(`${dir}/`), [
        row('throughput', 'direct', 'MB/s', 50, 'MB/s', 100),
      ]);
      const json = JSON.parse(readFileSync(files.json, 'utf8'));
      assert.equal(json.rows[0].ratio, 0.5);
      assert.match(readFileSync(files.md, 'utf8'), /\| throughput \| direct \| MB\/s \| 50\.0 \|/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
