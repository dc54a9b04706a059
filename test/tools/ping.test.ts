/**
 * `mtproxy ping` through our own proxy to the fake DC: plain, dd and ee links, and the ways a ping fails.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  formatPingResult,
  formatPingSummary,
  isResPq,
  parseProxyLink,
  pingLink,
  reqPqMulti,
} from '../../src/tools/ping.ts';
import { runCli } from '../helpers/cli.ts';
import { CTOR_REQ_PQ_MULTI, FakeDc, plainConstructor } from '../helpers/fake-dc.ts';
import { type HttpsSite, SITE_DOMAIN, startHttpsSite } from '../helpers/https-site.ts';
import { freePort } from '../helpers/ports.ts';
import { basicToml, startTestProxy, TEST_SECRET_HEX, type TestProxy } from '../helpers/proxy.ts';

let dc: FakeDc;
let site: HttpsSite;
let proxy: TestProxy;
const domainHex = Buffer.from(SITE_DOMAIN).toString('hex');

before(async () => {
  dc = await FakeDc.start();
  site = await startHttpsSite();
  proxy = await startTestProxy(
    basicToml(dc.port, {
      listener: `allowed_protocols = ["classic", "secure", "tls"]\ntls_domain = "${SITE_DOMAIN}"\ntls_cert_size = 2900\nfronting = "127.0.0.1:${site.port}"`,
    }),
  );
});

after(async () => {
  await proxy?.stop();
  await site?.stop();
  await dc?.stop();
});

function link(secret: string, port = proxy.port()): string {
  return `tg://proxy?server=127.0.0.1&port=${port}&secret=${secret}`;
}

describe('proxy links', () => {
  it('parses tg:// and t.me links with every secret form', () => {
    const plain = parseProxyLink(`tg://proxy?server=proxy.example.com&port=443&secret=${TEST_SECRET_HEX}`);
    assert.deepEqual([plain.host, plain.port, plain.secret.kind], ['proxy.example.com', 443, 'plain']);
    const dd = parseProxyLink(`https://t.me/proxy?server=1.2.3.4&port=8443&secret=dd${TEST_SECRET_HEX}`);
    assert.equal(dd.secret.kind, 'dd');
    assert.equal(dd.secret.secret.toString('hex'), TEST_SECRET_HEX);
    const ee = parseProxyLink(
      `t.me/proxy?server=[2001:db8::1]&port=443&secret=ee${TEST_SECRET_HEX}${domainHex}`,
    );
    assert.deepEqual([ee.host, ee.secret.kind, ee.secret.domain], ['2001:db8::1', 'ee', SITE_DOMAIN]);
    const base64 = Buffer.concat([
      Buffer.from([0xee]),
      Buffer.from(TEST_SECRET_HEX, 'hex'),
      Buffer.from(SITE_DOMAIN),
    ]).toString('base64url');
    assert.equal(parseProxyLink(`tg://proxy?server=h&port=1&secret=${base64}`).secret.domain, SITE_DOMAIN);
  });

  it('rejects what is not a proxy link, in one line', () => {
    for (const bad of [
      'https://example.com/proxy?server=a&port=1&secret=00',
      'tg://proxy?server=a&port=99999&secret=' + TEST_SECRET_HEX,
      'tg://proxy?port=1&secret=' + TEST_SECRET_HEX,
      'tg://proxy?server=a&port=1&secret=xyz',
      'tg://socks?server=a&port=1',
    ]) {
      assert.throws(
        () => parseProxyLink(bad),
        (e: Error) => !e.message.includes('\n'),
        bad,
      );
    }
  });

  it('builds req_pq_multi and recognises the matching resPQ', () => {
    const nonce = Buffer.alloc(16, 9);
    const request = reqPqMulti(nonce);
    assert.equal(plainConstructor(request), CTOR_REQ_PQ_MULTI);
    assert.equal(request.readBigUInt64LE(8) % 4n, 0n, 'client msg_id divisible by 4');
    assert.equal(isResPq(request, nonce), false);
  });
});

describe('ping through the proxy to the fake DC', () => {
  for (const [kind, secret] of [
    ['plain', TEST_SECRET_HEX],
    ['dd', `dd${TEST_SECRET_HEX}`],
    ['ee', `ee${TEST_SECRET_HEX}${domainHex}`],
  ] as const) {
    it(`${kind} link: every DC answers req_pq_multi`, async () => {
      const target = parseProxyLink(link(secret));
      const before = dc.connections.length;
      const results = await pingLink(target, { dcs: [1, 2, 3, 4, 5, -2], timeoutMs: 5000 });
      assert.deepEqual(
        results.map((r) => [r.dc, r.ok, r.error]),
        [1, 2, 3, 4, 5, -2].map((id) => [id, true, null]),
      );
      for (const r of results) {
        assert.ok(r.tcpMs !== null && r.rttMs !== null && r.totalMs !== null);
        assert.equal(r.handshakeMs === null, kind !== 'ee', 'fake-TLS handshake timed for ee only');
      }
      const seen = dc.connections.slice(before);
      assert.deepEqual(
        seen.map((c) => c.dcId),
        [1, 2, 3, 4, 5, -2],
      );
      for (const c of seen) {
        assert.equal(c.transport, kind === 'plain' ? 'intermediate' : 'padded');
        assert.deepEqual(c.plainRequests, [CTOR_REQ_PQ_MULTI]);
      }
      assert.match(formatPingResult(results[0]), /^DC 1 +ok +tcp .* req_pq .* total /);
      assert.match(formatPingSummary(target, results), /^6\/6 DCs answered .*average req_pq round trip/);
    });
  }

  it('the abridged transport and the legacy hello work too', async () => {
    const plain = await pingLink(parseProxyLink(link(TEST_SECRET_HEX)), { dcs: [2], transport: 'abridged' });
    assert.equal(plain[0].ok, true, plain[0].error ?? '');
    const ee = await pingLink(parseProxyLink(link(`ee${TEST_SECRET_HEX}${domainHex}`)), {
      dcs: [2],
      helloShape: 'legacy',
    });
    assert.equal(ee[0].ok, true, ee[0].error ?? '');
  });

  it('a wrong ee secret is reported as fronted', async () => {
    const wrong = `ee${'f'.repeat(32)}${domainHex}`;
    const [r] = await pingLink(parseProxyLink(link(wrong)), { dcs: [2], timeoutMs: 5000 });
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /fronted/);
    assert.ok(r.tcpMs !== null);
  });

  it('a wrong dd secret gets no resPQ', async () => {
    const [r] = await pingLink(parseProxyLink(link(`dd${'f'.repeat(32)}`)), { dcs: [2], timeoutMs: 1500 });
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /closed by the proxy|no resPQ/);
  });

  it('a closed port is reported as refused', async () => {
    const [r] = await pingLink(parseProxyLink(link(TEST_SECRET_HEX, await freePort())), { dcs: [2] });
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /refused/);
    assert.equal(r.tcpMs, null);
  });
});

describe('mtproxy ping (command line)', () => {
  const cli = (args: string[]) => runCli(args, process.cwd());

  it('prints one line per DC and a summary; exit 0 when all answer', async () => {
    const r = await cli(['ping', link(`dd${TEST_SECRET_HEX}`), '--dc', '2,4']);
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.match(r.out[0], /^Pinging DC 2, 4 through 127\.0\.0\.1:\d+ \(dd secret\)/);
    assert.match(r.out[1], /^DC 2 +ok/);
    assert.match(r.out[2], /^DC 4 +ok/);
    assert.match(r.out[3], /^2\/2 DCs answered/);
  });

  it('--json gives one object per DC; a failure exits 1', async () => {
    const r = await cli(['ping', link(TEST_SECRET_HEX, await freePort()), '--dc', '1', '--json']);
    assert.equal(r.code, 1);
    const parsed = JSON.parse(r.out[0]) as { dc: number; ok: boolean };
    assert.deepEqual([parsed.dc, parsed.ok], [1, false]);
  });

  it('bad input is one line and exit 2', async () => {
    for (const args of [
      ['ping'],
      ['ping', 'not a link'],
      ['ping', link(TEST_SECRET_HEX), '--dc', 'x'],
      ['ping', link(TEST_SECRET_HEX), '--bogus'],
    ]) {
      const r = await cli(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.equal(r.err.length, 1, r.err.join('\n'));
      assert.doesNotMatch(r.err[0], /\n\s+at /);
    }
  });
});
