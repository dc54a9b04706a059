/**
 * With worker threads, the admin API and /metrics run in the main thread over every worker's numbers, and a
 * table edit reaches every worker at once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { AdminClient } from '../../src/admin/client.ts';
import type { ProxyStatus } from '../../src/admin/status.ts';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import { parseConfig } from '../../src/config/load.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { reusePortSupported, Supervisor } from '../../src/workers/supervisor.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { TEST_SECRET_HEX } from '../helpers/proxy.ts';

const TOKEN = 'workers-admin-token';
const dir = mkdtempSync(join(tmpdir(), 'mtproxy-workers-admin-'));
let dc: FakeDc;
let sup: Supervisor;
let admin: AdminClient;
const log = logger.child({ test: 'workers-admin' });
log.level = 'silent';

before(async () => {
  dc = await FakeDc.start();
  const config = parseConfig(`
state_dir = ${JSON.stringify(join(dir, 'state'))}
workers = 2
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"

[[policies]]
rule = "not_in_table"
key = "client_ipv4"
table = "blocked"

[admin]
listen = "127.0.0.1:0"
token = "${TOKEN}"

[metrics]
listen = "127.0.0.1:0"

[log]
level = "silent"

[upstream]
mode = "direct"
[upstream.dc]
2 = ["${dc.address}"]
`);
  sup = new Supervisor(config, { log, stats: new Stats() });
  await sup.start();
  admin = new AdminClient(`http://127.0.0.1:${sup.operations.adminAddress()!.port}`, TOKEN);
});

after(async () => {
  await sup.stop(0);
  await dc.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function works(): Promise<boolean> {
  try {
    const c = await connectObfuscated({
      host: '127.0.0.1',
      port: sup.address('main').port,
      secret: TEST_SECRET_HEX,
    });
    c.sendFrame(Buffer.alloc(32));
    await c.nextFrame(5000);
    c.close();
    await c.closed;
    return true;
  } catch {
    return false;
  }
}

test('status and metrics sum the workers; table edits reach every worker', async (t) => {
  if (!(await reusePortSupported())) t.skip('no SO_REUSEPORT here');
  for (let i = 0; i < 6; i++) assert.equal(await works(), true);

  const status = await admin.call<ProxyStatus>('GET', '/status');
  assert.equal(status.listeners[0].connectionsTotal, 6);
  assert.equal(status.listeners[0].port, sup.address('main').port);

  const res = await fetch(`http://127.0.0.1:${sup.operations.metricsAddress()!.port}/metrics`);
  const families = parsePrometheusTextFormat(await res.text());
  const total = families.find((f) => f.name === 'mtproxy_connections_total');
  assert.equal(total?.metrics.find((m) => m.labels?.listener === 'main')?.value, '6');

  await admin.call('POST', '/tables/blocked', { value: '127.0.0.1' });
  // Connections land on either worker: every one of them must refuse now.
  const refused = await Promise.all(Array.from({ length: 6 }, () => works()));
  assert.deepEqual(refused, [false, false, false, false, false, false]);
  await admin.call('DELETE', '/tables/blocked/127.0.0.1');
  for (let i = 0; i < 4; i++) assert.equal(await works(), true);
});
