/**
 * User limits across workers, in threads and in processes mode: max_connections is counted in the shared
 * counters, the quota over every worker's usage (through the state database), and every slot comes back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated, type ObfuscatedConnection } from '../../src/client/obfuscated-client.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { WorkerMode } from '../../src/config/types.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { UserStore } from '../../src/users/store.ts';
import { Supervisor } from '../../src/workers/supervisor.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { roundTrip } from '../helpers/relay-probe.ts';
import { log, supervisorToml, until } from '../workers/supervisor-suite.ts';

const ALICE = 'a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1';
const BOB = 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0';

const USERS = `
[[users]]
name = "alice"
secret = "${ALICE}"
max_connections = 3

[[users]]
name = "bob"
secret = "${BOB}"
quota = 30000
quota_period = "total"
`;

for (const mode of ['threads', 'processes'] as WorkerMode[]) {
  describe(`users across workers (${mode})`, () => {
    const fx = { dir: '', dc: null as unknown as FakeDc };
    before(async () => {
      fx.dc = await FakeDc.start({ keepFrames: 10 });
      fx.dir = mkdtempSync(join(tmpdir(), 'mtproxy-users-workers-'));
    });
    after(async () => {
      await fx.dc.stop();
      rmSync(fx.dir, { recursive: true, force: true });
    });

    function config() {
      // [[users]] after the top-level keys and before [[listeners]] is fine in TOML.
      const toml = supervisorToml(fx.dc.port, mode, `state_dir = "${fx.dir}"`).replace(
        '[upstream]',
        `${USERS.replace(/\[\[users\]\]/g, '[[users]]')}\n[upstream]`,
      );
      return parseConfig(toml, { file: join(fx.dir, 'mtproxy.toml') });
    }

    const open = (port: number, secret: string) =>
      connectObfuscated({ host: '127.0.0.1', port, secret, dcId: 2 });

    it('max_connections holds over both workers and every slot comes back', async () => {
      const sup = new Supervisor(config(), { log, stats: new Stats() });
      await sup.start();
      try {
        const { port } = sup.address('main');
        const sessions: ObfuscatedConnection[] = [];
        for (let i = 0; i < 10; i++) sessions.push(await open(port, ALICE));
        const answered = await Promise.all(sessions.map((s) => roundTrip(s)));
        assert.equal(answered.filter(Boolean).length, 3);
        for (const s of sessions) s.close();
        await until('counters back to zero', () => sup.counters.total() === 0);
        const again: ObfuscatedConnection[] = [];
        for (let i = 0; i < 3; i++) again.push(await open(port, ALICE));
        assert.deepEqual(await Promise.all(again.map((s) => roundTrip(s))), [true, true, true]);
        for (const s of again) s.close();
      } finally {
        await sup.stop(0);
      }
    });

    it("the quota counts every worker's bytes: reaching it ends the sessions and refuses new ones", async () => {
      const sup = new Supervisor(config(), { log, stats: new Stats() });
      await sup.start();
      try {
        const { port } = sup.address('main');
        const sessions: ObfuscatedConnection[] = [];
        for (let i = 0; i < 8; i++) sessions.push(await open(port, BOB));
        // 8 × 1,500 bytes each way stays under bob's 30,000: every session is answered once.
        const answered = await Promise.all(sessions.map((s) => roundTrip(s, 1500)));
        assert.deepEqual(
          answered,
          sessions.map(() => true),
        );
        // A second round takes the user past the quota, whichever worker counts it first.
        for (const s of sessions) if (!s.socket.destroyed) s.sendFrame(Buffer.alloc(1500, 7));
        await until('every session ended', () => sessions.every((s) => s.socket.destroyed), 15_000);
        const late = await open(port, BOB);
        assert.equal(await roundTrip(late), false);
        late.close();
      } finally {
        await sup.stop(0);
      }
      const store = new UserStore(fx.dir);
      const row = store.usage('bob', 'total');
      store.close();
      assert.ok(row.bytesUp + row.bytesDown >= 30000, `usage on disk: ${JSON.stringify(row)}`);
      assert.ok(row.sessions >= 8);
    });
  });
}
