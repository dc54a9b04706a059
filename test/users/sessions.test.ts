/**
 * A user's sessions end to end, one process, the users' clock injected: an expiry that passes ends the open
 * sessions; the user's hold (max_connections, max_ips) is given back exactly once whichever way a session
 * ends (client close, client reset, upstream close, bad input, a reload that disables the user); per-SNI
 * secrets work per user; the rate is shared fairly between the user's own sessions in both directions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ObfuscatedConnection } from '../../src/client/obfuscated-client.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { LocalCounterStore } from '../../src/policy/counters.ts';
import type { ProxyServer } from '../../src/server/proxy.ts';
import { userLinks } from '../../src/users/links.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { until } from '../helpers/middle-harness.ts';
import { basicToml, startClockedProxy } from '../helpers/proxy.ts';
import { echoedSession, relays } from '../helpers/relay-probe.ts';

const LATE = 'a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5';
const ONCE = 'b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5';
const SNI = 'c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5';
const FAIR = 'd5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5';
const START = Date.UTC(2027, 0, 10, 12, 0, 0);
const RATE = 100_000;
const FRAME = 10_000;
const FRAMES = 60;

/** Closes the upstream side of a session when the client sends a frame of this size. */
const HANG_UP = 77;

function usersToml(once = ''): string {
  return `
[[users]]
name = "late"
secret = "${LATE}"
expires = "${new Date(START + 3_600_000).toISOString()}"

[[users]]
name = "once"
secret = "${ONCE}"
max_connections = 1
max_ips = 1
${once}

[[users]]
name = "sni"
secret = "${SNI}"
tls_domains = ["own.example.org"]

[[users]]
name = "fair"
secret = "${FAIR}"
rate = ${RATE}
`;
}

describe('users: sessions end to end (injected clock)', () => {
  let dc: FakeDc;
  let proxy: ProxyServer;
  let now = START;
  let toml = '';

  before(async () => {
    dc = await FakeDc.start({
      keepFrames: 1000,
      onFrame: (conn, payload) => {
        if (payload.length === HANG_UP) conn.socket.destroy();
        else conn.send(payload);
      },
    });
    toml = `${basicToml(dc.port, { listener: 'tls_domain = "cover.example.com"\nper_sni_salt = "users-test-salt"' })}
[log]
level = "silent"
`;
    proxy = await startClockedProxy(toml + usersToml(), () => now);
  });

  after(async () => {
    await proxy.stop(0);
    await dc.stop();
  });

  const port = () => proxy.address('main').port;

  it('an expiry that passes ends the open sessions within seconds and refuses new ones', async () => {
    const a = await echoedSession(port(), LATE);
    const b = await echoedSession(port(), LATE);
    const late = proxy.users.get('late')!;
    assert.equal(late.leases.size, 2);
    now = START + 3_600_001;
    await Promise.all([a.closed, b.closed]);
    assert.equal(late.leases.size, 0);
    assert.equal(await relays(port(), LATE), false);
    assert.equal(late.refusals.get('expired'), 1);
  });

  it('the hold is given back exactly once, whichever way the session ends', async () => {
    const once = proxy.users.get('once')!;
    const counters = proxy.users.counters as LocalCounterStore;
    const settled = async (how: string) => {
      await until(() => once.leases.size === 0, `${how}: the lease given back`);
      assert.equal(proxy.users.outstanding, 0, `${how}: no lease outstanding (none given back twice)`);
      assert.equal(counters.total(), 0, `${how}: every counter back to zero`);
    };
    const full = async (how: string) => {
      // The one slot is taken: a second session is refused while the first is open.
      assert.equal(await relays(port(), ONCE), false, `${how}: the second session refused`);
    };

    let c = await echoedSession(port(), ONCE);
    await full('client close');
    c.close();
    await settled('client close');

    c = await echoedSession(port(), ONCE);
    await full('client reset');
    c.socket.resetAndDestroy();
    await settled('client reset');

    c = await echoedSession(port(), ONCE);
    c.sendFrame(Buffer.alloc(HANG_UP, 1));
    await c.closed;
    await settled('upstream close');

    c = await echoedSession(port(), ONCE);
    // A length prefix no frame can have: the session ends as bad input.
    c.sendPlain(Buffer.from('ffffff7f00000000', 'hex'));
    await c.closed;
    await settled('bad input');

    c = await echoedSession(port(), ONCE);
    await proxy.applyConfig(parseConfig(toml + usersToml('enabled = false')));
    await c.closed;
    await settled('disabled by a reload');
    await proxy.applyConfig(parseConfig(toml + usersToml()));

    c = await echoedSession(port(), ONCE);
    await proxy.applyConfig(parseConfig(toml + usersToml().replace(/\[\[users\]\]\nname = "once"[^[]*/, '')));
    await c.closed;
    assert.equal(proxy.users.get('once'), undefined);
    assert.equal(proxy.users.outstanding, 0, 'deleted by a reload');
    assert.equal(counters.total(), 0, 'deleted by a reload: counters back to zero');
    await proxy.applyConfig(parseConfig(toml + usersToml()));
    // And the slot is there for the next session.
    (await echoedSession(port(), ONCE)).close();
    await until(() => proxy.users.get('once')!.leases.size === 0, 'the last lease given back');
  });

  it("per-SNI secrets work per user: the user's links (listener domain and its own) open sessions as that user", async () => {
    const user = proxy.users.get('sni')!;
    const links = userLinks(proxy.config, user).filter((l) => l.protocol === 'tls');
    assert.deepEqual(
      links.map((l) => l.domain),
      ['own.example.org'],
    );
    // The base secret over fake-TLS does not pass a per-SNI listener; the derived one does, as the user.
    const cover = Buffer.from('cover.example.com').toString('hex');
    assert.equal(await relays(port(), `ee${SNI}${cover}`), false);
    for (const link of links) {
      const s = await echoedSession(port(), link.secret);
      assert.equal(user.leases.size, 1, link.domain!);
      s.close();
      await until(() => user.leases.size === 0, 'the lease given back');
    }
  });

  it("the rate is shared fairly between the user's own sessions, in both directions", async () => {
    const user = proxy.users.get('fair')!;
    const a = await echoedSession(port(), FAIR);
    const b = await echoedSession(port(), FAIR);
    const [upA, upB] = dc.connections.slice(-2);
    const down = [0, 0];
    const count = (c: ObfuscatedConnection, i: number) => {
      c.onFrame = (f) => {
        if (f.payload.length === FRAME) down[i]++;
      };
    };
    count(a, 0);
    count(b, 1);
    const sent = (conn: typeof upA) => conn.frames.filter((f) => f.length === FRAME).length;
    for (let i = 0; i < FRAMES; i++) {
      a.sendFrame(Buffer.alloc(FRAME, 1));
      b.sendFrame(Buffer.alloc(FRAME, 2));
    }
    await until(() => user.up.tokens < 0, 'the upload bucket in debt');
    // Time moves for the buckets until neither is in debt, then the proxy relays what the refill allows. At
    // every such point, neither session has much less than the other relayed so far, either way.
    const progress = () => down[0] + down[1] + sent(upA) + sent(upB);
    const points: string[] = [];
    while (progress() < 4 * FRAMES) {
      while (user.up.tokens < 0 || user.down.tokens < 0) now += 100;
      const before = progress();
      await until(() => progress() > before, 'progress once the buckets refilled');
      points.push(`${sent(upA)}/${sent(upB)} ${down[0]}/${down[1]}`);
    }
    console.log(points.join('\n'));
    now += 3_600_000;
    await until(() => down[0] === FRAMES && down[1] === FRAMES, 'everything echoed');
    a.close();
    b.close();
  });
});
