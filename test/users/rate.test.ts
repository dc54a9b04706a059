/**
 * A user's rate end to end, with the rate's clock injected: with the clock stopped the bucket never refills,
 * so the proxy holds the user's traffic after the burst; once the clock moves on, everything arrives.
 * Nothing here depends on how fast the machine is.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import type { ProxyServer } from '../../src/server/proxy.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { until } from '../helpers/middle-harness.ts';
import { basicToml, startClockedProxy } from '../helpers/proxy.ts';

const SECRET = 'a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7';
const FRAMES = 30;
const FRAME = 10_000;

describe('users: rate (token bucket) end to end', () => {
  let dc: FakeDc;
  let proxy: ProxyServer;
  let now = 1_000_000_000_000;

  before(async () => {
    dc = await FakeDc.start({ keepFrames: 1000 });
    const toml = `${basicToml(dc.port)}
[[users]]
name = "slow"
secret = "${SECRET}"
rate = 100000

[log]
level = "silent"
`;
    proxy = await startClockedProxy(toml, () => now);
  });

  after(async () => {
    await proxy.stop(0);
    await dc.stop();
  });

  it('holds the traffic beyond the burst until the bucket refills, in both directions', async () => {
    const c = await connectObfuscated({
      host: '127.0.0.1',
      port: proxy.address('main').port,
      secret: SECRET,
      dcId: 2,
    });
    for (let i = 0; i < FRAMES; i++) c.sendFrame(Buffer.alloc(FRAME, i + 1));
    const user = proxy.users.get('slow')!;
    await until(() => user.up.tokens < 0, 'the upload bucket in debt');
    // The session stops reading once in debt: at most the burst and the chunk that overdrew it got through.
    const relayed = () => dc.connections.reduce((n, conn) => n + conn.frames.length, 0);
    assert.ok(relayed() < FRAMES, `relayed ${relayed()} of ${FRAMES} frames with the clock stopped`);
    // Time passes for the bucket: the rest goes through, and the echoes come back.
    now += 60_000;
    await until(() => relayed() === FRAMES, 'every frame relayed');
    for (let i = 0; i < FRAMES; i++) {
      if (i % 5 === 0) now += 60_000;
      const f = await c.nextFrame(10_000);
      assert.equal(f.payload.length, FRAME);
    }
    assert.ok(user.bytesUp >= FRAMES * FRAME && user.bytesDown >= FRAMES * FRAME);
    c.close();
  });
});
