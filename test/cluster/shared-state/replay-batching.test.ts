/**
 * The fleet's replay checks go to Redis as at most one script call at a time: checks that arrive while a call
 * is out wait for it and then go together, so a busy node makes few calls and a quiet one waits for no timer.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { SharedStateLink } from '../../../src/cluster/shared-state/client.ts';
import { ClusterReplayGuard } from '../../../src/cluster/shared-state/replay.ts';
import { parseConfig } from '../../../src/config/load.ts';
import { redisSkip, startRedis, type TestRedis } from '../../helpers/redis.ts';

function scriptCalls(info: string): number {
  let n = 0;
  for (const m of info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) n += Number(m[1]);
  return n;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('replay checks of a node on Redis', { skip: redisSkip }, () => {
  let redis: TestRedis;
  let link: SharedStateLink;
  let guard: ClusterReplayGuard;

  before(async () => {
    redis = await startRedis();
    const config = parseConfig(`[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${randomBytes(16).toString('hex')}"
[cluster]
redis = "${redis.url}"
node_name = "batching"
timeout = "5s"
`);
    link = new SharedStateLink(config.cluster, pino({ level: 'silent' }), null);
    link.connect();
    assert.equal(await link.whenUp(10_000), true);
    guard = new ClusterReplayGuard(link, config.replay);
  });
  after(async () => {
    redis.resume();
    await link.close();
    await redis.stop();
  });

  it('sends what arrives while a call is out as one call once it is answered', async () => {
    // The script is loaded by its first use: one check before counting.
    assert.equal(await guard.seen(randomBytes(32)), false);
    await redis.command('CONFIG', 'RESETSTAT');
    const first = randomBytes(32);
    redis.pause();
    const answers: Array<boolean | Promise<boolean>> = [guard.seen(first)];
    await nextTurn();
    await nextTurn();
    // Three more checks in three later turns, while the first call waits for the frozen server.
    for (let i = 0; i < 3; i++) {
      answers.push(guard.seen(randomBytes(32)));
      await nextTurn();
    }
    assert.equal(guard.waiting, 4);
    redis.resume();
    assert.deepEqual(await Promise.all(answers), [false, false, false, false]);
    assert.equal(scriptCalls(await redis.command('INFO', 'commandstats')), 2, 'the first call and one batch');
    // What was stored is known to the fleet: the same key from another node's view is a replay.
    const other = new ClusterReplayGuard(link, { enabled: true, maxEntries: 1000, maxAgeMs: 60_000 });
    assert.equal(await other.seen(first), true);
  });
});
