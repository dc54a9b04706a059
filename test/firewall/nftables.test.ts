/**
 * The nftables script of `mtproxy firewall`, as text: one table of its own, one SYN limit per listener port
 * and family with a TCP reset for the excess, the MSS clamp only when asked for.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { parseSynRate } from '../../src/config/syn-rate.ts';
import {
  firewallTargets,
  renderApplyScript,
  renderRemoveScript,
  renderTable,
  setTimeoutSeconds,
} from '../../src/firewall/nftables.ts';

const secret = '0123456789abcdef0123456789abcdef';

function config(extra = '', listeners = `[[listeners]]\nport = 443\nsecret = "${secret}"\n`) {
  return parseConfig(`${listeners}\n${extra}`);
}

describe('firewall: config', () => {
  it('defaults fit the apps: 48 per minute, burst 24, no MSS clamp, table inet mtproxy', () => {
    const { firewall } = config();
    assert.deepEqual(firewall, {
      table: 'mtproxy',
      synRate: { count: 48, per: 'minute' },
      synBurst: 24,
      maxSources: 65536,
      mssClamp: 0,
    });
  });

  it('reads rate, burst, clamp and table name, and refuses bad values with one line', () => {
    const fw = config(
      '[firewall]\nsyn_rate = "3/second"\nsyn_burst = 32\nmss_clamp = 536\ntable = "mtp_fw"\n',
    ).firewall;
    assert.deepEqual(fw.synRate, { count: 3, per: 'second' });
    assert.equal(fw.synBurst, 32);
    assert.equal(fw.mssClamp, 536);
    assert.equal(fw.table, 'mtp_fw');
    assert.equal(config('[firewall]\nmss_clamp = "off"\n').firewall.mssClamp, 0);
    assert.throws(() => config('[firewall]\nsyn_rate = "fast"\n'), /firewall\.syn_rate: expected a rate/);
    assert.throws(() => config('[firewall]\nsyn_rate = "0/second"\n'), /firewall\.syn_rate/);
    assert.throws(() => config('[firewall]\nsyn_burst = 0\n'), /firewall\.syn_burst/);
    assert.throws(() => config('[firewall]\nmss_clamp = 40\n'), /firewall\.mss_clamp/);
    assert.throws(() => config('[firewall]\ntable = "x; flush ruleset"\n'), /firewall\.table/);
    assert.throws(() => config('[firewall]\nburst = 3\n'), /firewall\.burst: unknown key/);
  });

  it('parses rates', () => {
    assert.deepEqual(parseSynRate('48/minute'), { count: 48, per: 'minute' });
    assert.deepEqual(parseSynRate(' 2 / second '), { count: 2, per: 'second' });
    assert.equal(parseSynRate('2/day'), null);
    assert.equal(parseSynRate(2), null);
  });
});

describe('firewall: ruleset text', () => {
  const two = `[[listeners]]\nport = 443\nsecret = "${secret}"\n[[listeners]]\nname = "alt"\nhost = "192.0.2.7"\nport = 8443\nsecret = "${secret}"\n[[listeners]]\nname = "any"\nport = 0\nsecret = "${secret}"\n`;

  it('one limit per listener port and family; a fixed address only gets its own family; port 0 none', () => {
    const c = config('', two);
    const targets = firewallTargets(c.listeners);
    assert.deepEqual(targets, [
      { listener: 'main', host: null, port: 443 },
      { listener: 'alt', host: '192.0.2.7', port: 8443 },
    ]);
    const table = renderTable(c.firewall, targets);
    assert.match(table, /^table inet mtproxy \{\n/);
    const rules = table.split('\n').filter((l) => l.includes('reject with tcp reset'));
    assert.equal(rules.length, 3);
    assert.match(
      rules[0]!,
      /^\t\ttcp dport 443 tcp flags & \(fin \| syn \| rst \| ack\) == syn update @syn4_0 \{ ip saddr limit rate over 48\/minute burst 24 packets \} reject with tcp reset/,
    );
    assert.match(
      rules[1]!,
      /tcp dport 443 .* update @syn6_0 \{ ip6 saddr limit rate over 48\/minute burst 24 packets \}/,
    );
    assert.match(rules[2]!, /^\t\tip daddr 192\.0\.2\.7 tcp dport 8443 .* update @syn4_1 \{ ip saddr /);
    assert.match(table, /type filter hook input priority filter - 5; policy accept;/);
    assert.match(
      table,
      /set syn4_0 \{\n\t\ttype ipv4_addr\n\t\tsize 65536\n\t\tflags dynamic,timeout\n\t\ttimeout 60s\n/,
    );
    assert.doesNotMatch(table, /drop/, 'excess SYNs are reset, never dropped');
    assert.doesNotMatch(table, /maxseg|chain output/, 'no MSS clamp unless configured');
  });

  it('the MSS clamp lowers the SYN-ACK MSS of each listener port, only when larger', () => {
    const c = config('[firewall]\nmss_clamp = 536\n');
    const table = renderTable(c.firewall, firewallTargets(c.listeners));
    assert.match(table, /chain output \{\n\t\ttype filter hook output priority mangle; policy accept;/);
    assert.match(
      table,
      /meta nfproto ipv4 tcp sport 443 tcp flags & \(syn \| ack\) == syn \| ack tcp option maxseg size > 536 tcp option maxseg size set 536/,
    );
  });

  it('apply is one idempotent transaction on its own table; remove deletes exactly that table', () => {
    const c = config('[firewall]\ntable = "mtp_test"\n');
    const script = renderApplyScript(c.firewall, firewallTargets(c.listeners));
    const statements = script.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    assert.deepEqual(statements.slice(0, 3), [
      'table inet mtp_test',
      'delete table inet mtp_test',
      'table inet mtp_test {',
    ]);
    assert.doesNotMatch(script, /flush ruleset|\bip filter\b|table ip /);
    assert.equal(renderRemoveScript(c.firewall), 'delete table inet mtp_test\n');
  });

  it('an idle source is forgotten no sooner than its bucket refills', () => {
    const fw = config().firewall;
    assert.equal(setTimeoutSeconds(fw), 60);
    assert.equal(setTimeoutSeconds({ ...fw, synRate: { count: 1, per: 'hour' }, synBurst: 5 }), 5 * 3600);
  });
});
