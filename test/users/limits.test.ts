/**
 * Users end to end, one process: the real proxy, a fake DC on loopback and the project's own client. Each
 * limit is reached and enforced; refusals are counted by reason; a reload that disables or deletes a user
 * ends its sessions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated, type ObfuscatedConnection } from '../../src/client/obfuscated-client.ts';
import { parseConfig } from '../../src/config/load.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { until } from '../helpers/middle-harness.ts';
import { basicToml, startTestProxy, TEST_SECRET_HEX, type TestProxy } from '../helpers/proxy.ts';
import { echoedSession, relays } from '../helpers/relay-probe.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';

const ALICE = 'a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1';
const BOB = 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0';
const CAROL = 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0';
const DAVE = 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0';
const ERIN = 'e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1';

function usersToml(extra = ''): string {
  return `
[[users]]
name = "alice"
secret = "${ALICE}"
max_connections = 2

[[users]]
name = "bob"
secret = "${BOB}"
max_ips = 1

[[users]]
name = "carol"
secret = "${CAROL}"
quota = 4000
quota_period = "total"

[[users]]
name = "dave"
secret = "${DAVE}"
expires = "2001-01-01T00:00:00Z"

[[users]]
name = "erin"
secret = "${ERIN}"
${extra}
`;
}

async function connectFrom(
  port: number,
  secret: string,
  localAddress: string,
): Promise<ObfuscatedConnection> {
  const c = await connectObfuscated({ host: '127.0.0.1', port, secret, dcId: 2, localAddress });
  c.sendFrame(Buffer.alloc(40, 3));
  await c.nextFrame(5000);
  return c;
}

describe('users: limits end to end (one process)', () => {
  const dir = suiteTempDir('mtp-users-');
  let dc: FakeDc;
  let proxy: TestProxy;
  let toml: (users: string) => string = () => '';

  before(async () => {
    dc = await FakeDc.start({ keepFrames: 10 });
    toml = (users: string) =>
      `${basicToml(dc.port, { top: `state_dir = "${dir()}"\n` })}${users}\n[log]\nlevel = "silent"\n`;
    proxy = await startTestProxy(toml(usersToml()));
  });

  after(async () => {
    await proxy.stop();
    await dc.stop();
  });

  const rejections = (): Map<string, number> => proxy.stats.listener('main').policyRejections;

  it('a user secret opens a session bound to that user; the listener secret still works', async () => {
    assert.equal(await relays(proxy.port(), TEST_SECRET_HEX), true);
    const c = await echoedSession(proxy.port(), ERIN);
    const erin = proxy.proxy.users.get('erin')!;
    assert.equal(erin.leases.size, 1);
    c.close();
    await until(() => erin.leases.size === 0, 'the lease given back');
    assert.ok(erin.bytesUp > 0 && erin.bytesDown > 0);
    // The same user over fake-TLS (ee) and padded intermediate (dd); the second ee session finds the
    // secret through the address's hint.
    const domain = Buffer.from('example.com').toString('hex');
    for (const secret of [`ee${ERIN}${domain}`, `dd${ERIN}`, `ee${ERIN}${domain}`]) {
      const s = await echoedSession(proxy.port(), secret);
      assert.equal(erin.leases.size, 1, secret.slice(0, 2));
      s.close();
      await until(() => erin.leases.size === 0, 'the lease given back');
    }
  });

  it('max_connections: the next session is refused, a slot comes back when one ends', async () => {
    const a = await echoedSession(proxy.port(), ALICE);
    const b = await echoedSession(proxy.port(), ALICE);
    assert.equal(await relays(proxy.port(), ALICE), false);
    assert.equal(rejections().get('user_max_connections'), 1);
    a.close();
    await until(() => proxy.proxy.users.get('alice')!.leases.size === 1, 'one lease left');
    assert.equal(await relays(proxy.port(), ALICE), true);
    b.close();
  });

  it('max_ips: a second address is refused while the first stays connected', async () => {
    const port = proxy.port();
    const a = await connectFrom(port, BOB, '127.0.0.1');
    const b = await connectFrom(port, BOB, '127.0.0.1');
    await assert.rejects(connectFrom(port, BOB, '127.0.0.2'));
    assert.equal(rejections().get('user_max_ips'), 1);
    // The first address keeps working.
    a.sendFrame(Buffer.alloc(8, 1));
    await a.nextFrame(5000);
    a.close();
    b.close();
    const bob = proxy.proxy.users.get('bob')!;
    await until(() => bob.leases.size === 0, 'leases given back');
    const c = await connectFrom(port, BOB, '127.0.0.2');
    c.close();
  });

  it('quota: reaching it ends the open session within seconds and refuses new ones', async () => {
    const c = await echoedSession(proxy.port(), CAROL);
    for (let i = 0; i < 10; i++) c.sendFrame(Buffer.alloc(400, i));
    await c.closed;
    const carol = proxy.proxy.users.get('carol')!;
    assert.ok(carol.used >= 4000, `used ${carol.used}`);
    assert.equal(await relays(proxy.port(), CAROL), false);
    assert.ok((rejections().get('user_quota') ?? 0) >= 1);
  });

  it('expires: a user past its expiry is refused', async () => {
    assert.equal(await relays(proxy.port(), DAVE), false);
    assert.equal(rejections().get('user_expired'), 1);
  });

  it('a reload that disables a user ends its sessions at once; deleting one does too', async () => {
    const c = await echoedSession(proxy.port(), ERIN);
    await proxy.proxy.applyConfig(parseConfig(toml(usersToml('enabled = false'))));
    await c.closed;
    assert.equal(await relays(proxy.port(), ERIN), false);
    assert.equal(rejections().get('user_disabled'), 1);
    await proxy.proxy.applyConfig(parseConfig(toml(usersToml())));
    const d = await echoedSession(proxy.port(), ERIN);
    await proxy.proxy.applyConfig(
      parseConfig(toml(usersToml().replace(/\[\[users\]\]\nname = "erin"[^[]*/, ''))),
    );
    await d.closed;
    assert.equal(proxy.proxy.users.get('erin'), undefined);
    assert.equal(await relays(proxy.port(), ERIN), false);
  });

  it('every lease is given back once all sessions ended', async () => {
    await until(() => proxy.proxy.users.outstanding === 0, 'no lease outstanding');
  });
});
