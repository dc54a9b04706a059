/**
 * Counters never leak: connections that end at every stage (bad handshake, policy refusal, upstream connect
 * failure, client gone mid-relay, DC gone mid-relay) leave every policy counter at zero, through the real
 * proxy server and client session.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import { parseConfig } from '../../src/config/load.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { LocalCounterStore } from '../../src/policy/counters.ts';
import { ProxyServer } from '../../src/server/proxy.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { freePort } from '../helpers/ports.ts';
import { TEST_SECRET_HEX } from '../helpers/proxy.ts';

const state = mkdtempSync(join(tmpdir(), 'mtproxy-noleak-'));
const counters = new LocalCounterStore();
const stats = new Stats();
let dc: FakeDc;
let proxy: ProxyServer;
let port = 0;

before(async () => {
  dc = await FakeDc.start();
  const dead = await freePort();
  const toml = `
state_dir = "${state}"
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"

[[policies]]
rule = "max_connections"
keys = ["listener", "client_ipv4"]
limit = 3
[[policies]]
rule = "max_connections"
keys = ["client_ipv4/24"]
limit = 50
[[policies]]
rule = "not_in_table"
key = "client_ipv4"
table = "blocked"

[upstream]
mode = "direct"
connect_timeout = "2s"
connect_retries = 0
[upstream.dc]
2 = ["${dc.address}"]
-2 = ["${dc.address}"]
4 = ["127.0.0.1:${dead}"]
`;
  const log = logger.child({ test: 'no-leak' });
  log.level = process.env.MTP_TEST_LOG ?? 'silent';
  proxy = new ProxyServer(parseConfig(toml), { stats, log, policyCounters: counters });
  await proxy.start();
  port = proxy.address('main').port;
});

after(async () => {
  await proxy.stop(0);
  await dc.stop();
  rmSync(state, { recursive: true, force: true });
});

function engine() {
  const ops = proxy.operations;
  assert.ok(ops);
  return ops.policy;
}

/** Resolves once nothing is admitted any more (sessions end asynchronously after the sockets close). */
async function settled(): Promise<void> {
  for (let i = 0; i < 400 && (engine().outstanding !== 0 || counters.size !== 0); i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(engine().outstanding, 0, 'every admission released');
  assert.equal(counters.size, 0, 'every counter back to zero');
}

async function echo(dcId = 2) {
  const c = await connectObfuscated({ host: '127.0.0.1', port, secret: TEST_SECRET_HEX, dcId });
  c.sendFrame(Buffer.alloc(32, 7));
  const frame = await c.nextFrame();
  assert.equal(frame.payload.length, 32);
  return c;
}

test('a normal session takes counters and gives them back on close', async () => {
  const c = await echo();
  assert.equal(engine().outstanding, 1);
  assert.equal(counters.get('listener,client_ipv4=main,127.0.0.1'), 1);
  c.close();
  await c.closed;
  await settled();
});

test('bad handshakes are never admitted', async () => {
  const sockets = await Promise.all(
    [1, 2, 3].map(
      () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => {
            s.write(randomBytes(64));
            resolve(s);
          });
          s.on('error', () => {});
        }),
    ),
  );
  // Wrong secret: a valid-looking header the proxy cannot decrypt.
  const wrong = await connectObfuscated({
    host: '127.0.0.1',
    port,
    secret: 'ffeeddccbbaa99887766554433221100',
  });
  await new Promise((r) => setTimeout(r, 50));
  for (const s of sockets) s.destroy();
  wrong.close();
  await settled();
});

test('policy refusals release what earlier rules took', async () => {
  const open = [await echo(), await echo(), await echo()];
  assert.equal(counters.get('client_ipv4/24=127.0.0.0/24'), 3);
  const refused = await connectObfuscated({ host: '127.0.0.1', port, secret: TEST_SECRET_HEX });
  refused.sendFrame(Buffer.alloc(8));
  await refused.closed;
  assert.equal(counters.get('client_ipv4/24=127.0.0.0/24'), 3, 'the refused client holds no subnet slot');
  assert.ok((stats.listener('main').policyRejections.get('max_connections(listener,client_ipv4)') ?? 0) >= 1);
  for (const c of open) c.close();
  await settled();

  // A table rule refusing after both counters were taken.
  proxy.operations!.tables().add('blocked', '127.0.0.1');
  const blocked = await connectObfuscated({ host: '127.0.0.1', port, secret: TEST_SECRET_HEX });
  blocked.sendFrame(Buffer.alloc(8));
  await blocked.closed;
  proxy.operations!.tables().remove('blocked', '127.0.0.1');
  await settled();
});

test('upstream connect failure releases the admission', async () => {
  const before = stats.dc(4).connectErrors;
  const c = await connectObfuscated({ host: '127.0.0.1', port, secret: TEST_SECRET_HEX, dcId: 4 });
  c.sendFrame(Buffer.alloc(16));
  await c.closed;
  assert.ok(stats.dc(4).connectErrors > before, 'the session got as far as the upstream');
  await settled();
});

test('client gone mid-relay, and DC gone mid-relay', async () => {
  const a = await echo();
  const b = await echo();
  a.socket.destroy();
  // The DC drops b's upstream connection.
  for (const conn of dc.connections) conn.socket.destroy();
  await b.closed;
  await settled();
});

test('many parallel sessions ending every way balance out', async () => {
  const runs = Array.from({ length: 12 }, async (_, i) => {
    try {
      const c = await connectObfuscated({
        host: '127.0.0.1',
        port,
        secret: TEST_SECRET_HEX,
        dcId: i % 4 === 0 ? 4 : 2,
      });
      c.sendFrame(Buffer.alloc(24));
      await c.nextFrame(5000).catch(() => null);
      if (i % 2) c.close();
      else c.end();
      await c.closed;
    } catch {
      // Refused or failed: what matters is the counters.
    }
  });
  await Promise.all(runs);
  await settled();
});
