import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicyKey } from '../../src/config/policy-keys.ts';
import type { PolicyRule } from '../../src/config/types.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { LocalCounterStore } from '../../src/policy/counters.ts';
import { PolicyEngine } from '../../src/policy/engine.ts';
import { PolicyTables } from '../../src/policy/tables.ts';
import type { PolicyDecision, PolicySubject, PolicyTicket } from '../../src/session/types.ts';

function maxConn(keys: string[], limit: number): PolicyRule {
  return {
    rule: 'max_connections',
    keys: keys.map(parsePolicyKey),
    limit,
    raw: `max_connections(${keys.join(',')})`,
  };
}
function tableRule(rule: 'in_table' | 'not_in_table', key: string, table: string): PolicyRule {
  return { rule, key: parsePolicyKey(key), table, raw: `${rule}(${key},${table})` };
}
function subject(remoteAddress: string, tlsDomain: string | null = null, listener = 'main'): PolicySubject {
  return { listener, remoteAddress, tlsDomain };
}
function ticketOf(d: PolicyDecision): PolicyTicket {
  assert.ok(d.ok, `expected admission, got ${JSON.stringify(d)}`);
  return d.ticket;
}

function setup(rules: PolicyRule[]) {
  const counters = new LocalCounterStore();
  const tables = new PolicyTables(null);
  const stats = new Stats();
  const engine = new PolicyEngine({ rules, tables, counters, stats });
  return { counters, tables, stats, engine };
}

test('no rules admits everyone', () => {
  const { engine, counters } = setup([]);
  const t = ticketOf(engine.admit(subject('1.2.3.4')));
  assert.equal(engine.outstanding, 1);
  t.release();
  t.release();
  assert.equal(engine.outstanding, 0);
  assert.equal(counters.size, 0);
});

test('max_connections over listener + client_ipv4', () => {
  const { engine, counters, stats } = setup([maxConn(['listener', 'client_ipv4'], 2)]);
  const a = ticketOf(engine.admit(subject('10.0.0.1')));
  const b = ticketOf(engine.admit(subject('::ffff:10.0.0.1')));
  const third = engine.admit(subject('10.0.0.1'));
  assert.equal(third.ok, false);
  assert.equal(third.ok === false && third.rule, 'max_connections(listener,client_ipv4)');
  assert.equal(stats.listener('main').policyRejections.size, 0, 'the session counts refused admissions');
  // Another address and another listener have their own counters.
  const other = ticketOf(engine.admit(subject('10.0.0.2')));
  const otherListener = ticketOf(engine.admit(subject('10.0.0.1', null, 'second')));
  // IPv6 peers: client_ipv4 does not apply, the whole rule is skipped.
  for (let i = 0; i < 5; i++) ticketOf(engine.admit(subject('2001:db8::1'))).release();
  a.release();
  a.release(); // idempotent: must not free b's slot
  ticketOf(engine.admit(subject('10.0.0.1'))).release();
  const again = ticketOf(engine.admit(subject('10.0.0.1')));
  assert.equal(counters.get('listener,client_ipv4=main,10.0.0.1'), 2);
  for (const t of [b, again, other, otherListener]) t.release();
  assert.equal(counters.size, 0);
  assert.equal(engine.outstanding, 0);
});

test('max_connections by IPv4 /24 and IPv6 /64 subnets', () => {
  const { engine, counters } = setup([maxConn(['client_ipv4/24'], 1), maxConn(['client_ipv6/64'], 1)]);
  const a = ticketOf(engine.admit(subject('192.0.2.10')));
  assert.equal(engine.admit(subject('192.0.2.200')).ok, false);
  const b = ticketOf(engine.admit(subject('192.0.3.10')));
  const c = ticketOf(engine.admit(subject('2001:db8:0:1::1')));
  assert.equal(engine.admit(subject('2001:db8:0:1::ffff')).ok, false);
  const d = ticketOf(engine.admit(subject('2001:db8:0:2::1')));
  for (const t of [a, b, c, d]) t.release();
  assert.equal(counters.size, 0);
  assert.equal(engine.outstanding, 0);
});

test('max_connections by tls_domain skips non-TLS connections', () => {
  const { engine, counters } = setup([maxConn(['tls_domain'], 1)]);
  const a = ticketOf(engine.admit(subject('1.1.1.1', 'Cover.example')));
  assert.equal(engine.admit(subject('1.1.1.2', 'cover.example')).ok, false);
  const plain = [1, 2, 3].map(() => ticketOf(engine.admit(subject('1.1.1.3'))));
  a.release();
  for (const t of plain) t.release();
  assert.equal(counters.size, 0);
});

test('a later failing rule gives back counters taken by earlier rules', () => {
  const { engine, counters, tables } = setup([
    maxConn(['listener'], 10),
    maxConn(['client_ipv4'], 10),
    tableRule('not_in_table', 'client_ipv4', 'blocked'),
  ]);
  tables.add('blocked', '6.6.6.6');
  const ok = ticketOf(engine.admit(subject('7.7.7.7')));
  for (let i = 0; i < 20; i++) {
    const d = engine.admit(subject('6.6.6.6'));
    assert.equal(d.ok, false);
    assert.equal(d.ok === false && d.rule, 'not_in_table(client_ipv4,blocked)');
  }
  assert.equal(counters.get('listener=main'), 1);
  assert.equal(counters.get('client_ipv4=6.6.6.6'), 0);
  ok.release();
  assert.equal(counters.size, 0);
  assert.equal(engine.outstanding, 0);
});

test('in_table whitelist by tls_domain; non-TLS connections pass', () => {
  const { engine, tables } = setup([tableRule('in_table', 'tls_domain', 'customers')]);
  tables.add('customers', 'a.example');
  assert.equal(engine.admit(subject('1.2.3.4', 'A.example')).ok, true);
  assert.equal(engine.admit(subject('1.2.3.4', 'b.example')).ok, false);
  assert.equal(engine.admit(subject('1.2.3.4', null)).ok, true);
  tables.add('customers', 'b.example');
  assert.equal(engine.admit(subject('1.2.3.4', 'b.example')).ok, true);
});

test('not_in_table by subnet, IPv6 and listener', () => {
  const { engine, tables } = setup([
    tableRule('not_in_table', 'client_ipv4/16', 'nets'),
    tableRule('not_in_table', 'client_ipv6', 'v6'),
    tableRule('not_in_table', 'listener', 'closed'),
  ]);
  tables.add('nets', '172.16.0.0/16');
  tables.add('v6', '2001:db8::1');
  assert.equal(engine.admit(subject('172.16.9.9')).ok, false);
  assert.equal(engine.admit(subject('::ffff:172.16.9.9')).ok, false);
  assert.equal(engine.admit(subject('172.17.9.9')).ok, true);
  assert.equal(engine.admit(subject('2001:db8::1')).ok, false);
  assert.equal(engine.admit(subject('2001:db8::2')).ok, true);
  tables.add('closed', 'side');
  assert.equal(engine.admit(subject('8.8.8.8', null, 'side')).ok, false);
  assert.equal(engine.admit(subject('8.8.8.8', null, 'main')).ok, true);
});

test('allowFronting checks table rules only and never takes counters', () => {
  const { engine, counters, tables, stats } = setup([
    maxConn(['client_ipv4'], 0),
    tableRule('in_table', 'tls_domain', 'front_ok'),
  ]);
  tables.add('front_ok', 'good.example');
  assert.equal(engine.allowFronting(subject('1.2.3.4', 'good.example')), true);
  assert.equal(engine.allowFronting(subject('1.2.3.4', 'evil.example')), false);
  assert.equal(engine.admit(subject('1.2.3.4', 'good.example')).ok, false, 'limit 0 admits nobody');
  assert.equal(counters.size, 0);
  assert.equal(stats.listener('main').policyRejections.get('in_table(tls_domain,front_ok)'), 1);
});

test('rules swapped on reload: old tickets release what they took', () => {
  const { engine, counters } = setup([maxConn(['client_ipv4'], 1)]);
  const old = ticketOf(engine.admit(subject('9.9.9.9')));
  engine.setRules([maxConn(['listener'], 1)]);
  assert.deepEqual(
    engine.rules.map((r) => r.rule),
    ['max_connections'],
  );
  const fresh = ticketOf(engine.admit(subject('9.9.9.9')));
  assert.equal(engine.admit(subject('9.9.9.8')).ok, false);
  old.release();
  assert.equal(counters.get('client_ipv4=9.9.9.9'), 0);
  assert.equal(counters.get('listener=main'), 1);
  fresh.release();
  assert.equal(counters.size, 0);
  // Raising the limit applies to new connections at once.
  engine.setRules([maxConn(['listener'], 3)]);
  const many = [1, 2, 3].map(() => ticketOf(engine.admit(subject('9.9.9.9'))));
  assert.equal(engine.admit(subject('9.9.9.9')).ok, false);
  for (const t of many) t.release();
  assert.equal(counters.size, 0);
  assert.equal(engine.outstanding, 0);
});

test('a configured rule name labels its rejections', () => {
  const { engine, stats } = setup([{ ...maxConn(['listener'], 0), raw: 'no-entry' }]);
  const d = engine.admit(subject('1.2.3.4'));
  assert.equal(d.ok === false && d.rule, 'no-entry');
  engine.setRules([{ rule: 'in_table', key: { kind: 'listener' }, table: 'open', raw: 'only-open' }]);
  assert.equal(engine.allowFronting(subject('1.2.3.4')), false);
  assert.equal(stats.listener('main').policyRejections.get('only-open'), 1);
});

test('tableKey reports the key a table is used with', () => {
  const { engine } = setup([maxConn(['listener'], 1), tableRule('in_table', 'client_ipv4/24', 'nets')]);
  assert.deepEqual(engine.tableKey('nets'), { kind: 'client_ipv4_subnet', bits: 24 });
  assert.equal(engine.tableKey('other'), null);
  assert.deepEqual(engine.referencedTables(), ['nets']);
});

test('random admit/release sequences never leak counters', () => {
  const { engine, counters } = setup([
    maxConn(['listener', 'client_ipv4'], 3),
    maxConn(['client_ipv4/24'], 5),
    maxConn(['tls_domain'], 4),
  ]);
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const open: PolicyTicket[] = [];
  for (let i = 0; i < 2000; i++) {
    if (open.length > 0 && rnd(3) === 0) {
      open.splice(rnd(open.length), 1)[0].release();
      continue;
    }
    const d = engine.admit(subject(`10.0.${rnd(3)}.${rnd(4)}`, rnd(2) ? `d${rnd(3)}.example` : null));
    if (d.ok) open.push(d.ticket);
  }
  for (const t of open) t.release();
  assert.equal(counters.size, 0);
  assert.equal(engine.outstanding, 0);
});

test('rules keyed only on the listener or TLS domain never read the peer address', () => {
  const { engine, tables, counters } = setup([
    maxConn(['listener'], 5),
    tableRule('not_in_table', 'tls_domain', 'banned'),
  ]);
  tables.add('banned', 'bad.example');
  let reads = 0;
  const peerless = (tlsDomain: string): PolicySubject => ({
    listener: 'main',
    tlsDomain,
    get remoteAddress() {
      reads++;
      return '10.0.0.1';
    },
  });
  ticketOf(engine.admit(peerless('good.example'))).release();
  assert.equal(engine.admit(peerless('bad.example')).ok, false);
  assert.equal(engine.allowFronting(peerless('bad.example')), false);
  assert.equal(reads, 0);
  assert.equal(counters.size, 0);

  engine.setRules([tableRule('not_in_table', 'client_ipv4', 'banned')]);
  assert.equal(engine.allowFronting(peerless('good.example')), true);
  assert.equal(reads, 1);
});
