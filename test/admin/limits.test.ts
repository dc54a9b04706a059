/**
 * The admin API bounds slow and idle clients: a request trickled in slowly gets 408 and its connection is
 * closed, idle connections are closed, connections past max_connections are refused, and a request whose
 * answer takes long is not cut by the idle bound. Small bounds, and the tests wait for the close.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { type AdminLimits, AdminServer } from '../../src/admin/server.ts';
import { parseConfig } from '../../src/config/load.ts';
import { PolicyTables } from '../../src/policy/tables.ts';

const TOKEN = 'limits-token-0123456789';
const tables = new PolicyTables(null);
const servers: AdminServer[] = [];
const sockets: net.Socket[] = [];

after(async () => {
  for (const s of sockets) s.destroy();
  for (const a of servers) await a.stop();
  tables.close();
});

async function startAdmin(limits: Partial<AdminLimits>, reloadDelay = 0): Promise<number> {
  const admin = new AdminServer({
    token: TOKEN,
    limits,
    hooks: {
      status: () => ({}),
      links: () => ({}),
      reload: () => new Promise((resolve) => setTimeout(() => resolve({ ok: true }), reloadDelay)),
      tables,
      tableKey: () => null,
      referencedTables: () => [],
    },
  });
  await admin.start({ host: '127.0.0.1', port: 0 });
  servers.push(admin);
  return admin.address().port;
}

interface Conn {
  socket: net.Socket;
  received: () => string;
  closed: Promise<void>;
}

async function open(port: number): Promise<Conn> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (text += d));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => text, closed };
}

const request = (method: string, path: string, extra = '') =>
  `${method} ${path} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer ${TOKEN}\r\n${extra}\r\n`;

describe('admin API limits', () => {
  it('a body trickled in slowly gets 408 and the connection is closed', async () => {
    const port = await startAdmin({ bodyTimeoutMs: 300 });
    const c = await open(port);
    const body = JSON.stringify({ value: '192.0.2.1' }).padEnd(200, ' ');
    c.socket.write(
      request(
        'POST',
        '/tables/blocked',
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n`,
      ),
    );
    let sent = 0;
    let done = false;
    void c.closed.then(() => (done = true));
    // One byte every 50 ms would take 10 s; the server must not wait for it.
    while (!done && sent < body.length) {
      c.socket.write(body[sent++]);
      await new Promise((r) => setTimeout(r, 50));
    }
    await c.closed;
    assert.ok(sent < body.length, 'closed before the body was complete');
    assert.match(c.received(), /^HTTP\/1\.1 408 /);
    assert.equal(tables.size('blocked'), 0);
  });

  it('idle connections are closed, before and after a request', async () => {
    const port = await startAdmin({ idleTimeoutMs: 200 });
    const idle = await Promise.all(Array.from({ length: 20 }, () => open(port)));
    const used = await open(port);
    used.socket.write(request('GET', '/health'));
    await Promise.all([...idle, used].map((c) => c.closed));
    assert.match(used.received(), /^HTTP\/1\.1 200 /);
    for (const c of idle) assert.equal(c.received(), '');
  });

  it('a request whose answer takes longer than the idle bound still gets it', async () => {
    const port = await startAdmin({ idleTimeoutMs: 100 }, 600);
    const c = await open(port);
    c.socket.write(request('POST', '/reload', 'Content-Length: 0\r\n'));
    await c.closed;
    assert.match(c.received(), /^HTTP\/1\.1 200 [\s\S]*"ok": true/);
  });

  it('connections past max_connections are closed as they arrive; the others keep working', async () => {
    const port = await startAdmin({ maxConnections: 3, idleTimeoutMs: 60_000 });
    const kept = [];
    for (let i = 0; i < 3; i++) {
      const c = await open(port);
      // An answered request: the server has surely accepted this connection.
      c.socket.write(request('GET', '/health'));
      while (!c.received().includes('"status"')) await new Promise((r) => setTimeout(r, 10));
      kept.push(c);
    }
    const extra = await Promise.all(Array.from({ length: 5 }, () => open(port)));
    for (const c of extra) c.socket.write(request('GET', '/health'));
    await Promise.all(extra.map((c) => c.closed));
    for (const c of extra) assert.equal(c.received(), '');
    const before = kept[0].received().length;
    kept[0].socket.write(request('GET', '/health'));
    while (kept[0].received().length === before) await new Promise((r) => setTimeout(r, 10));
    assert.match(kept[0].received().slice(before), /^HTTP\/1\.1 200 /);
  });

  it('[admin] takes the bounds, with defaults', () => {
    const base = '[[listeners]]\nsecret = "0123456789abcdef0123456789abcdef"\n';
    const defaults = parseConfig(`${base}[admin]\nlisten = "127.0.0.1:9101"\ntoken = "t"\n`).admin;
    assert.equal(defaults.bodyTimeoutMs, 10_000);
    assert.equal(defaults.idleTimeoutMs, 30_000);
    assert.equal(defaults.maxConnections, 32);
    const set = parseConfig(
      `${base}[admin]\nlisten = "127.0.0.1:9101"\ntoken = "t"\nbody_timeout = "2s"\nidle_timeout = "500ms"\nmax_connections = 4\n`,
    ).admin;
    assert.deepEqual([set.bodyTimeoutMs, set.idleTimeoutMs, set.maxConnections], [2000, 500, 4]);
    assert.throws(() => parseConfig(`${base}[admin]\nmax_connections = 0\n`), /admin\.max_connections/);
  });
});
