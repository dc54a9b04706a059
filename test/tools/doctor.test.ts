/**
 * `mtproxy doctor` against loopback targets only: a local HTTPS "cover site" with a private CA, plain TCP
 * listeners standing in for Telegram DCs and middle proxies, files for Telegram's config.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import {
  type CheckResult,
  checkBind,
  checkFdLimit,
  checkHealth,
  doctorExitCode,
  formatResult,
  parseFdLimit,
  runDoctor,
} from '../../src/tools/doctor.ts';
import { type HttpsSite, SITE_DOMAIN, startHttpsSite } from '../helpers/https-site.ts';

const fixtures = new URL('./fixtures/', import.meta.url);
const ca = readFileSync(new URL('ca.pem', fixtures));
const secret = '0123456789abcdef0123456789abcdef';
const limitsOk =
  'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1048576              1048576              files\n';
const limitsLow = 'Max open files            1024                 4096                 files\n';

const servers: net.Server[] = [];
const scratch: string[] = [];
let cover: HttpsServer;
let coverPort = 0;
let dcPorts: number[] = [];
let closedPort = 0;
let plainTcpPort = 0;

function listen(server: net.Server): Promise<number> {
  servers.push(server);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
  );
}

/** A TCP server that accepts and immediately closes (a DC or middle proxy for reachability purposes). */
function acceptAndClose(): net.Server {
  return net.createServer((s) => s.destroy());
}

before(async () => {
  cover = createHttpsServer(
    {
      key: readFileSync(new URL('cover.key', fixtures)),
      cert: readFileSync(new URL('cover.pem', fixtures)),
      minVersion: 'TLSv1.2',
    },
    (_req, res) => res.end('<html>cover</html>'),
  );
  coverPort = await listen(cover);
  dcPorts = await Promise.all([1, 2, 3, 4, 5].map(() => listen(acceptAndClose())));
  // A port that was free a moment ago: connections to it are refused.
  const probe = net.createServer();
  closedPort = await new Promise<number>((resolve) =>
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    }),
  );
  // Speaks no TLS at all.
  plainTcpPort = await listen(net.createServer((s) => s.end('HTTP/1.0 400 Bad Request\r\n\r\n')));
});

after(() => {
  for (const s of servers) s.close();
  cover.closeAllConnections();
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

function configText(extra: { listener?: string; top?: string; dcPorts?: number[] } = {}): string {
  const ports = extra.dcPorts ?? dcPorts;
  return [
    'workers = 1',
    extra.top ?? '',
    '[[listeners]]',
    'name = "main"',
    'host = "127.0.0.1"',
    'port = 0',
    `secret = "${secret}"`,
    'allowed_protocols = ["secure", "tls"]',
    'tls_domain = "cover.test"',
    `fronting = "127.0.0.1:${coverPort}"`,
    'public_host = "proxy.example.net"',
    extra.listener ?? '',
    '[upstream]',
    'mode = "direct"',
    '[upstream.dc]',
    ...ports.map((p, i) => `${i + 1} = ["127.0.0.1:${p}"]`),
  ].join('\n');
}

/** DNS answers come from the test, never from outside: every cover domain points at this (loopback) host. */
const hereDns = async (): Promise<string[]> => ['127.0.0.1'];

async function doctor(config: Config, opts: Parameters<typeof runDoctor>[1] = {}): Promise<CheckResult[]> {
  return runDoctor(config, { timeoutMs: 2000, limitsText: limitsOk, ca, resolveAddresses: hereDns, ...opts });
}

function find(results: CheckResult[], check: string, status?: string): CheckResult | undefined {
  return results.find((r) => r.check === check && (status === undefined || r.status === status));
}

describe('doctor', () => {
  it('a healthy set-up: every check ok, exit code 0, results in a fixed order', async () => {
    const progress: string[] = [];
    const streamed: CheckResult[] = [];
    const results = await doctor(parseConfig(configText()), {
      progress: (event, label) => progress.push(`${event} ${label}`),
    });
    const again = await runDoctor(
      parseConfig(configText()),
      { timeoutMs: 2000, limitsText: limitsOk, ca, resolveAddresses: hereDns },
      (r) => streamed.push(r),
    );
    assert.deepEqual(
      streamed.map((r) => r.check),
      again.map((r) => r.check),
    );
    const bad = results.filter((r) => r.status === 'fail' || r.status === 'warn');
    // Our loopback cover site may or may not pick the PQ group, depending on the OpenSSL build.
    assert.deepEqual(bad.filter((r) => !/X25519MLKEM768/.test(r.message)).map(formatResult), []);
    assert.equal(doctorExitCode(results), 0);
    assert.equal(find(results, 'config')?.status, 'ok');
    assert.equal(find(results, 'fd-limit')?.status, 'ok');
    assert.equal(find(results, 'bind main')?.status, 'skip', 'port 0');
    assert.match(find(results, 'cover cover.test', 'ok')?.message ?? '', /TLS 1\.3/);
    assert.match(find(results, 'clock')?.message ?? '', /within/);
    assert.equal(find(results, 'clock')?.status, 'ok');
    assert.match(find(results, 'telegram direct')?.message ?? '', /1: \d+ ms, 2: .*5: \d+ ms/);
    assert.equal(find(results, 'telegram direct')?.status, 'ok');
    assert.ok(progress.includes('start cover domain cover.test') && progress.includes('end Telegram DCs'));
  });

  it('a wrong clock fails against the cover site Date header', async () => {
    const results = await doctor(parseConfig(configText()), { now: () => Date.now() + 10 * 60_000 });
    const clock = find(results, 'clock');
    assert.equal(clock?.status, 'fail');
    assert.match(clock?.message ?? '', /ahead/);
    assert.match(clock?.fix ?? '', /ntp|chrony/);
    assert.equal(doctorExitCode(results), 1);
    const slightly = await doctor(parseConfig(configText()), { now: () => Date.now() - 45_000 });
    assert.equal(find(slightly, 'clock')?.status, 'warn');
  });

  it('an untrusted certificate on the cover site is a warning', async () => {
    const results = await doctor(parseConfig(configText()), { ca: undefined });
    const warn = results.find((r) => r.check === 'cover cover.test' && /not trusted/.test(r.message));
    assert.equal(warn?.status, 'warn');
  });

  it('a fronting target that does not speak TLS fails', async () => {
    const text = configText().replace(
      `fronting = "127.0.0.1:${coverPort}"`,
      `fronting = "127.0.0.1:${plainTcpPort}"`,
    );
    const results = await doctor(parseConfig(text));
    const fail = find(results, 'cover cover.test', 'fail');
    assert.match(fail?.message ?? '', /did not answer/);
    assert.ok(fail?.fix);
  });

  it('an unreachable fronting target fails, and the clock check is skipped', async () => {
    const text = configText().replace(
      `fronting = "127.0.0.1:${coverPort}"`,
      `fronting = "127.0.0.1:${closedPort}"`,
    );
    const results = await doctor(parseConfig(text));
    assert.equal(find(results, 'cover cover.test')?.status, 'fail');
    assert.equal(find(results, 'clock')?.status, 'skip');
  });

  it('a cover that negotiates X25519MLKEM768 is ok, one without it gets a warning with advice', async () => {
    const sites: HttpsSite[] = [];
    try {
      for (const [curves, status] of [
        ['X25519MLKEM768:X25519', 'ok'],
        ['X25519:P-256', 'warn'],
      ] as const) {
        const site = await startHttpsSite({ ecdhCurve: curves });
        sites.push(site);
        const text = configText()
          .replace('tls_domain = "cover.test"', `tls_domain = "${SITE_DOMAIN}"`)
          .replace(`fronting = "127.0.0.1:${coverPort}"`, `fronting = "127.0.0.1:${site.port}"`);
        const results = await doctor(parseConfig(text));
        const check = `cover ${SITE_DOMAIN}`;
        // Both answer a Telegram-shaped hello with TLS 1.3 (it offers X25519 too).
        assert.match(find(results, check, 'ok')?.message ?? '', /TLS 1\.3/, curves);
        const pq = results.filter((r) => r.check === check && /negotiate/.test(r.message));
        assert.equal(pq.length, 1, curves);
        assert.equal(pq[0].status, status, `${curves}: ${formatResult(pq[0])}`);
        assert.match(pq[0].message, /X25519MLKEM768/);
        if (status === 'warn') assert.match(pq[0].fix ?? '', /post-quantum/);
      }
    } finally {
      for (const s of sites) await s.stop();
    }
  });

  it("a cover domain's A/AAAA records are checked against this server's addresses", async () => {
    const dnsLine = (results: CheckResult[]) =>
      results.filter((r) => r.check === 'cover cover.test' && /A\/AAAA|points at/.test(r.message));
    const asked: string[] = [];
    const here = dnsLine(
      await doctor(parseConfig(configText()), {
        resolveAddresses: async (d) => {
          asked.push(d);
          return ['127.0.0.1', '::1'];
        },
      }),
    );
    assert.deepEqual(asked, ['cover.test']);
    assert.equal(here.length, 1);
    assert.equal(here[0].status, 'ok');
    assert.match(here[0].message, /points at this server/);

    const elsewhere = dnsLine(
      await doctor(parseConfig(configText()), {
        resolveAddresses: async () => ['192.0.2.44', '2001:db8::1'],
      }),
    );
    assert.equal(elsewhere.length, 1);
    assert.equal(elsewhere[0].status, 'warn');
    assert.match(elsewhere[0].message, /192\.0\.2\.44, 2001:db8::1, not at this server/);
    assert.match(elsewhere[0].fix ?? '', /A\/AAAA records/);

    const missing = dnsLine(
      await doctor(parseConfig(configText()), {
        resolveAddresses: async () => {
          throw Object.assign(new Error('queryA ENOTFOUND cover.test'), { code: 'ENOTFOUND' });
        },
      }),
    );
    assert.equal(missing[0]?.status, 'warn');
    assert.match(missing[0].message, /no A\/AAAA records \(ENOTFOUND\)/);
  });

  it('fronting off is reported', async () => {
    const text = configText().replace(/^fronting = .*$/m, 'fronting = "off"');
    const results = await doctor(parseConfig(text));
    assert.match(find(results, 'cover cover.test', 'warn')?.message ?? '', /fronting is off/);
  });

  it('sni fronting to a domain that resolves to this host, with a listener on 443, is a loop', async () => {
    const text = configText()
      .replace(/^fronting = .*$/m, 'fronting = "sni"')
      .replace('tls_domain = "cover.test"', 'tls_domain = "localhost"')
      .replace('port = 0', 'port = 443');
    const results = await doctor(parseConfig(text), { bind: false });
    const loop = find(results, 'cover localhost', 'fail');
    assert.match(loop?.message ?? '', /loop/);
  });

  it('unreachable DCs: some is a warning, none is a failure', async () => {
    const some = await doctor(
      parseConfig(configText({ dcPorts: [dcPorts[0], closedPort, dcPorts[2], dcPorts[3], dcPorts[4]] })),
    );
    const partial = find(some, 'telegram direct');
    assert.equal(partial?.status, 'warn');
    assert.match(partial?.message ?? '', /2: 127\.0\.0\.1:\d+ ECONNREFUSED/);
    const none = await doctor(parseConfig(configText({ dcPorts: [1, 2, 3, 4, 5].map(() => closedPort) })));
    assert.equal(find(none, 'telegram direct')?.status, 'fail');
    assert.equal(doctorExitCode(none), 1);
  });

  it('middle mode: reads the proxy list and secret, connects to the middle proxies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mtproxy-doctor-'));
    scratch.push(dir);
    const list = dcPorts.map((p, i) => `proxy_for ${i + 1} 127.0.0.1:${p};`).join('\n');
    writeFileSync(join(dir, 'proxy-multi.conf'), `default 2;\n${list}\n`);
    writeFileSync(join(dir, 'proxy-secret'), Buffer.alloc(128, 7));
    const ipService = createHttpServer((_req, res) => res.end('203.0.113.9\n'));
    const ipPort = await listen(ipService);
    const top = [
      '[telegram]',
      `proxy_config = "${join(dir, 'proxy-multi.conf')}"`,
      `proxy_secret = "${join(dir, 'proxy-secret')}"`,
      `ip_lookup_url = "http://127.0.0.1:${ipPort}/"`,
    ].join('\n');
    const text = configText()
      .replace('mode = "direct"', 'mode = "middle"')
      .replace('workers = 1', `workers = 1\n${top}`);
    const results = await doctor(parseConfig(text));
    assert.equal(find(results, 'telegram middle')?.status, 'ok');
    assert.equal(find(results, 'telegram secret')?.status, 'ok');
    assert.match(
      find(results, 'external ip', 'ok')?.message ?? '',
      /203\.0\.113\.9 is not on this host \(NAT\)/,
    );
    assert.equal(find(results, 'telegram direct'), undefined, 'no direct listener');

    const noLookup = await doctor(
      parseConfig(text.replace(`http://127.0.0.1:${ipPort}/`, `http://127.0.0.1:${closedPort}/`)),
    );
    assert.equal(find(noLookup, 'external ip')?.status, 'warn');
    const fixed = await doctor(
      parseConfig(text.replace('[telegram]', '[telegram]\nexternal_ip = "10.0.0.5:203.0.113.5"')),
    );
    assert.match(find(fixed, 'external ip', 'ok')?.message ?? '', /10\.0\.0\.5:203\.0\.113\.5/);

    writeFileSync(join(dir, 'proxy-multi.conf'), '<html>blocked</html>\n');
    const garbage = await doctor(parseConfig(text));
    assert.equal(find(garbage, 'telegram middle')?.status, 'fail');
  });

  it('--offline skips the network checks', async () => {
    const results = await doctor(parseConfig(configText()), { network: false });
    assert.equal(find(results, 'network')?.status, 'skip');
    assert.equal(find(results, 'telegram direct'), undefined);
    assert.equal(find(results, 'clock'), undefined);
  });

  it('configuration lint: tls without a domain, ad tag in direct mode, open admin API', async () => {
    const text = configText()
      .replace('tls_domain = "cover.test"', '')
      .replace('public_host = "proxy.example.net"', 'ad_tag = "fedcba9876543210fedcba9876543210"')
      .replace('workers = 1', 'workers = 1\n[admin]\nlisten = "0.0.0.0:0"\ntoken = "t"');
    const results = await doctor(parseConfig(text), { network: false });
    const messages = results.filter((r) => r.status === 'warn').map((r) => r.message);
    assert.ok(messages.some((m) => /no tls_domain/.test(m)));
    assert.ok(messages.some((m) => /ad tag/.test(m)));
    assert.ok(messages.some((m) => /admin API/.test(m)));
    const unused = await doctor(parseConfig(configText().replace('["secure", "tls"]', '["secure"]')), {
      network: false,
    });
    assert.ok(unused.some((r) => r.status === 'warn' && /no effect/.test(r.message)));
  });
});

describe('doctor: file descriptors', () => {
  it('parses /proc/self/limits', () => {
    assert.deepEqual(parseFdLimit(limitsOk), { soft: 1048576, hard: 1048576 });
    assert.deepEqual(
      parseFdLimit('Max open files            unlimited            unlimited            files'),
      {
        soft: Number.POSITIVE_INFINITY,
        hard: Number.POSITIVE_INFINITY,
      },
    );
    assert.equal(parseFdLimit('nothing here'), null);
  });

  it('warns when uncapped listeners meet a low limit, fails when the caps do not fit', () => {
    const uncapped = parseConfig(configText());
    assert.equal(checkFdLimit(uncapped, limitsLow).status, 'warn');
    assert.equal(checkFdLimit(uncapped, limitsOk).status, 'ok');
    const capped = parseConfig(configText({ listener: 'max_connections = 10000' }));
    const fail = checkFdLimit(capped, limitsLow);
    assert.equal(fail.status, 'fail');
    assert.match(fail.message, /20512/);
    assert.match(fail.fix ?? '', /LimitNOFILE/);
    assert.equal(checkFdLimit(capped, limitsOk).status, 'ok');
    assert.equal(checkFdLimit(capped, null).status, 'skip');
  });
});

describe('doctor: ports', () => {
  it('a free port is ok, a taken one a warning, a foreign address a failure', async () => {
    const taken = await listen(net.createServer());
    assert.equal((await checkBind('main', { host: '127.0.0.1', port: closedPort })).status, 'ok');
    const busy = await checkBind('main', { host: '127.0.0.1', port: taken });
    assert.equal(busy.status, 'warn');
    assert.match(busy.message, /in use/);
    // TEST-NET-1: never assigned to a local interface.
    assert.equal((await checkBind('main', { host: '192.0.2.1', port: closedPort })).status, 'fail');
  });

  it('health: ok while listening, fail when not', async () => {
    const port = await listen(net.createServer((s) => s.destroy()));
    const up = parseConfig(configText().replace('port = 0', `port = ${port}`));
    assert.deepEqual(
      (await checkHealth(up)).map((r) => r.status),
      ['ok'],
    );
    const down = parseConfig(configText().replace('port = 0', `port = ${closedPort}`));
    assert.deepEqual(
      (await checkHealth(down)).map((r) => r.status),
      ['fail'],
    );
  });
});
