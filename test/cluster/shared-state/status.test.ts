/**
 * `mtproxy status --cluster` against a node of a two-node fleet: every node with its sessions and health,
 * a node that left shown as gone until forgotten; with Redis stopped the node says so in `status`, in
 * `status --cluster` and in its metrics, and says it is back once Redis is.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ClusterDocument } from '../../../src/cluster/status.ts';
import { runCli } from '../../helpers/cli.ts';
import { type ClusterNode, startClusterNode } from '../../helpers/cluster-node.ts';
import { FakeDc } from '../../helpers/fake-dc.ts';
import { until } from '../../helpers/middle-harness.ts';
import { freePort } from '../../helpers/ports.ts';
import { TEST_SECRET_HEX } from '../../helpers/proxy.ts';
import { echoedSession } from '../../helpers/relay-probe.ts';
import { redisSkip, startRedis, type TestRedis } from '../../helpers/redis.ts';

const TOKEN = 'status-cluster-token';

/** Polls an asynchronous condition until it holds, for at most 10 s. */
async function eventually(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('mtproxy status --cluster', { skip: redisSkip }, () => {
  let redis: TestRedis;
  let dc: FakeDc;
  let a: ClusterNode;
  let b: ClusterNode;
  let file: string;
  let metricsPort: number;

  const cli = (...args: string[]) => runCli(['status', '--config', file, ...args], a.stateDir);
  const doc = async (): Promise<ClusterDocument> => {
    const r = await cli('--cluster', '--json');
    assert.equal(r.code, 0, r.err.join('\n'));
    return JSON.parse(r.out.join('\n')) as ClusterDocument;
  };

  before(async () => {
    redis = await startRedis();
    dc = await FakeDc.start();
    const adminPort = await freePort();
    metricsPort = await freePort();
    a = await startClusterNode('node-a', redis.url, dc.port, {
      operations: true,
      top: `[admin]\nlisten = "127.0.0.1:${adminPort}"\ntoken = "${TOKEN}"\n\n[metrics]\nlisten = "127.0.0.1:${metricsPort}"\n`,
    });
    b = await startClusterNode('node-b', redis.url, dc.port);
    file = path.join(a.stateDir, 'mtproxy.toml');
    writeFileSync(file, a.toml);
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    await dc?.stop();
    await redis?.stop();
  });

  it('lists every node with its sessions and health', async () => {
    const session = await echoedSession(b.port(), TEST_SECRET_HEX);
    try {
      await eventually(
        async () => (await doc()).nodes?.find((n) => n.name === 'node-b')?.sessions === 1,
        'b',
      );
      const d = await doc();
      assert.equal(d.role, 'both');
      assert.equal(d.node?.redis, 'up');
      assert.deepEqual(
        d.nodes?.map((n) => [n.name, n.alive]),
        [
          ['node-a', true],
          ['node-b', true],
        ],
      );
      const text = await cli('--cluster');
      assert.equal(text.code, 0);
      const out = text.out.join('\n');
      assert.match(out, /^cluster: role both, node node-a; Redis up; 0 leases held/m);
      assert.match(out, /^NODE +STATE +SESSIONS +LEASES +PENDING/m);
      assert.match(out, /^node-b +alive +1 /m);
      assert.match(out, /^2 node\(s\) alive, 1 session\(s\) open$/m);
      // The plain status has the same line about the cluster.
      assert.match((await cli()).out.join('\n'), /^cluster: role both, node node-a; Redis up/m);
    } finally {
      session.close();
    }
  });

  it('a node that stopped cleanly leaves the list at once', async () => {
    await b.stop();
    await eventually(
      async () => (await doc()).nodes?.find((n) => n.name === 'node-b') === undefined,
      'b gone',
    );
    // A clean stop leaves the registry at once; it no longer counts.
    const out = (await cli('--cluster')).out.join('\n');
    assert.match(out, /^1 node\(s\) alive, 0 session\(s\) open$/m);
  });

  it('says so while Redis is unreachable, and when it is back', async () => {
    const metric = async () => {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      return /^mtproxy_cluster_redis_up (\d)$/m.exec(await res.text())?.[1];
    };
    assert.equal(await metric(), '1');
    await redis.stop();
    await until(() => a.stats.clusterRedisUp === 0, 'node A sees Redis down');
    const d = await doc();
    assert.equal(d.node?.redis, 'down');
    assert.equal(d.nodes, null);
    assert.equal(d.nodesError, 'Redis is unreachable');
    const out = (await cli('--cluster')).out.join('\n');
    assert.match(out, /Redis DOWN since .*, serving from local state/);
    assert.match(out, /^nodes: unknown \(Redis is unreachable\)$/m);
    assert.match((await cli()).out.join('\n'), /^cluster: .*Redis DOWN since/m);
    assert.equal(await metric(), '0');
    await redis.start();
    await until(() => a.stats.clusterRedisUp === 1, 'node A sees Redis up');
    await eventually(async () => (await doc()).nodes?.length === 1, 'node A registered again');
    assert.equal(await metric(), '1');
  });
});
