/**
 * The nodes reach a Redis that wants credentials, over TLS, with their own key prefix: a password
 * (requirepass), an ACL user allowed only the keys and channels of the fleet's prefix (so a key or channel
 * outside it would be refused and counted), and a TLS-only server whose certificate a private CA signed.
 * A node given a wrong password or an untrusted certificate keeps serving from its own state.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { generateClusterCerts } from '../../../src/cluster/front-back/certs.ts';
import { handleUsers } from '../../../src/users/api.ts';
import { type ClusterNode, startClusterNode } from '../../helpers/cluster-node.ts';
import { FakeDc } from '../../helpers/fake-dc.ts';
import { until } from '../../helpers/middle-harness.ts';
import { TEST_SECRET_HEX } from '../../helpers/proxy.ts';
import { relays } from '../../helpers/relay-probe.ts';
import { redisSkip, startRedis, type TestRedis } from '../../helpers/redis.ts';

const ALICE = 'a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1';

/** A handshake used on `a` is refused on `b` (the fleet shares its replay keys). */
async function replayRefusedAcross(a: ClusterNode, b: ClusterNode): Promise<void> {
  const random = randomBytes(64);
  assert.equal(await relays(a.port(), TEST_SECRET_HEX, random), true);
  assert.equal(await relays(b.port(), TEST_SECRET_HEX, random), false);
}

function withUrl(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.toString();
}

describe('Redis with a password (requirepass)', { skip: redisSkip }, () => {
  let redis: TestRedis;
  let dc: FakeDc;
  const nodes: ClusterNode[] = [];

  before(async () => {
    redis = await startRedis({ args: ['--requirepass', 'fleet-pass'] });
    dc = await FakeDc.start();
  });

  after(async () => {
    for (const n of nodes) await n.stop();
    await dc?.stop();
    await redis?.stop();
  });

  it('nodes with the password share state; a node with a wrong one serves alone', async () => {
    const good = withUrl(redis.url, '', 'fleet-pass');
    const a = await startClusterNode('a', good, dc.port);
    const b = await startClusterNode('b', good, dc.port);
    const c = await startClusterNode('c', withUrl(redis.url, '', 'wrong'), dc.port);
    nodes.push(a, b, c);
    assert.equal(a.proxy.sharedState!.status().redis, 'up');
    assert.equal(b.proxy.sharedState!.status().redis, 'up');
    await replayRefusedAcross(a, b);
    // The wrong password: Redis refuses the node, which says so and keeps serving.
    const status = c.proxy.sharedState!.status();
    assert.equal(status.redis, 'down');
    assert.ok((status.errors.connection ?? 0) > 0);
    assert.equal(c.stats.clusterRedisUp, 0);
    assert.equal(await relays(c.port(), TEST_SECRET_HEX), true);
  });
});

describe('Redis ACL user limited to the key prefix', { skip: redisSkip }, () => {
  let redis: TestRedis;
  let dc: FakeDc;
  let a: ClusterNode;
  let b: ClusterNode;
  let admin: Redis;

  before(async () => {
    redis = await startRedis({
      // One option, its words as separate arguments (as redis-server reads its command line).
      args: [
        ...['--user', 'default', 'on', '>admin-pass', '~*', '&*', '+@all'],
        ...[
          '--user',
          'fleet1',
          'on',
          '>fleet1-pass',
          '~fleet1:*',
          '&fleet1:*',
          '+@all',
          '-@dangerous',
          '+info',
        ],
      ],
    });
    dc = await FakeDc.start();
    const url = withUrl(redis.url, 'fleet1', 'fleet1-pass');
    const cluster = 'prefix = "fleet1:"';
    a = await startClusterNode('a', url, dc.port, { cluster });
    b = await startClusterNode('b', url, dc.port, { cluster });
    admin = new Redis(withUrl(redis.url, 'default', 'admin-pass'));
  });

  after(async () => {
    admin?.disconnect();
    await a?.stop();
    await b?.stop();
    await dc?.stop();
    await redis?.stop();
  });

  it('every key and channel is under the prefix, and nothing is refused', async () => {
    await replayRefusedAcross(a, b);
    const created = await handleUsers(
      'POST',
      [],
      new URLSearchParams(),
      async () => ({ name: 'alice', secret: ALICE, max_connections: 1 }),
      { users: a.proxy.users, config: () => a.proxy.config },
    );
    assert.equal(created.status, 201);
    await until(() => b.proxy.users.get('alice') !== undefined, 'alice on node B');
    assert.equal(await relays(b.port(), ALICE), true);
    await b.proxy.sharedState!.beat();
    const keys = await admin.keys('*');
    assert.ok(keys.length > 0);
    assert.deepEqual(
      keys.filter((k) => !k.startsWith('fleet1:')),
      [],
    );
    for (const k of ['fleet1:users', 'fleet1:nodes']) assert.ok(keys.includes(k), k);
    assert.ok(keys.some((k) => k.startsWith('fleet1:replay:')));
    // The ACL would have refused anything outside the prefix (NOPERM), and each refusal is counted.
    assert.deepEqual(a.proxy.sharedState!.status().errors, {});
    assert.deepEqual(b.proxy.sharedState!.status().errors, {});
  });
});

describe('Redis over TLS (rediss://) with a private CA', { skip: redisSkip }, () => {
  let redis: TestRedis;
  let dc: FakeDc;
  let dir: string;
  const nodes: ClusterNode[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mtp-redis-tls-'));
    await generateClusterCerts(dir, ['localhost']);
    redis = await startRedis({
      tls: {
        cert: path.join(dir, 'localhost.crt'),
        key: path.join(dir, 'localhost.key'),
        ca: path.join(dir, 'ca.crt'),
      },
      args: ['--requirepass', 'tls-pass'],
    });
    dc = await FakeDc.start();
  });

  after(async () => {
    for (const n of nodes) await n.stop();
    await dc?.stop();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('nodes trusting the CA share state; a node without it does not connect and serves alone', async () => {
    const url = withUrl(redis.url, '', 'tls-pass');
    const cluster = `redis_ca = ${JSON.stringify(path.join(dir, 'ca.crt'))}`;
    const a = await startClusterNode('a', url, dc.port, { cluster });
    const b = await startClusterNode('b', url, dc.port, { cluster });
    const c = await startClusterNode('c', url, dc.port);
    nodes.push(a, b, c);
    assert.equal(a.proxy.sharedState!.status().redis, 'up');
    assert.equal(b.proxy.sharedState!.status().redis, 'up');
    await replayRefusedAcross(a, b);
    // The system's CAs do not know this server's certificate.
    assert.equal(c.proxy.sharedState!.status().redis, 'down');
    assert.equal(await relays(c.port(), TEST_SECRET_HEX), true);
  });
});
