/**
 * Redis stopped and started again while clients connect: both nodes keep serving from their own state
 * (replays on the same node still refused, limits per node, usage counted locally), say so in their stats
 * and status, and once Redis is back what happened meanwhile reaches the fleet.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { handleUsers } from '../../../src/users/api.ts';
import { type ClusterNode, startClusterNode } from '../../helpers/cluster-node.ts';
import { FakeDc } from '../../helpers/fake-dc.ts';
import { until } from '../../helpers/middle-harness.ts';
import { TEST_SECRET_HEX } from '../../helpers/proxy.ts';
import { echoedSession, relays } from '../../helpers/relay-probe.ts';
import { redisSkip, startRedis, type TestRedis } from '../../helpers/redis.ts';

const CAROL = 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0';
const DAVE = 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0';
const FRANK = 'f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0';

const FILE_USERS = `
[[users]]
name = "carol"
secret = "${CAROL}"
quota_period = "total"

[[users]]
name = "dave"
secret = "${DAVE}"
max_connections = 1
`;

describe('Redis stopped and restarted while clients connect', { skip: redisSkip }, () => {
  let redis: TestRedis;
  let dc: FakeDc;
  let a: ClusterNode;
  let b: ClusterNode;

  before(async () => {
    redis = await startRedis({ persist: true });
    dc = await FakeDc.start({ keepFrames: 10 });
    a = await startClusterNode('a', redis.url, dc.port, { top: FILE_USERS });
    b = await startClusterNode('b', redis.url, dc.port, { top: FILE_USERS });
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    await dc?.stop();
    await redis?.stop();
  });

  it('service continues from local state, and the state reconciles when Redis is back', async () => {
    const shared = (n: ClusterNode) => n.proxy.sharedState!;
    assert.equal(shared(a).status().redis, 'up');
    assert.equal(a.stats.clusterRedisUp, 1);

    await redis.stop();
    await until(
      () => a.stats.clusterRedisUp === 0 && b.stats.clusterRedisUp === 0,
      'both nodes see Redis down',
    );
    assert.equal(shared(a).status().redis, 'down');
    assert.ok(shared(b).status().downSince !== null);

    // Clients keep being served by both nodes.
    for (let i = 0; i < 3; i++) {
      assert.equal(await relays(a.port(), TEST_SECRET_HEX), true);
      assert.equal(await relays(b.port(), TEST_SECRET_HEX), true);
    }
    // A replay on the same node is still refused (the local cache).
    const random = randomBytes(64);
    assert.equal(await relays(a.port(), TEST_SECRET_HEX, random), true);
    assert.equal(await relays(a.port(), TEST_SECRET_HEX, random), false);
    assert.ok(shared(a).status().replayLocalOnly > 0);

    // Limits hold per node: one dave on each.
    const daveA = await echoedSession(a.port(), DAVE);
    const daveB = await echoedSession(b.port(), DAVE);
    assert.equal(await relays(a.port(), DAVE), false);
    assert.ok(shared(a).status().localLimitDecisions > 0);

    // Usage keeps counting, and an edit is kept for later.
    const c = await echoedSession(a.port(), CAROL);
    for (let i = 0; i < 4; i++) {
      c.sendFrame(Buffer.alloc(500, i));
      await c.nextFrame(5000);
    }
    c.close();
    const carolA = () => a.proxy.users.get('carol')!;
    await until(() => carolA().leases.size === 0, "carol's session over");
    const moved = carolA().used;
    assert.ok(moved > 4000, `moved ${moved}`);
    const created = await handleUsers(
      'POST',
      [],
      new URLSearchParams(),
      async () => ({ name: 'frank', secret: FRANK }),
      {
        users: a.proxy.users,
        config: () => a.proxy.config,
      },
    );
    assert.equal(created.status, 201);
    assert.equal(b.proxy.users.get('frank'), undefined);
    assert.ok(a.stats.clusterRedisErrors.size > 0);

    await redis.start();
    await until(
      () => a.stats.clusterRedisUp === 1 && b.stats.clusterRedisUp === 1,
      'both nodes see Redis up',
    );
    // The user created during the outage reaches node B, the usage counted on A too.
    await until(() => b.proxy.users.get('frank') !== undefined, 'frank on node B');
    assert.equal(await relays(b.port(), FRANK), true);
    await until(() => b.proxy.users.get('carol')!.used >= moved, "carol's usage on node B");
    // Both nodes wrote their leases back: dave holds two slots of one, so a third session is refused.
    await until(() => shared(a).status().leases >= 1 && shared(b).status().leases >= 1, 'leases held');
    assert.equal(await relays(b.port(), DAVE), false);
    daveA.close();
    daveB.close();
    await until(
      () => shared(a).counters.heldTotal() === 0 && shared(b).counters.heldTotal() === 0,
      'slots given back',
    );
    assert.equal(await relays(b.port(), DAVE), true);
    await until(() => shared(a).status().pendingUsage === 0, 'every usage delta acknowledged');
  });
});

describe('a Redis that hangs (connections open, no answers)', { skip: redisSkip }, () => {
  let redis: TestRedis;
  let dc: FakeDc;
  let a: ClusterNode;
  let b: ClusterNode;

  before(async () => {
    redis = await startRedis();
    dc = await FakeDc.start();
    a = await startClusterNode('a', redis.url, dc.port, { top: FILE_USERS });
    b = await startClusterNode('b', redis.url, dc.port, { top: FILE_USERS });
  });

  after(async () => {
    redis?.resume();
    await a?.stop();
    await b?.stop();
    await dc?.stop();
    await redis?.stop();
  });

  it('sessions are still served, each Redis command given up after the timeout', async () => {
    redis.pause();
    try {
      // Every check that would ask Redis gives up after cluster.timeout and decides locally.
      const served = async (n: ClusterNode): Promise<boolean> => {
        (await echoedSession(n.port(), TEST_SECRET_HEX)).close();
        return true;
      };
      const sessions = await Promise.all([a, b, a, b].map(served));
      assert.deepEqual(sessions, [true, true, true, true]);
      // A limit still holds on each node from its own count.
      const dave = await echoedSession(a.port(), DAVE);
      assert.equal(await relays(a.port(), DAVE), false);
      dave.close();
      const errors = a.proxy.sharedState!.status().errors;
      assert.ok((errors.replay ?? 0) > 0, JSON.stringify(errors));
      assert.ok((errors.acquire ?? 0) > 0, JSON.stringify(errors));
    } finally {
      redis.resume();
    }
    // Answers again: a replay across nodes is refused once more.
    const random = randomBytes(64);
    await until(() => a.proxy.sharedState!.link.up && b.proxy.sharedState!.link.up, 'links up');
    assert.equal(await relays(a.port(), TEST_SECRET_HEX, random), true);
    assert.equal(await relays(b.port(), TEST_SECRET_HEX, random), false);
  });
});
