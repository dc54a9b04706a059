/**
 * Policy tables and max_connections across a fleet: a table edit on one node applies on the other, and a
 * max_connections rule counts the sessions of every node.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated } from '../../../src/client/obfuscated-client.ts';
import { type ClusterNode, startClusterNode } from '../../helpers/cluster-node.ts';
import { FakeDc } from '../../helpers/fake-dc.ts';
import { until } from '../../helpers/middle-harness.ts';
import { TEST_SECRET_HEX } from '../../helpers/proxy.ts';
import { echoedSession, relays } from '../../helpers/relay-probe.ts';
import { redisSkip, startRedis, type TestRedis } from '../../helpers/redis.ts';

const POLICIES = `
[[policies]]
rule = "not_in_table"
key = "client_ipv4"
table = "blocked"

[[policies]]
rule = "max_connections"
keys = ["listener"]
limit = 2
`;

async function relaysFrom(port: number, localAddress: string): Promise<boolean> {
  try {
    const c = await connectObfuscated({
      host: '127.0.0.1',
      port,
      secret: TEST_SECRET_HEX,
      dcId: 2,
      localAddress,
    });
    c.sendFrame(Buffer.alloc(40, 3));
    await c.nextFrame(5000);
    c.close();
    return true;
  } catch {
    return false;
  }
}

describe('policy tables and max_connections across nodes', { skip: redisSkip }, () => {
  let redis: TestRedis;
  let dc: FakeDc;
  let a: ClusterNode;
  let b: ClusterNode;

  before(async () => {
    redis = await startRedis({ persist: true });
    dc = await FakeDc.start();
    a = await startClusterNode('a', redis.url, dc.port, { top: POLICIES });
    b = await startClusterNode('b', redis.url, dc.port, { top: POLICIES });
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    await dc?.stop();
    await redis?.stop();
  });

  it('a table edit on node A applies on node B', async () => {
    assert.equal(await relaysFrom(b.port(), '127.0.0.5'), true);
    assert.equal(a.proxy.operations!.tables().add('blocked', '127.0.0.5'), true);
    await until(() => b.proxy.operations!.tables().has('blocked', '127.0.0.5'), 'the value on node B');
    assert.equal(await relaysFrom(b.port(), '127.0.0.5'), false);
    assert.equal(await relaysFrom(b.port(), '127.0.0.1'), true);
    assert.equal(b.proxy.operations!.tables().remove('blocked', '127.0.0.5'), true);
    await until(() => !a.proxy.operations!.tables().has('blocked', '127.0.0.5'), 'the removal on node A');
    assert.equal(await relaysFrom(a.port(), '127.0.0.5'), true);
  });

  it('edits made while Redis is away are kept, one per value, and reach the fleet when it is back', async () => {
    const tablesA = a.proxy.operations!.tables();
    const tablesB = b.proxy.operations!.tables();
    await redis.stop();
    await until(() => !a.proxy.sharedState!.link.up, 'node A sees Redis down');
    // Edited back and forth: only the last edit of each value waits.
    for (let i = 0; i < 50; i++) {
      tablesA.add('blocked', '127.0.0.7');
      tablesA.remove('blocked', '127.0.0.7');
    }
    tablesA.add('blocked', '127.0.0.7');
    tablesA.add('blocked', '127.0.0.8');
    tablesA.remove('blocked', '127.0.0.8');
    assert.equal(a.proxy.sharedState!.status().pendingTableEdits, 2);
    assert.equal(await relaysFrom(a.port(), '127.0.0.7'), false);
    assert.equal(tablesB.has('blocked', '127.0.0.7'), false);
    await redis.start();
    await until(() => tablesB.has('blocked', '127.0.0.7'), 'the value on node B');
    assert.equal(a.proxy.sharedState!.status().pendingTableEdits, 0);
    assert.equal(tablesB.has('blocked', '127.0.0.8'), false);
    assert.equal(await relaysFrom(b.port(), '127.0.0.7'), false);
    tablesB.remove('blocked', '127.0.0.7');
    await until(() => !tablesA.has('blocked', '127.0.0.7'), 'the removal on node A');
  });

  it('max_connections counts the sessions of every node', async () => {
    const one = await echoedSession(a.port(), TEST_SECRET_HEX);
    const two = await echoedSession(b.port(), TEST_SECRET_HEX);
    assert.equal(await relays(a.port(), TEST_SECRET_HEX), false);
    assert.equal(await relays(b.port(), TEST_SECRET_HEX), false);
    one.close();
    await until(() => a.proxy.sharedState!.counters.heldTotal() === 0, 'the slot given back on A');
    assert.equal(await relays(b.port(), TEST_SECRET_HEX), true);
    two.close();
  });
});
