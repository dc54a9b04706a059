import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildStatus, formatStatus } from '../../src/admin/status.ts';
import { parseConfig } from '../../src/config/load.ts';
import { Stats } from '../../src/metrics/stats.ts';

const config = parseConfig(`
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "0123456789abcdef0123456789abcdef"
[[listeners]]
name = "side"
host = "127.0.0.1"
port = 0
secret = "0123456789abcdef0123456789abcdef"
`);

test('status sums worker sources and takes reload facts from the first', () => {
  const main = new Stats();
  const w1 = new Stats();
  const w2 = new Stats();
  main.reloadsTotal = 2;
  main.reloadFailures = 1;
  main.lastReloadOk = false;
  main.lastReloadAt = Date.now();
  w1.listener('main').connectionsActive = 2;
  w1.listener('main').sessionsActive.padded = 2;
  w1.listener('main').sessionsTotal.padded = 5;
  w1.listener('main').fail('MTP_ERR_BAD');
  w2.listener('main').connectionsActive = 1;
  w2.listener('main').sessionsActive.tls = 1;
  w2.listener('main').sessionsTotal.tls = 1;
  w2.listener('main').fail('MTP_ERR_BAD');
  w2.listener('main').reject('max_connections(listener)');
  w1.dc(2).linksActive = 2;
  w2.dc(2).linksActive = 1;
  w2.dc(4).connectErrors = 3;

  const s = buildStatus(config, [main, w1, w2], { direct: { started: true } }, Date.now(), (name) =>
    name === 'main' ? 4443 : null,
  );
  assert.equal(s.sessions.active, 3);
  assert.equal(s.sessions.total, 6);
  const [m, side] = s.listeners;
  assert.equal(m.port, 4443);
  assert.equal(side.port, 0);
  assert.equal(m.connectionsActive, 3);
  assert.deepEqual(m.sessions.padded, { active: 2, total: 5 });
  assert.deepEqual(m.handshakeFailures, { MTP_ERR_BAD: 2 });
  assert.deepEqual(m.policyRejections, { 'max_connections(listener)': 1 });
  assert.deepEqual(s.dcs, [
    { dc: 2, connectionsActive: 3, connects: 0, connectErrors: 0 },
    { dc: 4, connectionsActive: 0, connects: 0, connectErrors: 3 },
  ]);
  assert.deepEqual(s.reloads.total, 2);
  assert.equal(s.reloads.lastOk, false);
  assert.deepEqual(s.upstream, { mode: 'auto', direct: { started: true } });

  const text = formatStatus(s);
  assert.match(text, /sessions 3 active, 6 total/);
  assert.match(text, /main 127\.0\.0\.1:4443 \[classic,secure,tls\] connections 3 active/);
  assert.match(text, /handshake failures: MTP_ERR_BAD 2/);
  assert.match(text, /dc 4: 0 open, 0 connects, 3 connect errors/);
});

test('status carries failures by stage and the client-hello fingerprints, summed over workers', () => {
  const w1 = new Stats();
  const w2 = new Stats();
  w1.listener('main').fail('MTP_ERR_TLS_BAD_DIGEST');
  w2.listener('main').fail('MTP_ERR_TLS_BAD_DIGEST');
  w2.listener('main').failAt('tcp');
  w1.listener('main').fingerprint('t13d1516h2_8daaf6152771_d8a2da3f94cd');
  w2.listener('main').fingerprint('t13d1516h2_8daaf6152771_d8a2da3f94cd');
  w2.listener('main').fingerprint('t13i2013h2_a09f3c656075_9bf9b396e898');
  const s = buildStatus(config, [w1, w2]);
  const m = s.listeners[0];
  assert.deepEqual(m.handshakeStages, { digest: 2, tcp: 1 });
  assert.deepEqual(m.helloFingerprints, {
    t13d1516h2_8daaf6152771_d8a2da3f94cd: 2,
    t13i2013h2_a09f3c656075_9bf9b396e898: 1,
  });
  const text = formatStatus(s);
  assert.match(text, /failures by stage: digest 2, tcp 1/);
  assert.match(
    text,
    /client hellos \(JA4\): t13d1516h2_8daaf6152771_d8a2da3f94cd 2, t13i2013h2_a09f3c656075_9bf9b396e898 1/,
  );
});

test('status shows the middle-mode counters per DC: stalled links, fallbacks to direct, migrations', () => {
  const w1 = new Stats();
  const w2 = new Stats();
  w1.dc(2).stalledLinks = 1;
  w2.dc(2).stalledLinks = 2;
  w2.dc(2).middleFallbacks = 5;
  w1.dc(2).migrations = 3;
  w1.dc(2).migrationFailures = 1;
  w2.dc(4).connects = 1;
  const s = buildStatus(config, [w1, w2]);
  assert.deepEqual(s.dcs[0]?.middle, {
    stalledLinks: 3,
    fallbacks: 5,
    migrations: 3,
    migrationFailures: 1,
    idleLinksClosed: 0,
  });
  assert.equal(s.dcs[1]?.middle, undefined);
  const text = formatStatus(s);
  assert.match(
    text,
    /dc 2: 0 open, 0 connects, 0 connect errors\n {4}middle: 3 links stalled, 5 clients served directly \(fallback\), 3 clients moved \(1 could not be\), 0 idle links closed/,
  );
  assert.doesNotMatch(text, /dc 4:[^\n]*\n {4}middle/);
});
