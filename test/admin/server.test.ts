import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { AdminClient } from '../../src/admin/client.ts';
import { AdminServer, type ReloadOutcome } from '../../src/admin/server.ts';
import type { PolicyRule } from '../../src/config/types.ts';
import { PolicyEngine } from '../../src/policy/engine.ts';
import { PolicyTables } from '../../src/policy/tables.ts';
import { raw as rawRequest } from '../helpers/raw-http.ts';

const TOKEN = 'test-token-0123456789';
const rules: PolicyRule[] = [
  {
    rule: 'not_in_table',
    key: { kind: 'client_ipv4' },
    table: 'blocked',
    raw: 'not_in_table(client_ipv4,blocked)',
  },
  { rule: 'in_table', key: { kind: 'client_ipv4_subnet', bits: 24 }, table: 'nets', raw: 'nets' },
];
const tables = new PolicyTables(null);
const engine = new PolicyEngine({ rules, tables });
let nextReload: ReloadOutcome = { ok: true };
let reloads = 0;
let refreshes = 0;
let tableEdits = 0;
const admin = new AdminServer({
  token: TOKEN,
  // The proxy has been up for an hour; this admin server was started (or moved by a reload) just now.
  startedAt: Date.now() - 3_600_000,
  hooks: {
    status: () => ({ version: '0.0.0-test', sessions: { main: 0 } }),
    links: () => ({ listeners: [{ name: 'main', links: ['tg://proxy?server=127.0.0.1&port=1&secret=00'] }] }),
    reload: async () => {
      reloads++;
      return nextReload;
    },
    tables,
    refresh: async () => {
      refreshes++;
    },
    tablesChanged: async () => {
      tableEdits++;
    },
    tableKey: (name) => engine.tableKey(name),
    referencedTables: () => engine.referencedTables(),
  },
});
let base = '';
let client: AdminClient;

before(async () => {
  await admin.start({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${admin.address().port}`;
  client = new AdminClient(base, TOKEN);
});
after(async () => {
  await admin.stop();
  tables.close();
});

/** Raw request so the test controls every header (fetch would add its own). */
function raw(method: string, path: string, headers: Record<string, string> = {}, body?: string) {
  return rawRequest(base, method, path, headers, body);
}

test('every path answers 401 without the right token, before routing', async () => {
  const attempts: Array<[string, string]> = [
    ['GET', '/health'],
    ['GET', '/status'],
    ['GET', '/links'],
    ['GET', '/tables'],
    ['GET', '/tables/blocked'],
    ['POST', '/tables/blocked'],
    ['DELETE', '/tables/blocked/1.2.3.4'],
    ['POST', '/reload'],
    ['GET', '/no-such-path'],
    ['PATCH', '/'],
    ['GET', '/tables/bad%zzname'],
  ];
  const wrongHeaders: Array<Record<string, string>> = [
    {},
    { authorization: `Bearer ${TOKEN}x` },
    { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` },
    { authorization: TOKEN },
    { authorization: 'Bearer' },
  ];
  for (const [method, path] of attempts) {
    for (const headers of wrongHeaders) {
      const res = await raw(method, path, headers, method === 'POST' ? '{"value":"1.2.3.4"}' : undefined);
      assert.equal(res.status, 401, `${method} ${path} ${JSON.stringify(headers)}`);
      assert.match(res.headers['www-authenticate'] ?? '', /^Bearer/);
      assert.deepEqual(JSON.parse(res.body), { error: 'missing or wrong bearer token' });
    }
  }
  assert.equal(reloads, 0, 'nothing ran');
  assert.equal(refreshes + tableEdits, 0, 'no hook ran');
  assert.equal(tables.size('blocked'), 0, 'nothing was written');
});

test('health, status, links', async () => {
  const health = await client.call<{ status: string; uptimeSeconds: number }>('GET', '/health');
  assert.equal(health.status, 'ok');
  assert.ok(
    health.uptimeSeconds >= 3600,
    `the proxy's uptime, not the admin server's: ${health.uptimeSeconds}`,
  );
  assert.equal((await client.call<{ version: string }>('GET', '/status')).version, '0.0.0-test');
  assert.ok(refreshes >= 1, 'status refreshes worker stats first');
  const links = await client.call<{ listeners: Array<{ name: string }> }>('GET', '/links');
  assert.equal(links.listeners[0].name, 'main');
  const res = await raw('GET', '/status', { authorization: `bearer ${TOKEN}` });
  assert.equal(res.status, 200, 'the scheme is case-insensitive');
  assert.match(res.headers['content-type'] ?? '', /^application\/json/);
});

test('tables: list, add, get, delete with canonical values and clear errors', async () => {
  let listed = await client.call<{ tables: Array<{ name: string; key: string | null; size: number }> }>(
    'GET',
    '/tables',
  );
  assert.deepEqual(listed.tables, [
    { name: 'blocked', key: 'client_ipv4', size: 0 },
    { name: 'nets', key: 'client_ipv4/24', size: 0 },
  ]);

  let res = await client.request('POST', '/tables/blocked', { value: '::ffff:203.0.113.9' });
  assert.equal(res.status, 201);
  assert.deepEqual(res.body, { table: 'blocked', value: '203.0.113.9', added: true });
  res = await client.request('POST', '/tables/blocked', { value: '203.0.113.9' });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { table: 'blocked', value: '203.0.113.9', added: false });
  assert.equal(engine.admit({ listener: 'main', remoteAddress: '203.0.113.9', tlsDomain: null }).ok, false);

  res = await client.request('POST', '/tables/nets', { value: '10.1.2.3' });
  assert.equal(res.status, 201);
  assert.deepEqual(res.body, { table: 'nets', value: '10.1.2.0/24', added: true });

  res = await client.request('POST', '/tables/blocked', { value: '2001:db8::1' });
  assert.equal(res.status, 400);
  assert.match(String((res.body as { error: string }).error), /IPv4/);
  res = await client.request('POST', '/tables/blocked', { nope: 1 });
  assert.equal(res.status, 400);
  const bad = await raw('POST', '/tables/blocked', { authorization: `Bearer ${TOKEN}` }, '{not json');
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.body).error, /JSON/);
  res = await client.request('POST', '/tables/bad name', { value: 'x' });
  assert.equal(res.status, 400);

  // Unreferenced tables take any well-formed value.
  res = await client.request('POST', '/tables/free', { value: 'Example.COM' });
  assert.deepEqual(res.body, { table: 'free', value: 'example.com', added: true });

  const table = await client.call<{ name: string; key: string; values: string[] }>('GET', '/tables/blocked');
  assert.deepEqual(table, { name: 'blocked', key: 'client_ipv4', size: 1, values: ['203.0.113.9'] });
  assert.equal((await client.request('GET', '/tables/unknown')).status, 404);

  listed = await client.call('GET', '/tables');
  assert.deepEqual(
    listed.tables.map((t) => [t.name, t.size]),
    [
      ['blocked', 1],
      ['free', 1],
      ['nets', 1],
    ],
  );

  // Delete by path (a subnet may come unencoded or encoded) and by JSON body.
  res = await client.request('DELETE', '/tables/nets/10.1.2.0/24');
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { table: 'nets', value: '10.1.2.0/24', removed: true });
  res = await client.request('DELETE', `/tables/blocked/${encodeURIComponent('203.0.113.9')}`);
  assert.equal(res.status, 200);
  res = await client.request('DELETE', '/tables/blocked/203.0.113.9');
  assert.equal(res.status, 404);
  assert.match(String((res.body as { error: string }).error), /not in table/);
  res = await client.request('DELETE', '/tables/free', { value: 'example.com' });
  assert.equal(res.status, 200);
  // Not blocked any more, but not in the (now empty) "nets" whitelist either.
  assert.equal(engine.admit({ listener: 'main', remoteAddress: '203.0.113.9', tlsDomain: null }).ok, false);
  assert.equal(tables.size('blocked'), 0);
  assert.equal(tableEdits, 6, 'every successful add/remove is announced, no-ops are not');
});

test('reload reports success and refusal', async () => {
  nextReload = { ok: true };
  assert.deepEqual(await client.call('POST', '/reload'), { ok: true });
  nextReload = { ok: false, error: 'listeners[0].port: expected an integer 1..65535' };
  const res = await client.request('POST', '/reload');
  assert.equal(res.status, 422);
  assert.deepEqual(res.body, { ok: false, error: 'listeners[0].port: expected an integer 1..65535' });
  assert.equal(reloads, 2);
});

test('a malformed request target is a 400, not an internal error', async () => {
  const { port } = admin.address();
  for (const target of ['http://[/', 'http://admin:99999/status']) {
    // Written by hand: an HTTP client library would not send such a target.
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () =>
        socket.write(
          `GET ${target} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`,
        ),
      );
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk) => {
        text += chunk;
      });
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 400 /, target);
    assert.match(answer, /malformed request target/);
  }
});

test('an oversized body is answered 413 (not a reset) and the server goes on', async () => {
  const huge = JSON.stringify({ value: 'x'.repeat(1_000_000) });
  const res = await raw('POST', '/tables/blocked', { authorization: `Bearer ${TOKEN}` }, huge);
  assert.equal(res.status, 413);
  assert.equal(res.headers.connection, 'close');
  assert.match(JSON.parse(res.body).error, /request body over \d+ bytes/);
  assert.equal((await client.request('GET', '/tables/blocked')).status, 200);
});

test('unknown paths 404 and wrong methods 405 once authenticated', async () => {
  assert.equal((await client.request('GET', '/nope')).status, 404);
  assert.equal((await client.request('GET', '/tables/a/b/c')).status, 405);
  const res = await client.request('GET', '/reload');
  assert.equal(res.status, 405);
  assert.equal((await client.request('POST', '/health')).status, 405);
  assert.equal((await client.request('DELETE', '/tables')).status, 405);
});

test('token can be rotated', async () => {
  admin.setToken('rotated-token-abcdef');
  assert.equal((await client.request('GET', '/health')).status, 401);
  const rotated = new AdminClient(base, 'rotated-token-abcdef');
  assert.equal((await rotated.request('GET', '/health')).status, 200);
  admin.setToken(TOKEN);
});
