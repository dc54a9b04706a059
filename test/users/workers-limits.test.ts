/**
 * Every user limit end to end across two workers, in threads and in processes mode, the users' clock
 * injected (stopped, moved by the test): max_ips, expiry, a daily / weekly / monthly quota and its reset at
 * the period boundary, the rate (held while the clock stands still, split between the workers holding the
 * user's sessions), and disable / delete through the admin API and a reload. Real proxy, fake DC, the
 * project's own client.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { connectObfuscated, type ObfuscatedConnection } from '../../src/client/obfuscated-client.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { WorkerMode } from '../../src/config/types.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { periodAt } from '../../src/users/period.ts';
import { UserStore } from '../../src/users/store.ts';
import { Supervisor } from '../../src/workers/supervisor.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { roundTrip } from '../helpers/relay-probe.ts';
import { log, supervisorToml, until, wait } from '../workers/supervisor-suite.ts';

const TOKEN = 'users-workers-token-0123456789';
/** A Sunday evening, local time. */
const START = new Date(2027, 0, 10, 22, 0, 0).getTime();

const IP = 'a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1';
const EXP = 'a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2';
const QD = 'a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3';
const QW = 'a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4';
const QM = 'a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5';
const SLOW = 'a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6';
const FILED = 'a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7';
const LIVE = 'a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8';
type Families = ReturnType<typeof parsePrometheusTextFormat>;

const QUOTA = 3000;
/** Bytes per second: a burst of half a megabyte per worker when two share it. */
const RATE = 1_000_000;

function usersToml(filedEnabled = true): string {
  const quota = (name: string, secret: string, period: string) => `
[[users]]
name = "${name}"
secret = "${secret}"
quota = ${QUOTA}
quota_period = "${period}"
quota_reset_day = 1
`;
  return `
[[users]]
name = "ip"
secret = "${IP}"
max_ips = 1

[[users]]
name = "exp"
secret = "${EXP}"
expires = "${new Date(START + 3_600_000).toISOString()}"
${quota('qd', QD, 'daily')}${quota('qw', QW, 'weekly')}${quota('qm', QM, 'monthly')}
[[users]]
name = "slow"
secret = "${SLOW}"
rate = ${RATE}

[[users]]
name = "filed"
secret = "${FILED}"
enabled = ${filedEnabled}
`;
}

for (const mode of ['threads', 'processes'] as WorkerMode[]) {
  describe(`users: every limit across workers (${mode}, injected clock)`, () => {
    let dir = '';
    let dc: FakeDc;
    let sup: Supervisor;
    let now = START;
    let base = '';

    const config = (filedEnabled = true, userLabels = 100) => {
      const toml = supervisorToml(dc.port, mode, `state_dir = "${dir}"`).replace(
        '[upstream]',
        `${usersToml(filedEnabled)}\n[upstream]`,
      );
      const admin = `[admin]\nlisten = "127.0.0.1:0"\ntoken = "${TOKEN}"\n`;
      const metrics = `[metrics]\nlisten = "127.0.0.1:0"\nuser_labels = ${userLabels}\n`;
      return parseConfig(`${toml}\n${admin}\n${metrics}`, { file: join(dir, 'mtproxy.toml') });
    };

    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      // biome-ignore lint/suspicious/noExplicitAny: JSON answers are read field by field in the assertions
      return { status: res.status, data: (await res.json()) as Record<string, any> };
    };

    const port = () => sup.address('main').port;
    const open = (secret: string, localAddress?: string) =>
      connectObfuscated({ host: '127.0.0.1', port: port(), secret, dcId: 2, localAddress });
    /** `n` sessions of one user, each answered once (so each holds its lease). */
    const sessions = async (secret: string, n: number, localAddress?: string) => {
      const out: ObfuscatedConnection[] = [];
      for (let i = 0; i < n; i++) out.push(await open(secret, localAddress));
      assert.deepEqual(
        await Promise.all(out.map((s) => roundTrip(s))),
        out.map(() => true),
      );
      return out;
    };
    const relays = async (secret: string, localAddress?: string) => {
      const c = await open(secret, localAddress);
      const ok = await roundTrip(c);
      c.close();
      return ok;
    };
    const allEnded = (list: ObfuscatedConnection[], what: string, ms = 15_000) =>
      until(what, () => list.every((s) => s.socket.destroyed), ms);
    const closeAll = (list: ObfuscatedConnection[]) => {
      for (const s of list) s.close();
    };
    const setClock = async (at: number) => {
      now = at;
      await sup.setUserClock(at);
    };

    before(async () => {
      dc = await FakeDc.start({ keepFrames: 1000 });
      dir = mkdtempSync(join(tmpdir(), 'mtproxy-users-wl-'));
      sup = new Supervisor(config(), { log, stats: new Stats(), userClock: START });
      await sup.start();
      base = `http://127.0.0.1:${sup.operations.adminAddress()!.port}`;
    });

    after(async () => {
      await sup.stop(0);
      await dc.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('max_ips: the next address is refused while the first stays connected on both workers', async () => {
      const first = await sessions(IP, 6, '127.0.0.1');
      assert.equal(await relays(IP, '127.0.0.2'), false);
      assert.deepEqual(
        await Promise.all(first.map((s) => roundTrip(s))),
        first.map(() => true),
        'the first address keeps working',
      );
      closeAll(first);
      await until('the address slot given back', () => sup.counters.total() === 0);
      assert.equal(await relays(IP, '127.0.0.2'), true);
      await until('every counter back to zero', () => sup.counters.total() === 0);
    });

    it('expires: passing the expiry ends the open sessions within seconds and refuses new ones', async () => {
      const open = await sessions(EXP, 6);
      await setClock(START + 2 * 3_600_000);
      await allEnded(open, 'the sessions of the expired user ended');
      assert.equal(await relays(EXP), false);
    });

    for (const [name, secret, period] of [
      ['qd', QD, 'daily'],
      ['qw', QW, 'weekly'],
      ['qm', QM, 'monthly'],
    ] as const) {
      it(`a ${period} quota over both workers: reached, enforced, reset at the period boundary`, async () => {
        const list = await sessions(secret, 6);
        // 6 × 200 bytes each way (plus the first round trip) stays under the quota; a second round passes it.
        assert.deepEqual(
          await Promise.all(list.map((s) => roundTrip(s, 200))),
          list.map(() => true),
        );
        for (const s of list) if (!s.socket.destroyed) s.sendFrame(Buffer.alloc(400, 7));
        await allEnded(list, 'every session of the user ended');
        assert.equal(await relays(secret), false, 'refused while over quota');
        const before = periodAt(now, period, 1);
        // One second before the boundary: still the same period, still refused.
        await setClock(before.end - 1000);
        assert.equal(await relays(secret), false, 'refused until the boundary');
        await setClock(before.end + 1000);
        assert.equal(await relays(secret), true, 'the next period lets the user in');
        // Both periods on record (the workers flush every two seconds).
        const periods = async () => {
          const { data } = await api('GET', `/users/${name}/usage`);
          return (data.periods as Array<{ period: string }>).map((p) => p.period);
        };
        await until('both periods on record', async () => {
          const keys = await periods();
          return keys.includes(before.key) && keys.includes(periodAt(now, period, 1).key);
        });
      });
    }

    it('reset through the admin API lets a user over quota in again on every worker', async () => {
      const list = await sessions(QD, 6);
      for (const s of list) s.sendFrame(Buffer.alloc(1000, 7));
      await allEnded(list, 'every session of the user ended');
      assert.equal(await relays(QD), false, 'refused while over quota');
      const reset = await api('POST', '/users/qd/reset');
      assert.equal(reset.status, 200);
      // New sessions land on both workers: each of them lets the user in.
      const again = await sessions(QD, 6);
      closeAll(again);
    });

    it('rate: held while the clock stands still, split between the workers holding the sessions', async () => {
      const list = await sessions(SLOW, 8);
      // The rate is split between the workers that hold the user's sessions (each knows within a flush).
      const holders = async () => {
        await sup.refreshStats();
        return sup.statsSources().filter((s) => (s.userSessionsActive.get('slow') ?? 0) > 0).length;
      };
      await until(
        'the split known to every worker',
        async () => (await api('GET', '/users/slow')).data.usage.rate_workers === (await holders()),
        15_000,
      );
      const relayed = () =>
        dc.connections.reduce((n, c) => n + c.frames.filter((f) => f.length === 10_000).length, 0);
      const FRAMES = 100;
      const echoed = list.map(() => 0);
      list.forEach((s, i) => {
        s.onFrame = (f) => {
          if (f.payload.length === 10_000) echoed[i]++;
        };
      });
      for (const s of list) for (let i = 0; i < FRAMES; i++) s.sendFrame(Buffer.alloc(10_000, i + 1));
      // With the clock stopped the buckets never refill: once the flow stops, most of it is still held.
      let last = -1;
      while (relayed() !== last) {
        last = relayed();
        await wait(1000);
      }
      console.log(`${mode}: ${relayed()} of ${list.length * FRAMES} frames through with the clock stopped`);
      const total = list.length * FRAMES;
      assert.ok(relayed() < total / 2, `relayed ${relayed()} of ${total} frames with the clock stopped`);
      // Time passes for the buckets: everything gets through, and every echo comes back.
      await until(
        'everything relayed and echoed once time moves',
        async () => {
          await setClock(now + 60_000);
          return relayed() === total && echoed.every((n) => n === FRAMES);
        },
        60_000,
      );
      closeAll(list);
    });

    it('disable and delete through the admin API end the sessions at once, in every worker', async () => {
      const created = await api('POST', '/users', { name: 'live', secret: LIVE });
      assert.equal(created.status, 201, JSON.stringify(created.data));
      let list = await sessions(LIVE, 6);
      assert.equal((await api('POST', '/users/live/disable')).status, 200);
      // The API answers once every worker has applied the change: the sessions are ending already.
      await allEnded(list, 'the sessions of the disabled user ended', 3000);
      assert.equal(await relays(LIVE), false);
      assert.equal((await api('POST', '/users/live/enable')).status, 200);
      list = await sessions(LIVE, 6);
      assert.equal((await api('DELETE', '/users/live')).status, 200);
      await allEnded(list, 'the sessions of the deleted user ended', 3000);
      assert.equal(await relays(LIVE), false);
    });

    it('a reload that disables a file user ends its sessions in every worker', async () => {
      const list = await sessions(FILED, 6);
      await sup.applyConfig(config(false));
      await allEnded(list, 'the sessions of the disabled user ended', 3000);
      assert.equal(await relays(FILED), false);
      await sup.applyConfig(config(true));
      assert.equal(await relays(FILED), true);
    });

    it('Prometheus and the top users: per-user figures summed over the workers; the label capped or off', async () => {
      const scrape = async () => {
        await sup.refreshStats();
        const res = await fetch(`http://127.0.0.1:${sup.operations.metricsAddress()!.port}/metrics`);
        return parsePrometheusTextFormat(await res.text());
      };
      const value = (f: Families, name: string, labels: Record<string, string>) => {
        const m = f
          .find((x) => x.name === name)
          ?.metrics.find((x) =>
            Object.entries(labels).every(
              ([k, v]) => (x as { labels?: Record<string, string> }).labels?.[k] === v,
            ),
          );
        return m && 'value' in m ? Number(m.value) : undefined;
      };
      const held = await sessions(FILED, 4);
      let f: Families = [];
      await until('the open sessions in the series', async () => {
        f = await scrape();
        return value(f, 'mtproxy_user_sessions_active', { user: 'filed' }) === 4;
      });
      // The top users over every worker: by connections now, by this period's traffic.
      const top = (await api('GET', '/users/top')).data;
      assert.deepEqual(top.by_connections[0], { name: 'filed', sessions_active: 4 });
      assert.ok(
        top.by_traffic.some((u: { name: string }) => u.name === 'slow'),
        JSON.stringify(top),
      );
      const status = (await api('GET', '/status')).data;
      assert.deepEqual(status.users.by_connections[0], { name: 'filed', sessions_active: 4 });
      assert.ok(value(f, 'mtproxy_user_refusals_total', { user: 'ip', reason: 'max_ips' })! >= 1);
      assert.ok(value(f, 'mtproxy_user_refusals_total', { user: 'qd', reason: 'quota' })! >= 1);
      assert.ok(value(f, 'mtproxy_user_refusals_total', { user: 'exp', reason: 'expired' })! >= 1);
      assert.ok(value(f, 'mtproxy_user_received_bytes_total', { user: 'slow' })! >= 8 * 100 * 10_000);
      assert.ok(value(f, 'mtproxy_user_sent_bytes_total', { user: 'slow' })! >= 8 * 100 * 10_000);
      // Capped at two labels: the users with the most traffic keep theirs, the rest add up as "_other".
      await sup.applyConfig(config(true, 2));
      f = await scrape();
      const users = new Set(
        f
          .find((x) => x.name === 'mtproxy_user_received_bytes_total')!
          .metrics.map((m) => (m as { labels?: Record<string, string> }).labels?.user),
      );
      assert.equal(users.size, 3, [...users].join(','));
      assert.ok(users.has('slow') && users.has('_other'));
      await sup.applyConfig(config(true, 0));
      f = await scrape();
      assert.equal(
        value(f, 'mtproxy_user_received_bytes_total', { user: 'slow' }),
        undefined,
        'switched off',
      );
      assert.equal(value(f, 'mtproxy_user_sessions_active', { user: 'filed' }), undefined);
      await sup.applyConfig(config());
      closeAll(held);
    });

    it('every slot is given back and the usage is on disk', async () => {
      await until('every counter back to zero', () => sup.counters.total() === 0);
      const store = new UserStore(dir);
      try {
        const history = store.history('qd');
        assert.ok(
          history.some((row) => row.bytesUp + row.bytesDown >= QUOTA && row.sessions >= 6),
          JSON.stringify(history),
        );
      } finally {
        store.close();
      }
    });
  });
}
