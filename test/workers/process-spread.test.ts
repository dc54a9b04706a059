// Worker processes: the primary hands connections out in turn; metrics sum the workers; listener caps.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { ClientSession } from '../../bench/lib/wire.ts';
import { parseConfig } from '../../src/config/load.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { Supervisor } from '../../src/workers/supervisor.ts';
import { echoDcAndFolder, log, openMany, roundTrip, supervisorToml, until } from './supervisor-suite.ts';

describe('worker processes: spread and metrics', () => {
  const fx = echoDcAndFolder('mtproxy-processes-');

  it('hands connections out in turn (each worker 50% ± 10%) and /metrics sums both workers', async () => {
    const extra = '[metrics]\nlisten = "127.0.0.1:0"\n';
    const text = supervisorToml(fx.sink.port, 'processes', '').replace('[log]', `${extra}\n[log]`);
    const config = parseConfig(text, { file: join(fx.dir, 'mtproxy.toml') });
    const sup = new Supervisor(config, { log, stats: new Stats() });
    await sup.start();
    try {
      assert.equal(sup.workerKind, 'processes');
      // One at a time, each answered before the next: every hand-out has been acknowledged by then, so
      // the turn order alone decides (under concurrent load the split is even on average only).
      const sessions: ClientSession[] = [];
      for (let i = 0; i < 40; i++) {
        const [s] = await openMany(sup.address('main').port, 1);
        assert.ok(await roundTrip(s));
        sessions.push(s);
      }
      const perWorker = (await sup.workerStats()).map((w) => w.connectionsTotal);
      assert.equal(perWorker[0] + perWorker[1], 40);
      assert.equal(sup.sessionCount(), 40, 'status counts the sessions of both workers');
      for (const n of perWorker) assert.ok(n >= 16 && n <= 24, `even spread: ${perWorker}`);
      const metrics = sup.operations.metricsAddress();
      assert.ok(metrics);
      const body = await (await fetch(`http://127.0.0.1:${metrics.port}/metrics`)).text();
      const total = /^mtproxy_connections_total\{listener="main"\} (\d+)$/m.exec(body);
      assert.equal(Number(total?.[1]), 40, 'the scrape sums both workers');
      const active = /^mtproxy_connections_active\{listener="main"\} (\d+)$/m.exec(body);
      assert.equal(Number(active?.[1]), 40);
      const usage = await sup.usage();
      assert.ok(usage.cpuUserUs > process.cpuUsage().user, 'usage counts the worker processes too');
      for (const s of sessions) s.socket.destroy();
    } finally {
      await sup.stop(0);
    }
  });

  it('a worker at its listener cap closes the extra connection instead of passing it round', async () => {
    const text = supervisorToml(fx.sink.port, 'processes', '').replace(
      'secret = ',
      'max_connections = 2\nsecret = ',
    );
    const sup = new Supervisor(parseConfig(text, { file: join(fx.dir, 'mtproxy.toml') }), {
      log,
      stats: new Stats(),
    });
    await sup.start();
    try {
      const port = sup.address('main').port;
      const served: ClientSession[] = [];
      const refused: ClientSession[] = [];
      for (let i = 0; i < 6; i++) {
        const [s] = await openMany(port, 1);
        if (await roundTrip(s)) served.push(s);
        else refused.push(s);
      }
      // The cap is per worker, as with threads: 2 each.
      assert.equal(served.length, 4);
      await until('the extra connections closed', () => refused.every((s) => s.socket.destroyed));
      assert.deepEqual(
        (await sup.workerStats()).map((w) => w.connectionsActive),
        [2, 2],
      );
      for (const s of served) s.socket.destroy();
    } finally {
      await sup.stop(0);
    }
  });
});
