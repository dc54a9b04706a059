/**
 * Users across a fleet: two proxies (and, for the crash, a third in a process of its own) sharing one
 * redis-server. A user created through the API on one node is served and limited on the other, a quota is
 * summed over the nodes, and the connection slots of a node killed with SIGKILL come back.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated } from '../../../src/client/obfuscated-client.ts';
import { userToJson } from '../../../src/cluster/shared-state/users.ts';
import { handleUsers } from '../../../src/users/api.ts';
import { start, waitForOutput } from '../../cli/spawn-cli.ts';
import { type ClusterNode, clusterNodeToml, startClusterNode } from '../../helpers/cluster-node.ts';
import { FakeDc } from '../../helpers/fake-dc.ts';
import { until } from '../../helpers/middle-harness.ts';
import { freePort } from '../../helpers/ports.ts';
import { echoedSession, relays } from '../../helpers/relay-probe.ts';
import { redisSkip, startRedis, type TestRedis } from '../../helpers/redis.ts';

const ALICE = 'a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1';
const CAROL = 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0';
const DAVE = 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0';
const ERIN = 'e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0';
const IVY = '1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e';
const FAY = 'fafafafafafafafafafafafafafafafa';

/** A session from `localAddress` (a loopback address of its own), echoed once; null when refused. */
async function sessionFrom(port: number, secret: string, localAddress: string) {
  try {
    const c = await connectObfuscated({ host: '127.0.0.1', port, secret, dcId: 2, localAddress });
    c.sendFrame(Buffer.alloc(40, 3));
    await c.nextFrame(5000);
    return c;
  } catch {
    return null;
  }
}

/** The same file users on every node: carol has a quota, dave one connection at a time. */
const FILE_USERS = `
[[users]]
name = "carol"
secret = "${CAROL}"
quota = 6000
quota_period = "total"

[[users]]
name = "dave"
secret = "${DAVE}"
max_connections = 1

[[users]]
name = "ivy"
secret = "${IVY}"
max_ips = 1
`;

/** Polls an asynchronous condition (a connection attempt) until it holds, for at most 15 s. */
async function eventually(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function api(node: ClusterNode, method: string, pathParts: string[], body?: unknown) {
  return handleUsers(method, pathParts, new URLSearchParams(), async () => body, {
    users: node.proxy.users,
    config: () => node.proxy.config,
  });
}

describe('users across nodes', { skip: redisSkip }, () => {
  let redis: TestRedis;
  let dc: FakeDc;
  let a: ClusterNode;
  let b: ClusterNode;

  before(async () => {
    redis = await startRedis();
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

  it('a user created on node A is served and limited on node B; an edit on B reaches A', async () => {
    const created = await api(a, 'POST', [], { name: 'alice', secret: ALICE, max_connections: 1 });
    assert.equal(created.status, 201);
    await until(() => b.proxy.users.get('alice') !== undefined, 'alice on node B');
    const onB = await echoedSession(b.port(), ALICE);
    // One connection for the whole fleet: node A refuses the second.
    assert.equal(await relays(a.port(), ALICE), false);
    assert.equal(a.stats.listener('main').policyRejections.get('user_max_connections'), 1);
    onB.close();
    await until(() => b.proxy.users.get('alice')!.leases.size === 0, 'the lease given back on B');
    assert.equal(await relays(a.port(), ALICE), true);
    // Disabled on B: A refuses too.
    assert.equal((await api(b, 'POST', ['alice', 'disable'])).status, 200);
    await until(() => a.proxy.users.get('alice')?.config.enabled === false, 'alice disabled on node A');
    assert.equal(await relays(a.port(), ALICE), false);
    assert.equal((await api(b, 'DELETE', ['alice'])).status, 200);
    await until(() => a.proxy.users.get('alice') === undefined, 'alice deleted on node A');
  });

  it('an announcement missed while a subscriber reconnected is caught up', async () => {
    const created = await api(a, 'POST', [], { name: 'erin', secret: ERIN });
    assert.equal(created.status, 201);
    await until(() => b.proxy.users.get('erin') !== undefined, 'erin on node B');
    // Another node's edit whose announcement nobody heard: in Redis only.
    const changed = { ...a.proxy.users.get('erin')!.config, maxConnections: 7 };
    assert.equal(await redis.command('HSET', 'mtproxy:users', 'erin', userToJson(changed)), ':0\r\n');
    assert.equal(b.proxy.users.get('erin')!.config.maxConnections, 0);
    // The subscribers lose their connection; once back, each node re-reads what it may have missed.
    assert.match(await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub'), /^:[1-9]/);
    await until(() => b.proxy.users.get('erin')!.config.maxConnections === 7, 'the edit on node B');
    await until(() => a.proxy.users.get('erin')!.config.maxConnections === 7, 'the edit on node A');
    assert.equal((await api(a, 'DELETE', ['erin'])).status, 200);
    await until(() => b.proxy.users.get('erin') === undefined, 'erin deleted on node B');
  });

  it('an announcement whose re-read timed out is re-read at the next heartbeat', async () => {
    const created = await api(a, 'POST', [], { name: 'fay', secret: FAY });
    assert.equal(created.status, 201);
    await until(() => b.proxy.users.get('fay') !== undefined, 'fay on node B');
    const changed = { ...a.proxy.users.get('fay')!.config, maxConnections: 5 };
    assert.equal(await redis.command('HSET', 'mtproxy:users', 'fay', userToJson(changed)), ':0\r\n');
    // Redis answers nothing for longer than the command timeout (300 ms) while node B handles the
    // announcement of that edit (as a node does whose commands time out on a loaded machine).
    assert.equal(await redis.command('CLIENT', 'PAUSE', '1000', 'ALL'), '+OK\r\n');
    b.proxy.sharedState!.users.onEvent({ type: 'users', from: 'another node' });
    await until(() => b.proxy.users.get('fay')!.config.maxConnections === 5, 'the edit on node B');
    assert.equal((await api(a, 'DELETE', ['fay'])).status, 200);
    await until(() => b.proxy.users.get('fay') === undefined, 'fay deleted on node B');
  });

  it("a user's client addresses are counted over the nodes (max_ips)", async () => {
    const first = await sessionFrom(a.port(), IVY, '127.0.0.21');
    assert.ok(first, 'the first address on node A');
    try {
      // A second address is refused on the other node; the same address is still welcome there.
      assert.equal(await sessionFrom(b.port(), IVY, '127.0.0.22'), null);
      const same = await sessionFrom(b.port(), IVY, '127.0.0.21');
      assert.ok(same, 'the same address on node B');
      same.close();
    } finally {
      first.close();
    }
    await until(
      () => a.proxy.users.get('ivy')!.leases.size === 0 && b.proxy.users.get('ivy')!.leases.size === 0,
      "ivy's sessions over",
    );
    const other = await sessionFrom(b.port(), IVY, '127.0.0.22');
    assert.ok(other, 'another address once the first left');
    other.close();
  });

  it('a quota is summed over the nodes', async () => {
    for (const node of [a, b]) {
      const c = await echoedSession(node.port(), CAROL);
      for (let i = 0; i < 4; i++) {
        c.sendFrame(Buffer.alloc(400, i));
        await c.nextFrame(5000);
      }
      c.close();
    }
    const carolA = () => a.proxy.users.get('carol')!;
    const carolB = () => b.proxy.users.get('carol')!;
    // Each node alone moved less than the quota; the fleet more.
    await until(() => carolA().used >= 6000 && carolB().used >= 6000, 'the fleet usage on both nodes');
    assert.equal(await relays(a.port(), CAROL), false);
    assert.equal(await relays(b.port(), CAROL), false);
  });

  it('a node killed with SIGKILL releases its connection slots', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mtp-node-c-'));
    try {
      const port = await freePort();
      const toml = clusterNodeToml('c', redis.url, dc.port, dir, { top: FILE_USERS }).replace(
        'port = 0',
        `port = ${port}`,
      );
      const file = path.join(dir, 'mtproxy.toml');
      writeFileSync(file, `${toml}\n[log]\nlevel = "warn"\n`);
      const child = start(['run', '--config', file], dir);
      try {
        await waitForOutput(child, /secret=/);
        const held = await echoedSession(port, DAVE);
        await until(() => a.proxy.sharedState !== null, 'node A clustered');
        assert.equal(await relays(a.port(), DAVE), false);
        child.kill('SIGKILL');
        await once(child, 'exit');
        held.close();
        // Once the dead node's heartbeat key expired (node_timeout), its slot no longer counts.
        await eventually(() => relays(a.port(), DAVE), "the dead node's slot released");
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
