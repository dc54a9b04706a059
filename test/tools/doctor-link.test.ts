/**
 * `doctor` checks that the host in the links leads to this server: an address of this machine, or (NAT, a
 * forwarded port) a connection to it that reaches our own listener, or the running proxy's. Loopback only:
 * the machine's address list is given by each test where the real one would decide.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { ProxyServer } from '../../src/server/proxy.ts';
import { type CheckResult, checkLinkHosts, runDoctor } from '../../src/tools/doctor.ts';
import { freePort } from '../helpers/ports.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';

const SECRET = '0123456789abcdef0123456789abcdef';
const TOKEN = 'doctor-link-token';

function config(listener: string, top = '') {
  return parseConfig(
    `${top}\n[[listeners]]\nname = "main"\nsecret = "${SECRET}"\nallowed_protocols = ["secure"]\n${listener}\n[upstream]\nmode = "direct"\n`,
  );
}

function only(results: CheckResult[], check = 'link main'): CheckResult {
  const r = results.filter((x) => x.check === check);
  assert.equal(r.length, 1, JSON.stringify(results));
  return r[0]!;
}

describe('doctor: the link host reaches this server', () => {
  const dir = suiteTempDir('mtproxy-doctor-link-');
  let proxy: ProxyServer;
  let proxyPort = 0;
  let adminPort = 0;

  before(async () => {
    adminPort = await freePort();
    const c = parseConfig(
      `state_dir = "state"\n[[listeners]]\nname = "main"\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\nallowed_protocols = ["secure"]\n[admin]\nlisten = "127.0.0.1:${adminPort}"\ntoken = "${TOKEN}"\n`,
      { baseDir: dir() },
    );
    const log = logger.child({ test: 'doctor-link' });
    log.level = 'silent';
    proxy = new ProxyServer(c, { log, stats: new Stats() });
    await proxy.start();
    proxyPort = proxy.address('main').port;
  });

  after(async () => {
    await proxy.stop(0);
  });

  it('a public address of this machine: ok without a connection', async () => {
    const port = await freePort();
    const c = config(`host = "0.0.0.0"\nport = ${port}\npublic_host = "proxy.example.net"`);
    const r = only(
      await checkLinkHosts(c, {
        resolveAddresses: async () => ['8.8.8.8'],
        machineAddresses: () => ['127.0.0.1', '8.8.8.8'],
      }),
    );
    assert.equal(r.status, 'ok');
    assert.match(r.message, /proxy\.example\.net:\d+ \(8\.8\.8\.8\), a public address of this machine/);
  });

  it('an address of this machine that is not public: a warning naming public_host', async () => {
    const port = await freePort();
    const r = only(await checkLinkHosts(config(`host = "127.0.0.1"\nport = ${port}`)));
    assert.equal(r.status, 'warn');
    assert.match(r.message, /127\.0\.0\.1:\d+, an address of this machine that is not public/);
    assert.match(r.fix ?? '', /public_host/);
  });

  it('not an address of this machine (NAT): ok when a connection to it reaches our own listener', async () => {
    const port = await freePort();
    const c = config(`host = "127.0.0.1"\nport = ${port}\npublic_host = "127.0.0.1"`);
    const r = only(await checkLinkHosts(c, { machineAddresses: () => [] }));
    assert.equal(r.status, 'ok', r.message);
    assert.match(r.message, /leads to this machine \(NAT or a forwarded port\)/);
  });

  it('a host that leads elsewhere: a warning, with the error', async () => {
    const port = await freePort();
    // The listener would take 127.0.0.2; the links say 127.0.0.1, where nothing listens on that port.
    const c = config(`host = "127.0.0.2"\nport = ${port}\npublic_host = "127.0.0.1"`);
    const r = only(await checkLinkHosts(c, { machineAddresses: () => [] }));
    assert.equal(r.status, 'warn');
    assert.match(r.message, /does not lead to this server \(ECONNREFUSED\)/);
    assert.match(r.fix ?? '', /forwarded/);
  });

  it('a name that does not resolve: a warning', async () => {
    const port = await freePort();
    const c = config(`host = "127.0.0.1"\nport = ${port}\npublic_host = "nowhere.invalid"`);
    const r = only(
      await checkLinkHosts(c, {
        resolveAddresses: () => Promise.reject(Object.assign(new Error('no'), { code: 'ENOTFOUND' })),
      }),
    );
    assert.equal(r.status, 'warn');
    assert.match(r.message, /does not resolve \(ENOTFOUND\)/);
  });

  it('while the proxy runs: its admin API tells that the connection reached its own listener', async () => {
    const admin = `[admin]\nlisten = "127.0.0.1:${adminPort}"\ntoken = "${TOKEN}"\n`;
    const c = config(`host = "127.0.0.1"\nport = ${proxyPort}\npublic_host = "127.0.0.1"`, admin);
    const r = only(await checkLinkHosts(c, { machineAddresses: () => [] }));
    assert.equal(r.status, 'ok', r.message);
    assert.match(r.message, /leads to this proxy's listener main/);

    // Another program on the port the config names: accepted, but not by the proxy.
    const other = net.createServer((s) => s.on('error', () => {}));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const otherPort = (other.address() as net.AddressInfo).port;
      const c2 = config(`host = "127.0.0.1"\nport = ${otherPort}\npublic_host = "127.0.0.1"`, admin);
      const r2 = only(await checkLinkHosts(c2, { machineAddresses: () => [], timeoutMs: 500 }));
      assert.equal(r2.status, 'warn');
      assert.match(r2.message, /accepted, but not by this proxy's listener main/);
    } finally {
      other.close();
    }
  });

  it('a dual-stack listener with a public IPv6: its IPv6 links are checked too', async () => {
    const port = await freePort();
    const c = config(`host = "::"\nport = ${port}`);
    const results = await checkLinkHosts(c, {
      publicAddress: async () => ({ host: '8.8.8.8', ipv6: '2a00:1450::1', source: 'interface' }),
      machineAddresses: () => ['8.8.8.8', '2a00:1450::1'],
    });
    assert.equal(only(results).status, 'ok');
    const v6 = only(results, 'link main IPv6');
    assert.equal(v6.status, 'ok');
    assert.match(v6.message, /\[2a00:1450::1\]:\d+, a public address of this machine/);
  });

  it('is part of the full doctor run, and never a failure', async () => {
    const port = await freePort();
    const c = config(`host = "127.0.0.1"\nport = ${port}`);
    const results = await runDoctor(c, { network: false, limitsText: null });
    assert.equal(only(results).status, 'warn');
  });
});
