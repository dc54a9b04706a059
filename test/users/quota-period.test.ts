/**
 * A daily quota end to end with the users' clock injected: reached, the session ends and new ones are
 * refused; at the next local midnight the new period lets the user in again, and the old period stays on
 * record.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ProxyServer } from '../../src/server/proxy.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { basicToml, startClockedProxy } from '../helpers/proxy.ts';
import { echoedSession, relays } from '../helpers/relay-probe.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';

const SECRET = 'd4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4';

for (const [period, next] of [
  ['daily', (d: Date) => new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1, 0, 0, 1)],
  ['weekly', (d: Date) => new Date(d.getFullYear(), d.getMonth(), d.getDate() + 7, 0, 0, 1)],
  ['monthly', (d: Date) => new Date(d.getFullYear(), d.getMonth() + 1, 1, 0, 0, 1)],
] as const) {
  describe(`users: a ${period} quota and its reset (injected clock)`, () => {
    const dir = suiteTempDir('mtp-users-period-');
    let dc: FakeDc;
    let proxy: ProxyServer;
    let now = new Date(2026, 11, 9, 22, 0).getTime();

    before(async () => {
      dc = await FakeDc.start({ keepFrames: 10 });
      const toml = `state_dir = "${dir()}"
${basicToml(dc.port)}
[[users]]
name = "q"
secret = "${SECRET}"
quota = 2000
quota_period = "${period}"
quota_reset_day = 1

[log]
level = "silent"
`;
      proxy = await startClockedProxy(toml, () => now);
    });

    after(async () => {
      await proxy.stop(0);
      await dc.stop();
    });

    it('refuses once reached, and lets the user in again in the next period', async () => {
      const s = await echoedSession(proxy.address('main').port, SECRET);
      for (let i = 0; i < 5; i++) s.sendFrame(Buffer.alloc(400, i));
      await s.closed;
      assert.equal(await relays(proxy.address('main').port, SECRET), false);
      const user = proxy.users.get('q')!;
      const before = user.period.key;
      now = next(new Date(now)).getTime();
      assert.equal(await relays(proxy.address('main').port, SECRET), true);
      assert.notEqual(user.period.key, before);
      proxy.users.flush();
      const history = proxy.users.store!.history('q').map((h) => h.period);
      assert.ok(history.includes(before) && history.includes(user.period.key), history.join(','));
    });
  });
}
