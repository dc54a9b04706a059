import assert from 'node:assert/strict';
import { test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { createMetricsRegistry } from '../../src/metrics/registry.ts';
import { Stats } from '../../src/metrics/stats.ts';

type Families = ReturnType<typeof parsePrometheusTextFormat>;

function sample(families: Families, name: string, labels: Record<string, string>): number | undefined {
  const family = families.find((f) => f.name === name);
  const m = family?.metrics.find((x) =>
    Object.entries(labels).every(([k, v]) => (x as { labels?: Record<string, string> }).labels?.[k] === v),
  );
  return m && 'value' in m ? Number(m.value) : undefined;
}

function workerStats(): Stats[] {
  const a = new Stats();
  const b = new Stats();
  a.userBytesUp.set('alice', 100).set('bob', 10).set('carol', 1);
  b.userBytesUp.set('alice', 50);
  a.userBytesDown.set('alice', 1000).set('bob', 20).set('carol', 2);
  a.userSessionsActive.set('alice', 2).set('bob', 1);
  b.userSessionsActive.set('alice', 1);
  a.userRefusals.set('bob\tmax_ips', 3).set('carol\tquota', 1);
  return [a, b];
}

test('per-user series add up over workers; the label is capped, the rest summed as _other', async () => {
  let limit = 2;
  const sources = workerStats();
  const metrics = createMetricsRegistry({
    sources: () => sources,
    userLabels: () => limit,
    defaultMetrics: false,
  });
  let f = parsePrometheusTextFormat(await metrics.scrape());
  assert.equal(sample(f, 'mtproxy_user_received_bytes_total', { user: 'alice' }), 150);
  assert.equal(sample(f, 'mtproxy_user_sent_bytes_total', { user: 'alice' }), 1000);
  assert.equal(sample(f, 'mtproxy_user_sessions_active', { user: 'alice' }), 3);
  assert.equal(sample(f, 'mtproxy_user_refusals_total', { user: 'bob', reason: 'max_ips' }), 3);
  assert.equal(sample(f, 'mtproxy_user_received_bytes_total', { user: 'carol' }), undefined);
  assert.equal(sample(f, 'mtproxy_user_received_bytes_total', { user: '_other' }), 1);
  assert.equal(sample(f, 'mtproxy_user_refusals_total', { user: '_other', reason: 'quota' }), 1);
  limit = 0;
  f = parsePrometheusTextFormat(await metrics.scrape());
  assert.equal(sample(f, 'mtproxy_user_received_bytes_total', { user: 'alice' }), undefined);
  metrics.close();
});
