import assert from 'node:assert/strict';
import { test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { createMetricsRegistry, singleSource } from '../../src/metrics/registry.ts';
import { Stats } from '../../src/metrics/stats.ts';

type Families = ReturnType<typeof parsePrometheusTextFormat>;

function sample(families: Families, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.find((f) => f.name === name);
  assert.ok(family, `missing family ${name}`);
  const hit = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return hit?.value === undefined ? undefined : Number(hit.value);
}

function knownTraffic(): Stats {
  const stats = new Stats();
  const main = stats.listener('main');
  main.connectionsTotal = 7;
  main.connectionsActive = 2;
  main.sessionsTotal.padded = 4;
  main.sessionsTotal.tls = 1;
  main.sessionsActive.tls = 1;
  main.bytesFromClient = 1000;
  main.bytesToClient = 5000;
  main.fronted = 3;
  main.frontedBytesFromClient = 517;
  main.frontedBytesToClient = 4096;
  main.frontingCutOff = 1;
  main.replays = 1;
  main.fail('bad_secret');
  main.fail('bad_secret');
  main.reject('max_connections(listener,client_ipv4)');
  stats.listener('side').connectionsTotal = 1;
  const dc2 = stats.dc(2);
  dc2.connects = 5;
  dc2.connectErrors = 1;
  dc2.linksActive = 2;
  dc2.bytesToDc = 900;
  dc2.bytesFromDc = 4900;
  dc2.error('econnreset');
  stats.configFetch('proxy_config', 'ok');
  stats.configFetch('proxy_secret', 'error');
  stats.reloadsTotal = 3;
  stats.reloadFailures = 1;
  stats.lastReloadOk = false;
  stats.lastReloadAt = 1_700_000_000_000;
  return stats;
}

test('scrape output parses and carries the expected series after known traffic', async () => {
  const metrics = createMetricsRegistry({
    sources: singleSource(knownTraffic()),
    gauges: { mtproxy_policy_admissions_active: { help: 'Admitted connections.', read: () => 4 } },
  });
  const families = parsePrometheusTextFormat(await metrics.scrape());
  const types = new Map(families.map((f) => [f.name, f.type]));

  assert.equal(sample(families, 'mtproxy_connections_total', { listener: 'main' }), 7);
  assert.equal(sample(families, 'mtproxy_connections_total', { listener: 'side' }), 1);
  assert.equal(sample(families, 'mtproxy_connections_active', { listener: 'main' }), 2);
  assert.equal(sample(families, 'mtproxy_sessions_total', { listener: 'main', protocol: 'padded' }), 4);
  assert.equal(sample(families, 'mtproxy_sessions_total', { listener: 'main', protocol: 'tls' }), 1);
  assert.equal(sample(families, 'mtproxy_sessions_active', { listener: 'main', protocol: 'tls' }), 1);
  assert.equal(sample(families, 'mtproxy_client_received_bytes_total', { listener: 'main' }), 1000);
  assert.equal(sample(families, 'mtproxy_client_sent_bytes_total', { listener: 'main' }), 5000);
  assert.equal(
    sample(families, 'mtproxy_handshake_failures_total', { listener: 'main', reason: 'bad_secret' }),
    2,
  );
  assert.equal(sample(families, 'mtproxy_replays_total', { listener: 'main' }), 1);
  assert.equal(sample(families, 'mtproxy_fronted_total', { listener: 'main' }), 3);
  assert.equal(
    sample(families, 'mtproxy_fronted_bytes_total', { listener: 'main', direction: 'from_client' }),
    517,
  );
  assert.equal(
    sample(families, 'mtproxy_fronted_bytes_total', { listener: 'main', direction: 'to_client' }),
    4096,
  );
  assert.equal(sample(families, 'mtproxy_fronting_cut_off_total', { listener: 'main' }), 1);
  assert.equal(
    sample(families, 'mtproxy_policy_rejections_total', {
      listener: 'main',
      rule: 'max_connections(listener,client_ipv4)',
    }),
    1,
  );
  assert.equal(sample(families, 'mtproxy_upstream_connects_total', { dc: '2' }), 5);
  assert.equal(sample(families, 'mtproxy_upstream_connect_errors_total', { dc: '2' }), 1);
  assert.equal(sample(families, 'mtproxy_upstream_errors_total', { dc: '2', reason: 'econnreset' }), 1);
  assert.equal(sample(families, 'mtproxy_upstream_connections_active', { dc: '2' }), 2);
  assert.equal(sample(families, 'mtproxy_upstream_sent_bytes_total', { dc: '2' }), 900);
  assert.equal(sample(families, 'mtproxy_upstream_received_bytes_total', { dc: '2' }), 4900);
  assert.equal(
    sample(families, 'mtproxy_telegram_config_fetches_total', { what: 'proxy_config', result: 'ok' }),
    1,
  );
  assert.equal(
    sample(families, 'mtproxy_telegram_config_fetches_total', { what: 'proxy_secret', result: 'error' }),
    1,
  );
  assert.equal(sample(families, 'mtproxy_reloads_total'), 3);
  assert.equal(sample(families, 'mtproxy_reload_failures_total'), 1);
  assert.equal(sample(families, 'mtproxy_last_reload_success'), 0);
  assert.equal(sample(families, 'mtproxy_last_reload_timestamp_seconds'), 1_700_000_000);
  assert.equal(sample(families, 'mtproxy_policy_admissions_active'), 4);
  assert.ok((sample(families, 'mtproxy_memory_bytes', { kind: 'rss' }) ?? 0) > 0);
  assert.ok(types.has('mtproxy_event_loop_lag_seconds'));
  assert.ok(types.has('mtproxy_info'));
  assert.ok(types.has('process_resident_memory_bytes'), 'standard process metrics are included');

  // Naming conventions: counters end in _total, gauges do not.
  for (const [name, type] of types) {
    if (!name.startsWith('mtproxy_')) continue;
    if (type === 'COUNTER') assert.ok(name.endsWith('_total'), name);
    else assert.ok(!name.endsWith('_total'), name);
  }
  metrics.close();
});

test('counters move with the plain stats between scrapes and sum across sources', async () => {
  const a = new Stats();
  const b = new Stats();
  const metrics = createMetricsRegistry({ sources: () => [a, b], defaultMetrics: false });
  a.listener('main').connectionsTotal = 1;
  let families = parsePrometheusTextFormat(await metrics.scrape());
  assert.equal(sample(families, 'mtproxy_connections_total', { listener: 'main' }), 1);
  a.listener('main').connectionsTotal = 5;
  b.listener('main').connectionsTotal = 2;
  b.listener('main').fail('timeout');
  families = parsePrometheusTextFormat(await metrics.scrape());
  assert.equal(sample(families, 'mtproxy_connections_total', { listener: 'main' }), 7);
  assert.equal(
    sample(families, 'mtproxy_handshake_failures_total', { listener: 'main', reason: 'timeout' }),
    1,
  );
  assert.equal(
    families.find((f) => f.name === 'process_resident_memory_bytes'),
    undefined,
  );
  metrics.close();
});

test('handshake failures by stage and client-hello JA4s (bounded) are exported', async () => {
  const stats = new Stats();
  const main = stats.listener('main');
  main.fail('MTP_ERR_TLS_BAD_DIGEST');
  main.fail('MTP_ERR_TLS_BAD_DIGEST');
  main.failAt('tcp');
  for (let i = 0; i < 100; i++)
    main.fingerprint(`t13d1516h2_8daaf6152771_${String(i % 40).padStart(12, '0')}`);
  for (let i = 0; i < 50; i++) main.fingerprint('t13d1516h2_8daaf6152771_d8a2da3f94cd');
  const metrics = createMetricsRegistry({ sources: singleSource(stats), defaultMetrics: false });
  const families = parsePrometheusTextFormat(await metrics.scrape());
  assert.equal(
    sample(families, 'mtproxy_handshake_failure_stages_total', { listener: 'main', stage: 'digest' }),
    2,
  );
  assert.equal(
    sample(families, 'mtproxy_handshake_failure_stages_total', { listener: 'main', stage: 'tcp' }),
    1,
  );
  const hellos = families.find((f) => f.name === 'mtproxy_tls_client_hellos_total');
  assert.ok(hellos);
  assert.ok(hellos.metrics.length <= 17);
  assert.equal(
    sample(families, 'mtproxy_tls_client_hellos_total', {
      listener: 'main',
      ja4: 't13d1516h2_8daaf6152771_d8a2da3f94cd',
    }),
    50,
  );
  assert.equal(
    hellos.metrics.reduce((n, m) => n + Number(m.value), 0),
    150,
  );
  metrics.close();
});

test('middle-mode stalls and direct fallbacks are exposed per DC', async () => {
  const stats = new Stats();
  stats.dc(2).stalledLinks = 3;
  stats.dc(4).middleFallbacks = 5;
  const metrics = createMetricsRegistry({ sources: singleSource(stats), defaultMetrics: false });
  try {
    const families = parsePrometheusTextFormat(await metrics.scrape());
    assert.equal(sample(families, 'mtproxy_middle_links_stalled_total', { dc: '2' }), 3);
    assert.equal(sample(families, 'mtproxy_middle_fallbacks_total', { dc: '4' }), 5);
  } finally {
    metrics.close();
  }
});
