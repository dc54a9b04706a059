import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { configLinks, domainLink, linkHost, listenerLinks } from '../../src/config/links.ts';
import { parseConfig } from '../../src/config/load.ts';

const SECRET = 'd0d6e111bada5511fcce9584deadbeef';

function config(extra = '', top = '') {
  return parseConfig(
    `${top}[[listeners]]\nname = "main"\nhost = "127.0.0.1"\nport = 443\nsecret = "${SECRET}"\n${extra}`,
  );
}

describe('links', () => {
  test('one link per allowed protocol and cover domain, tg:// and https://t.me', () => {
    const c = config('tls_domains = ["s3.amazonaws.com", "example.com"]\n');
    const links = listenerLinks(c.listeners[0]!, { host: '203.0.113.7', port: 443 });
    assert.deepEqual(
      links.map((l) => [l.protocol, l.domain, l.secret]),
      [
        ['classic', null, SECRET],
        ['secure', null, `dd${SECRET}`],
        ['tls', 's3.amazonaws.com', `ee${SECRET}73332e616d617a6f6e6177732e636f6d`],
        ['tls', 'example.com', `ee${SECRET}6578616d706c652e636f6d`],
      ],
    );
    assert.equal(links[0]!.tg, `tg://proxy?server=203.0.113.7&port=443&secret=${SECRET}`);
    assert.equal(links[1]!.https, `https://t.me/proxy?server=203.0.113.7&port=443&secret=dd${SECRET}`);
  });

  test('only allowed protocols; extra secrets get links too', () => {
    const c = config('allowed_protocols = ["secure"]\nsecrets = ["00112233445566778899aabbccddeeff"]\n');
    const links = listenerLinks(c.listeners[0]!, { host: 'h', port: 1 });
    assert.deepEqual(
      links.map((l) => l.secret),
      [`dd${SECRET}`, 'dd00112233445566778899aabbccddeeff'],
    );
  });

  test('per-SNI salt: ee links carry the derived secret (shared vector)', () => {
    const c = config(
      'tls_domain = "alice.example.com"\nallowed_protocols = ["tls"]\nper_sni_salt = "my-private-salt-change-me"\n',
    );
    const [link] = listenerLinks(c.listeners[0]!, { host: 'h', port: 443 });
    assert.equal(
      link!.secret,
      'eeaf4d5729ce2a0de4a40bbf439ac9d515' + Buffer.from('alice.example.com').toString('hex'),
    );
    const withDefaultSalt = config('allowed_protocols = ["tls"]\nper_sni_salt = true\n');
    const user = domainLink(withDefaultSalt.listeners[0]!, 'example.com', { host: 'h', port: 443 });
    assert.equal(
      user!.secret,
      'ee6a7272957cebcd2e9ac114da84dcdef8' + Buffer.from('example.com').toString('hex'),
    );
  });

  test('domain link without a salt uses the base secret; none without tls', () => {
    const c = config();
    assert.equal(
      domainLink(c.listeners[0]!, 'Example.COM', { host: 'h', port: 1 })!.secret,
      `ee${SECRET}6578616d706c652e636f6d`,
    );
    const noTls = config('allowed_protocols = ["classic"]\n');
    assert.equal(domainLink(noTls.listeners[0]!, 'example.com', { host: 'h', port: 1 }), null);
  });

  test('link host: public_host, then external_ip, then listen address, then a detected address', () => {
    assert.equal(linkHost(config(), config().listeners[0]!), '127.0.0.1');
    const pub = config('public_host = "proxy.example"\n');
    assert.equal(linkHost(pub, pub.listeners[0]!), 'proxy.example');
    const nat = config('', '[telegram]\nexternal_ip = "10.0.0.1:198.51.100.9"\n');
    assert.equal(linkHost(nat, nat.listeners[0]!), '198.51.100.9');
    const wild = parseConfig(`[[listeners]]\nsecret = "${SECRET}"\n`);
    assert.equal(
      linkHost(wild, wild.listeners[0]!, () => '192.0.2.10'),
      '192.0.2.10',
    );
    assert.equal(
      linkHost(wild, wild.listeners[0]!, () => null),
      '127.0.0.1',
    );
  });

  test('configLinks uses the bound port when given', () => {
    const c = parseConfig(
      `[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\nallowed_protocols = ["classic"]\n`,
    );
    const [link] = configLinks(c, () => 40000);
    assert.equal(link!.tg, `tg://proxy?server=127.0.0.1&port=40000&secret=${SECRET}`);
  });

  test('a dual-stack listener gets IPv6 links too when the server has a public IPv6; others do not', () => {
    const dual = parseConfig(
      `[[listeners]]\nhost = "::"\nport = 443\nsecret = "${SECRET}"\nallowed_protocols = ["secure"]\n`,
    );
    const links = configLinks(
      dual,
      undefined,
      () => '8.8.8.8',
      () => '2a00:1450::1',
    );
    assert.deepEqual(
      links.map((l) => [l.tg, l.ipv6 ?? false]),
      [
        [`tg://proxy?server=8.8.8.8&port=443&secret=dd${SECRET}`, false],
        [`tg://proxy?server=2a00%3A1450%3A%3A1&port=443&secret=dd${SECRET}`, true],
      ],
    );
    // Only IPv4 is accepted on 0.0.0.0, and public_host is the operator's choice: no IPv6 links there.
    const v4 = parseConfig(
      `[[listeners]]\nhost = "0.0.0.0"\nport = 443\nsecret = "${SECRET}"\nallowed_protocols = ["secure"]\n`,
    );
    assert.equal(
      configLinks(
        v4,
        undefined,
        () => '8.8.8.8',
        () => '2a00:1450::1',
      ).length,
      1,
    );
    const named = parseConfig(
      `[[listeners]]\nhost = "::"\npublic_host = "proxy.example.net"\nport = 443\nsecret = "${SECRET}"\nallowed_protocols = ["secure"]\n`,
    );
    assert.equal(
      configLinks(
        named,
        undefined,
        () => '8.8.8.8',
        () => '2a00:1450::1',
      ).length,
      1,
    );
    // The IPv6 is the only address: it is the link host already, once.
    assert.equal(
      configLinks(
        dual,
        undefined,
        () => '2a00:1450::1',
        () => '2a00:1450::1',
      ).length,
      1,
    );
  });
});
