/**
 * Replay protection across nodes: two proxies sharing one redis-server; a handshake used on one node is
 * refused on the other, and each node still refuses its own replays without asking Redis twice.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated } from '../../../src/client/obfuscated-client.ts';
import { createInitiatorHeader } from '../../../src/protocol/obfuscated2.ts';
import { type ClusterNode, startClusterNode } from '../../helpers/cluster-node.ts';
import { FakeDc } from '../../helpers/fake-dc.ts';
import { TEST_SECRET } from '../../helpers/proxy.ts';
import { redisSkip, startRedis, type TestRedis } from '../../helpers/redis.ts';

/** Send raw bytes; resolves with what came back once the proxy closed the connection. */
async function sendAndWaitClose(port: number, bytes: Buffer): Promise<Buffer> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  socket.on('data', (c) => chunks.push(c));
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  socket.write(bytes);
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return Buffer.concat(chunks);
}

async function echoOnce(port: number, random: Buffer): Promise<void> {
  const c = await connectObfuscated({
    host: '127.0.0.1',
    port,
    secret: TEST_SECRET,
    transport: 'padded',
    headerRandom: random,
  });
  c.sendFrame(Buffer.alloc(8, 7));
  assert.deepEqual((await c.nextFrame()).payload, Buffer.alloc(8, 7));
  c.close();
}

describe('replay protection across nodes', { skip: redisSkip }, () => {
  let redis: TestRedis;
  let dc: FakeDc;
  let a: ClusterNode;
  let b: ClusterNode;

  before(async () => {
    redis = await startRedis();
    dc = await FakeDc.start();
    a = await startClusterNode('a', redis.url, dc.port);
    b = await startClusterNode('b', redis.url, dc.port);
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    await dc?.stop();
    await redis?.stop();
  });

  it('a handshake used on node A is refused on node B', async () => {
    const random = randomBytes(64);
    const hs = createInitiatorHeader('padded', 2, TEST_SECRET, random);
    await echoOnce(a.port(), random);
    const dcBefore = dc.connections.length;
    const answer = await sendAndWaitClose(b.port(), hs.header);
    assert.equal(answer.length, 0);
    assert.equal(dc.connections.length, dcBefore);
    assert.ok(b.stats.listener('main').replays >= 1);
  });

  it('a fresh handshake passes on either node, and a replay on the same node is refused', async () => {
    const random = randomBytes(64);
    await echoOnce(b.port(), random);
    await echoOnce(a.port(), randomBytes(64));
    const hs = createInitiatorHeader('padded', 2, TEST_SECRET, random);
    const before = b.stats.listener('main').replays;
    assert.equal((await sendAndWaitClose(b.port(), hs.header)).length, 0);
    assert.equal(b.stats.listener('main').replays, before + 1);
  });

  it('the replay keys live under the configured prefix and expire', async () => {
    const keys = await redis.command('KEYS', 'mtproxy:replay:*');
    assert.match(keys, /^\*[1-9]/);
    const ttl = await redis.command(
      'EVAL',
      "local k = redis.call('KEYS', ARGV[1]) return redis.call('PTTL', k[1])",
      '0',
      'mtproxy:replay:*',
    );
    assert.match(ttl, /^:[1-9]/);
  });
});
