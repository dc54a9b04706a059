/**
 * A front and two backs on loopback in middle mode, the front with the real policy engine and users, as
 * `mtproxy run` has them: clients in every protocol reach the fake middle proxy through a back with the
 * listener's ad tag, a user's own ad tag and connection limit apply, a policy table refuses on the front,
 * the front itself opens no Telegram connection, and when a back is killed mid-session its sessions end
 * and new ones go to the other back, ad tag and all.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated, type ObfuscatedConnection } from '../../../src/client/obfuscated-client.ts';
import { formatCluster } from '../../../src/cluster/status.ts';
import { parseConfig } from '../../../src/config/load.ts';
import { Stats } from '../../../src/metrics/stats.ts';
import type { TransportTag } from '../../../src/protocol/obfuscated2.ts';
import { ProxyServer } from '../../../src/server/proxy.ts';
import { FakeMiddleProxy } from '../../helpers/fake-middle-proxy.ts';
import { type ClusterCerts, clusterCerts, waitFor } from '../../helpers/front-back.ts';
import {
  encryptedPayload,
  middleToml,
  TEST_AD_TAG,
  testLog,
  writeTelegramFiles,
} from '../../helpers/middle-harness.ts';
import { TEST_SECRET_HEX } from '../../helpers/proxy.ts';

const DOMAIN = 'example.com';
const USER_SECRET = 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0';
const USER_TAG = '0123456789abcdef0123456789abcdef';

async function startNode(toml: string): Promise<ProxyServer> {
  const proxy = new ProxyServer(parseConfig(toml), {
    log: testLog(),
    stats: new Stats(),
    operations: false,
    coverProbes: false,
  });
  await proxy.start();
  return proxy;
}

describe('front and backs, middle mode, with users and policies on the front', () => {
  let fake: FakeMiddleProxy;
  let certs: ClusterCerts;
  const dirs: string[] = [];
  let backA: ProxyServer;
  let backB: ProxyServer;
  let front: ProxyServer;

  /** A back: middle mode towards the fake, Telegram's files and its state in a folder of its own. */
  async function startBackNode(name: string): Promise<ProxyServer> {
    const dir = await mkdtemp(path.join(tmpdir(), `mtp-back-${name}-`));
    dirs.push(dir);
    await writeTelegramFiles(dir, fake.secret, fake.port);
    return startNode(
      `${middleToml(dir, { adTag: null })}\n[cluster]\nrole = "back"\nlink_listen = "127.0.0.1:0"\n${certs.tomlFor(name)}\n`,
    );
  }

  before(async () => {
    fake = await new FakeMiddleProxy({ secret: randomBytes(128) }).start();
    certs = await clusterCerts(['front', 'a', 'b']);
    backA = await startBackNode('a');
    backB = await startBackNode('b');
    const frontDir = await mkdtemp(path.join(tmpdir(), 'mtp-front-'));
    dirs.push(frontDir);
    const links = [backA, backB].map((b) => `"127.0.0.1:${b.cluster.back!.address().port}"`);
    // No route to Telegram at all: no DC address, no Telegram files.
    front = await startNode(`state_dir = ${JSON.stringify(frontDir)}

[[listeners]]
name = "promo"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"
ad_tag = "${TEST_AD_TAG}"
allowed_protocols = ["classic", "secure", "tls"]
tls_domain = "${DOMAIN}"

[upstream]
mode = "auto"

[upstream.dc]
2 = ["127.0.0.1:1"]
4 = ["127.0.0.1:1"]

[[users]]
name = "ursula"
secret = "${USER_SECRET}"
ad_tag = "${USER_TAG}"
max_connections = 1

[[policies]]
rule = "not_in_table"
key = "client_ipv4"
table = "blocked"

[cluster]
role = "front"
backs = [${links.join(', ')}]
${certs.tomlFor('front')}
`);
    await waitFor(() => front.cluster.front?.readyCount() === 2, 'both links');
  });

  after(async () => {
    await front?.stop(0);
    await backA?.stop(0);
    await backB?.stop(0);
    await fake?.stop();
    await certs?.remove();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  const port = () => front.address('promo').port;
  const connect = (transport: TransportTag, secret: string, localAddress?: string) =>
    connectObfuscated({ host: '127.0.0.1', port: port(), secret, transport, dcId: 2, localAddress });

  async function echoes(c: ObfuscatedConnection, n = 1): Promise<void> {
    const p = encryptedPayload(n, 256);
    c.sendFrame(p);
    assert.deepEqual((await c.nextFrame()).payload, p);
  }

  async function refused(transport: TransportTag, secret: string, localAddress?: string): Promise<boolean> {
    try {
      const c = await connect(transport, secret, localAddress);
      try {
        await echoes(c);
        return false;
      } finally {
        c.close();
      }
    } catch {
      return true;
    }
  }

  const streams = () => (front.cluster.front!.status().backs as { streams: number }[]).map((b) => b.streams);
  const idle = () => waitFor(() => streams().every((n) => n === 0), 'earlier sessions to end');

  const clients: [string, TransportTag, string][] = [
    ['abridged', 'abridged', TEST_SECRET_HEX],
    ['intermediate', 'intermediate', TEST_SECRET_HEX],
    ['padded (dd)', 'padded', `dd${TEST_SECRET_HEX}`],
    ['fake-TLS (ee)', 'padded', `ee${TEST_SECRET_HEX}${Buffer.from(DOMAIN).toString('hex')}`],
  ];

  for (const [name, transport, secret] of clients) {
    it(`${name}: reaches the middle proxy through a back, with the listener's ad tag`, async () => {
      const before = fake.requests.length;
      const c = await connect(transport, secret);
      try {
        for (let i = 0; i < 3; i++) await echoes(c, i);
      } finally {
        c.close();
      }
      const seen = fake.requests.slice(before);
      assert.ok(seen.length >= 3);
      for (const r of seen) assert.equal(r.adTag, TEST_AD_TAG);
    });
  }

  it('the front itself opens no Telegram connection', () => {
    const up = front.upstreamStatus();
    assert.equal(up.direct, null);
    assert.equal(up.middle, null);
  });

  it("a user's ad tag and connection limit apply as on one machine", async () => {
    await idle();
    const before = fake.requests.length;
    const c = await connect('intermediate', USER_SECRET);
    try {
      await echoes(c);
      assert.equal(fake.requests.at(-1)?.adTag, USER_TAG);
      assert.ok(fake.requests.length > before);
      // One connection at a time for ursula, counted on the front.
      assert.equal(await refused('intermediate', USER_SECRET), true);
    } finally {
      c.close();
    }
    await waitFor(() => front.users.get('ursula')!.leases.size === 0, "ursula's lease given back");
    assert.equal(await refused('intermediate', USER_SECRET), false);
  });

  it('a policy table refuses on the front', async () => {
    assert.equal(await refused('intermediate', TEST_SECRET_HEX, '127.0.0.5'), false);
    assert.equal(front.operations!.tables().add('blocked', '127.0.0.5'), true);
    assert.equal(await refused('intermediate', TEST_SECRET_HEX, '127.0.0.5'), true);
    assert.equal(await refused('intermediate', TEST_SECRET_HEX, '127.0.0.1'), false);
    front.operations!.tables().remove('blocked', '127.0.0.5');
  });

  it('a back killed mid-session ends its sessions; new sessions go to the other back', async () => {
    await idle();
    const cs = await Promise.all([1, 2].map(() => connect('abridged', TEST_SECRET_HEX)));
    for (const c of cs) await echoes(c);
    assert.deepEqual(streams(), [1, 1]);
    const gone = cs.map(() => false);
    for (const [i, c] of cs.entries()) {
      void c.closed.then(() => {
        gone[i] = true;
      });
    }
    // As a crash would: the links' TCP connections go away without a word.
    for (const l of backA.cluster.back!.links) l.socket.destroy();
    await backA.stop(0);
    await waitFor(() => gone.filter(Boolean).length === 1, 'the session of back a to end');
    await waitFor(() => front.cluster.front?.readyCount() === 1, 'one link left');
    const survivor = cs[gone.indexOf(false)];
    await echoes(survivor, 7);
    const before = fake.requests.length;
    for (const [, transport, secret] of clients) {
      const c = await connect(transport, secret);
      await echoes(c, 9);
      c.close();
    }
    assert.deepEqual(
      fake.requests.slice(before).map((r) => r.adTag),
      clients.map(() => TEST_AD_TAG),
    );
    assert.equal(streams()[0], 0, 'nothing goes to the dead back');
    // `mtproxy status --cluster` on the front: one back down, the other up with the survivor's session.
    await waitFor(() => streams()[1] === 1, 'the closed sessions to end');
    const doc = await front.clusterStatus();
    assert.equal(doc.role, 'front');
    assert.deepEqual(
      doc.backs?.map((b) => [b.up, b.streams]),
      [
        [false, 0],
        [true, 1],
      ],
    );
    const text = formatCluster(doc);
    assert.match(text, /^cluster: role front$/m);
    assert.match(text, /^ {2}127\.0\.0\.1:\d+ DOWN, 0 session\(s\)$/m);
    assert.match(text, /^ {2}127\.0\.0\.1:\d+ up \(b\), 1 session\(s\)$/m);
    const backDoc = await backB.clusterStatus();
    assert.deepEqual(backDoc.fronts, [{ name: 'front', streams: 1 }]);
    for (const c of cs) c.close();
  });
});
