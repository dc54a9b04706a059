import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/load.ts';
import { LocalCounterStore } from '../../src/policy/counters.ts';
import { periodAt } from '../../src/users/period.ts';
import { UserRegistry, type UserState } from '../../src/users/registry.ts';
import { UserStore } from '../../src/users/store.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';

function configWith(users: string, top = '') {
  return parseConfig(`${top}
[[listeners]]
secret = "0123456789abcdef0123456789abcdef"
port = 0
${users}
`);
}

function manualClock(at: number) {
  let t = at;
  return { now: () => t, set: (v: number) => (t = v) };
}

const session = () => {
  const ended: string[] = [];
  return { ended, finish: (reason: string) => ended.push(reason) };
};

function admitOk(r: UserRegistry, u: UserState, ip = '127.0.0.1', s = session()) {
  const a = r.admit(u, 'main', ip, s);
  assert.ok(!(a instanceof Promise));
  if (!a.ok) assert.fail(`refused: ${a.reason}`);
  return a.lease;
}

describe('users: registry', () => {
  const dir = suiteTempDir('mtp-users-reg-');

  it('a daily quota resets at local midnight (injected clock); the old period stays in the history', () => {
    const clock = manualClock(new Date(2026, 11, 7, 23, 0).getTime());
    const store = new UserStore(null);
    const r = new UserRegistry({ clock, store });
    r.applyConfig(configWith('[[users]]\nname = "a"\nquota = 1000\nquota_period = "daily"'));
    const u = r.get('a')!;
    const lease = admitOk(r, u);
    lease.fromClient(600);
    lease.toClient(400);
    r.tick();
    lease.release();
    const refused = r.admit(u, 'main', '127.0.0.1', session());
    assert.deepEqual(refused, { ok: false, reason: 'quota' });
    clock.set(new Date(2026, 11, 8, 0, 0, 1).getTime());
    admitOk(r, u).release();
    r.flush();
    const history = store.history('a');
    assert.deepEqual(
      history.map((h) => [h.period, h.bytesUp + h.bytesDown]),
      [
        ['2026-12-08', 0],
        ['2026-12-07', 1000],
      ],
    );
    r.close();
  });

  it('reaching the quota ends the open sessions at the next tick', () => {
    const r = new UserRegistry({ store: new UserStore(null) });
    r.applyConfig(configWith('[[users]]\nname = "a"\nquota = "1kB"\nquota_period = "total"'));
    const s = session();
    const lease = admitOk(r, r.get('a')!, '127.0.0.1', s);
    lease.toClient(1000);
    r.tick();
    assert.deepEqual(s.ended, ['user_quota']);
    assert.ok(lease.released);
  });

  it('max_ips: the first connection of an address takes its slot; counters return to zero', () => {
    const counters = new LocalCounterStore();
    const r = new UserRegistry({ counters });
    r.applyConfig(configWith('[[users]]\nname = "a"\nmax_ips = 2\nmax_connections = 3'));
    const u = r.get('a')!;
    const l1 = admitOk(r, u, '10.0.0.1');
    const l2 = admitOk(r, u, '10.0.0.1');
    const l3 = admitOk(r, u, '10.0.0.2');
    assert.deepEqual(r.admit(u, 'main', '10.0.0.3', session()), { ok: false, reason: 'max_connections' });
    l2.release();
    assert.deepEqual(r.admit(u, 'main', '10.0.0.3', session()), { ok: false, reason: 'max_ips' });
    for (const l of [l1, l2, l3]) {
      l.release();
      l.release();
    }
    assert.equal(counters.size, 0);
    assert.equal(r.outstanding, 0);
  });

  it('max_ips: an address keeps its slot while any of its sessions is open, released exactly once', () => {
    const counters = new LocalCounterStore();
    const r = new UserRegistry({ counters });
    r.applyConfig(configWith('[[users]]\nname = "a"\nmax_ips = 1'));
    const u = r.get('a')!;
    const first = admitOk(r, u, '10.0.0.1');
    const second = admitOk(r, u, '10.0.0.1');
    first.release();
    assert.deepEqual(r.admit(u, 'main', '10.0.0.2', session()), { ok: false, reason: 'max_ips' });
    const third = admitOk(r, u, '10.0.0.1');
    second.release();
    assert.deepEqual(r.admit(u, 'main', '10.0.0.2', session()), { ok: false, reason: 'max_ips' });
    third.release();
    third.release();
    assert.equal(counters.size, 0);
    admitOk(r, u, '10.0.0.2').release();
    assert.equal(counters.size, 0);
    assert.equal(r.outstanding, 0);
  });

  it('usage is kept in the state database over a restart', () => {
    const config = configWith('[[users]]\nname = "a"', `state_dir = "${dir()}"`);
    const first = new UserRegistry({ store: new UserStore(dir()) });
    first.applyConfig(config);
    const secret = first.get('a')!.secret;
    const lease = admitOk(first, first.get('a')!);
    lease.fromClient(123);
    lease.toClient(456);
    lease.release();
    first.close();
    first.store!.close();
    const second = new UserRegistry({ store: new UserStore(dir()) });
    second.applyConfig(config);
    const u = second.get('a')!;
    assert.ok(u.secret.equals(secret), 'the generated secret is kept');
    assert.equal(u.storedUp, 123);
    assert.equal(u.storedDown, 456);
    assert.equal(u.storedSessions, 1);
    assert.equal(u.storedIps, 1);
    second.close();
    second.store!.close();
  });

  it('quota accounting: what two workers count adds up exactly in the database', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 1e6 }), fc.boolean()), {
          maxLength: 100,
        }),
        (steps) => {
          const store = new UserStore(null);
          const config = configWith('[[users]]\nname = "a"\nquota_period = "total"');
          const workers = [new UserRegistry({ store }), new UserRegistry({ store })];
          for (const w of workers) w.applyConfig(config);
          const leases = workers.map((w) => admitOk(w, w.get('a')!));
          let up = 0;
          let down = 0;
          for (const [which, dirUp, n, flush] of steps) {
            const lease = leases[which ? 1 : 0];
            if (dirUp) {
              lease.fromClient(n);
              up += n;
            } else {
              lease.toClient(n);
              down += n;
            }
            if (flush) workers[which ? 1 : 0].flush();
          }
          // A worker learns the others' share when it flushes: after one round every count is on disk,
          // after a second every worker has read it back.
          for (const w of workers) w.flush();
          for (const w of workers) w.flush();
          const row = store.usage('a', 'total');
          assert.equal(row.bytesUp, up);
          assert.equal(row.bytesDown, down);
          for (const w of workers) assert.equal(w.get('a')!.used, up + down);
          store.close();
        },
      ),
      { numRuns: 50 },
    );
  });

  it('usage history: the current period and at least the twelve months before it are kept', () => {
    const now = new Date(2026, 11, 7, 12, 0).getTime();
    const store = new UserStore(null);
    const r = new UserRegistry({ store, clock: manualClock(now) });
    r.applyConfig(
      configWith(
        '[[users]]\nname = "m"\nquota_period = "monthly"\n[[users]]\nname = "d"\nquota_period = "daily"\n[[users]]\nname = "t"\nquota_period = "total"',
      ),
    );
    const deltas = [];
    // Thirty months of monthly periods, two years of daily ones, and the never-ending total.
    for (let m = 0; m < 30; m++) {
      const key = periodAt(new Date(2026, 11 - m, 15).getTime(), 'monthly', 1).key;
      deltas.push({ user: 'm', period: key, up: 1, down: 1, sessions: 1, lastSeen: now, ips: ['10.0.0.1'] });
    }
    for (let d = 0; d < 730; d++) {
      const key = periodAt(new Date(2026, 11, 7 - d, 12).getTime(), 'daily', 1).key;
      deltas.push({ user: 'd', period: key, up: 1, down: 0, sessions: 0, lastSeen: now, ips: ['10.0.0.1'] });
    }
    deltas.push({ user: 't', period: 'total', up: 5, down: 5, sessions: 1, lastSeen: 1, ips: [] });
    store.addUsage(deltas);
    r.flush();
    const monthly = store.history('m');
    assert.equal(monthly.length, 13, 'this month and the twelve before it');
    assert.equal(monthly[0].period, '2026-12-01');
    assert.equal(monthly[12].period, '2025-12-01');
    const daily = store.history('d');
    assert.ok(daily.length >= 366, `${daily.length} days kept`);
    assert.ok(daily.length < 730, 'older days are dropped');
    assert.ok(daily.at(-1)!.period <= '2025-12-07');
    assert.equal(daily.at(-1)!.ips, 1, 'the addresses of a kept period stay');
    assert.deepEqual(
      store.history('t').map((h) => h.period),
      ['total'],
    );
    store.close();
  });

  it('a file user wins over a stored user of the same name', () => {
    const store = new UserStore(null);
    const r = new UserRegistry({ store });
    r.applyConfig(configWith('[[users]]\nname = "a"\nmax_ips = 1'));
    store.saveUser({ ...r.get('a')!.config, maxIps: 9, secret: null });
    store.saveUser({ ...r.get('a')!.config, name: 'b', secret: null });
    r.reload();
    assert.equal(r.get('a')!.config.maxIps, 1);
    assert.equal(r.get('a')!.source, 'file');
    assert.equal(r.get('b')!.source, 'api');
  });

  it("a user's rate is split between the workers holding its sessions, and comes back when one leaves", () => {
    const store = new UserStore(null);
    const config = configWith('[[users]]\nname = "r"\nrate = 100000');
    const [w1, w2] = ['w1', 'w2'].map((workerId) => new UserRegistry({ store, workerId }));
    for (const w of [w1, w2]) w.applyConfig(config);
    const [r1, r2] = [w1.get('r')!, w2.get('r')!];
    assert.equal(w1.rateWorkers(r1), 0);
    const a = admitOk(w1, r1);
    assert.equal(r1.up.rate, 100000);
    // The second worker's first session takes its share at once; the first learns at its next flush.
    const b = admitOk(w2, r2);
    assert.deepEqual([r2.up.rate, r2.down.rate], [50000, 50000]);
    w1.flush();
    assert.deepEqual([r1.up.rate, r1.down.rate], [50000, 50000]);
    assert.equal(w1.rateWorkers(r1), 2);
    // More sessions on one worker do not change the split (fair between workers, then between sessions).
    const c = admitOk(w2, r2);
    w2.flush();
    assert.equal(r2.up.rate, 50000);
    b.release();
    c.release();
    w2.flush();
    w1.flush();
    assert.equal(r1.up.rate, 100000, 'the whole rate back');
    // A worker that stops withdraws its share.
    admitOk(w2, r2);
    w1.flush();
    assert.equal(r1.up.rate, 50000);
    w2.close();
    w1.flush();
    assert.equal(r1.up.rate, 100000);
    a.release();
    w1.flush();
    assert.equal(w1.rateWorkers(r1), 0);
    store.close();
  });
});
