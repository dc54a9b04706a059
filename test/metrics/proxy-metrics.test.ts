/** /metrics of a running proxy after known traffic, parsed with a Prometheus text-format parser. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import { parseConfig } from '../../src/config/load.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { ProxyServer } from '../../src/server/proxy.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { TEST_SECRET_HEX } from '../helpers/proxy.ts';

let dc: FakeDc;
let proxy: ProxyServer;

before(async () => {
  dc = await FakeDc.start();
  const log = logger.child({ test: 'metrics' });
  log.level = 'silent';
  const config = parseConfig(`
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"

[[policies]]
rule = "max_connections"
keys = ["client_ipv4"]
limit = 1

[metrics]
listen = "127.0.0.1:0"
allow = ["127.0.0.0/8"]

[upstream]
mode = "direct"
[upstream.dc]
2 = ["${dc.address}"]
`);
  proxy = new ProxyServer(config, { log, stats: new Stats() });
  await proxy.start();
});

after(async () => {
  await proxy.stop(0);
  await dc.stop();
});

type Families = ReturnType<typeof parsePrometheusTextFormat>;
function value(families: Families, name: string, labels: Record<string, string> = {}): number {
  const family = families.find((f) => f.name === name);
  assert.ok(family, `missing ${name}`);
  return family.metrics
    .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((sum, m) => sum + Number(m.value ?? 0), 0);
}

test('series after known traffic', async () => {
  const port = proxy.address('main').port;
  const client = await connectObfuscated({ host: '127.0.0.1', port, secret: TEST_SECRET_HEX, dcId: 2 });
  client.sendFrame(Buffer.alloc(100, 1));
  assert.equal((await client.nextFrame()).payload.length, 100);

  // Over the per-address limit while the first session is open.
  const refused = await connectObfuscated({ host: '127.0.0.1', port, secret: TEST_SECRET_HEX, dcId: 2 });
  refused.sendFrame(Buffer.alloc(8));
  await refused.closed;

  // Garbage instead of a handshake.
  const garbage = net.connect(port, '127.0.0.1');
  garbage.on('error', () => {});
  garbage.write(randomBytes(64));
  await new Promise((r) => garbage.once('close', r));

  const metricsAt = proxy.operations!.metricsAddress();
  assert.ok(metricsAt);
  const res = await fetch(`http://127.0.0.1:${metricsAt.port}/metrics`);
  assert.equal(res.status, 200);
  const families = parsePrometheusTextFormat(await res.text());

  assert.equal(value(families, 'mtproxy_connections_total', { listener: 'main' }), 3);
  assert.equal(value(families, 'mtproxy_sessions_active', { listener: 'main', protocol: 'intermediate' }), 1);
  assert.equal(value(families, 'mtproxy_sessions_total', { listener: 'main' }), 1);
  assert.ok(value(families, 'mtproxy_client_received_bytes_total', { listener: 'main' }) >= 64 + 104);
  assert.ok(value(families, 'mtproxy_client_sent_bytes_total', { listener: 'main' }) >= 104);
  assert.equal(
    value(families, 'mtproxy_policy_rejections_total', { rule: 'max_connections(client_ipv4)' }),
    1,
  );
  assert.ok(value(families, 'mtproxy_handshake_failures_total', { listener: 'main' }) >= 1);
  assert.equal(value(families, 'mtproxy_upstream_connects_total', { dc: '2' }), 1);
  assert.ok(value(families, 'mtproxy_upstream_sent_bytes_total', { dc: '2' }) >= 100);
  assert.equal(value(families, 'mtproxy_policy_admissions_active'), 1);
  assert.ok(value(families, 'mtproxy_memory_bytes', { kind: 'rss' }) > 0);
  assert.ok(families.some((f) => f.name === 'mtproxy_event_loop_lag_seconds'));

  client.close();
  await client.closed;
});
