/** Policy tables edited at run time survive a restart of the proxy (SQLite in the state folder). */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AdminClient } from '../../src/admin/client.ts';
import { parseConfig } from '../../src/config/load.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { TABLES_DB_FILE } from '../../src/policy/tables.ts';
import { ProxyServer } from '../../src/server/proxy.ts';
import { TEST_SECRET_HEX } from '../helpers/proxy.ts';

const dir = mkdtempSync(join(tmpdir(), 'mtproxy-persist-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const log = logger.child({ test: 'persistence' });
log.level = 'silent';

const config = () =>
  parseConfig(`
state_dir = ${JSON.stringify(join(dir, 'state'))}
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"
[[policies]]
rule = "in_table"
key = "tls_domain"
table = "customers"
[admin]
listen = "127.0.0.1:0"
token = "persist-token"
[log]
level = "silent"
`);

async function withProxy<T>(fn: (proxy: ProxyServer, admin: AdminClient) => Promise<T>): Promise<T> {
  const proxy = new ProxyServer(config(), { log, stats: new Stats() });
  await proxy.start();
  try {
    const admin = new AdminClient(
      `http://127.0.0.1:${proxy.operations!.adminAddress()!.port}`,
      'persist-token',
    );
    return await fn(proxy, admin);
  } finally {
    await proxy.stop(0);
  }
}

test('values added through the admin API are there after a restart', async () => {
  await withProxy(async (_proxy, admin) => {
    await admin.call('POST', '/tables/customers', { value: 'Alice.Example' });
    await admin.call('POST', '/tables/customers', { value: 'bob.example' });
    await admin.call('DELETE', '/tables/customers/bob.example');
  });
  assert.ok(existsSync(join(dir, 'state', TABLES_DB_FILE)));
  await withProxy(async (proxy, admin) => {
    const table = await admin.call<{ values: string[] }>('GET', '/tables/customers');
    assert.deepEqual(table.values, ['alice.example']);
    const gate = proxy.operations!.policy;
    assert.equal(
      gate.admit({ listener: 'main', remoteAddress: '1.2.3.4', tlsDomain: 'alice.example' }).ok,
      true,
    );
    assert.equal(
      gate.admit({ listener: 'main', remoteAddress: '1.2.3.4', tlsDomain: 'bob.example' }).ok,
      false,
    );
  });
});
