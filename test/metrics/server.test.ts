import assert from 'node:assert/strict';
import { test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { createMetricsRegistry, singleSource } from '../../src/metrics/registry.ts';
import { isAllowed, MetricsServer } from '../../src/metrics/server.ts';
import { compileAllowList } from '../../src/runtime/allow-list.ts';
import { Stats } from '../../src/metrics/stats.ts';

async function withServer(allow: string[], fn: (base: string, server: MetricsServer) => Promise<void>) {
  const stats = new Stats();
  stats.listener('main').connectionsTotal = 3;
  const registry = createMetricsRegistry({ sources: singleSource(stats), defaultMetrics: false });
  const server = new MetricsServer({ registry, allow });
  await server.start({ host: '127.0.0.1', port: 0 });
  try {
    await fn(`http://127.0.0.1:${server.address().port}`, server);
  } finally {
    await server.stop();
    registry.close();
  }
}

test('serves /metrics to allowed peers', async () => {
  await withServer(['127.0.0.0/8'], async (base) => {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const families = parsePrometheusTextFormat(await res.text());
    const total = families.find((f) => f.name === 'mtproxy_connections_total');
    assert.equal(total?.metrics[0]?.value, '3');
    assert.equal((await fetch(`${base}/other`)).status, 404);
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  });
});

test('refuses peers outside the allow list, and the list can change at run time', async () => {
  await withServer(['10.0.0.0/8', '192.0.2.1'], async (base, server) => {
    assert.equal((await fetch(`${base}/metrics`)).status, 403);
    server.setAllow(['127.0.0.1']);
    assert.equal((await fetch(`${base}/metrics`)).status, 200);
  });
});

test('allow list parsing and matching', () => {
  assert.equal(compileAllowList([]), null);
  assert.equal(isAllowed(null, '203.0.113.1'), true);
  const list = compileAllowList(['127.0.0.0/8', '2001:db8::/32', '192.0.2.7']);
  assert.equal(isAllowed(list, '127.1.2.3'), true);
  assert.equal(isAllowed(list, '::ffff:127.0.0.1'), true, 'dual-stack peers match IPv4 rules');
  assert.equal(isAllowed(list, '2001:db8::5'), true);
  assert.equal(isAllowed(list, '192.0.2.7'), true);
  assert.equal(isAllowed(list, '192.0.2.8'), false);
  assert.equal(isAllowed(list, '::1'), false);
  assert.equal(isAllowed(list, undefined), false);
  for (const bad of ['10', 'example.com', '10.0.0.0/33', '']) {
    assert.throws(() => compileAllowList([bad]), RangeError, bad);
  }
});
