/**
 * A user's rate in middle mode end to end, the users' clock injected: with the clock stopped the proxy
 * holds the user's traffic after the burst, in both directions; once the clock moves on, everything
 * arrives (the direct-mode counterpart is rate.test.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import { parseConfig } from '../../src/config/load.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { ProxyServer } from '../../src/server/proxy.ts';
import { MiddleUpstream } from '../../src/upstream/middle/middle-upstream.ts';
import { FakeMiddleProxy } from '../helpers/fake-middle-proxy.ts';
import {
  encryptedPayload,
  middleToml,
  testLog,
  until,
  writeTelegramFiles,
} from '../helpers/middle-harness.ts';

const SECRET = 'e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9';
const RATE = 100_000;
const FRAME = 10_000;
const FRAMES = 40;

describe('users: rate in middle mode (injected clock)', () => {
  let dir = '';
  let fake: FakeMiddleProxy;
  let upstream: MiddleUpstream;
  let proxy: ProxyServer;
  let now = 1_000_000_000_000;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-users-middle-'));
    const proxySecret = randomBytes(128);
    fake = await new FakeMiddleProxy({ secret: proxySecret }).start();
    await writeTelegramFiles(dir, proxySecret, fake.port);
    const toml = middleToml(dir, {
      listener: `\n[[users]]\nname = "slow"\nsecret = "${SECRET}"\nrate = ${RATE}\n`,
    });
    const config = parseConfig(toml);
    const stats = new Stats();
    const log = testLog();
    upstream = new MiddleUpstream(() => config, log, stats);
    await upstream.start();
    proxy = new ProxyServer(config, {
      log,
      stats,
      operations: false,
      upstreams: { direct: upstream, middle: upstream },
      userClock: { now: () => now },
    });
    await proxy.start();
  });

  after(async () => {
    await proxy.stop(0);
    await upstream.close();
    await fake.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('holds the traffic beyond the burst until the bucket refills, in both directions', async () => {
    const c = await connectObfuscated({
      host: '127.0.0.1',
      port: proxy.address('main').port,
      secret: SECRET,
      dcId: 2,
    });
    let echoed = 0;
    c.onFrame = (f) => {
      if (f.payload.length === FRAME) echoed++;
    };
    const relayed = () => fake.requests.filter((r) => r.length === FRAME).length;
    for (let i = 0; i < FRAMES; i++) c.sendFrame(encryptedPayload(i + 1, FRAME));
    const user = proxy.users.get('slow')!;
    await until(() => user.up.tokens < 0, 'the upload bucket in debt');
    assert.ok(relayed() < FRAMES, `relayed ${relayed()} of ${FRAMES} frames with the clock stopped`);
    // Time passes for the buckets: the rest goes through, and the answers come back.
    await until(() => {
      now += 10_000;
      return relayed() === FRAMES && echoed === FRAMES;
    }, 'every frame relayed and answered');
    assert.ok(user.bytesUp >= FRAMES * FRAME && user.bytesDown >= FRAMES * FRAME);
    c.close();
    assert.deepEqual(fake.violations, []);
  });
});
