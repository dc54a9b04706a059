import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/load.ts';
import { describeOptions, parseDuration, parseHostPort } from '../../src/config/schema.ts';

const SECRET = '0123456789abcdef0123456789abcdef';
const MINIMAL = `[[listeners]]\nsecret = "${SECRET}"\n`;

/** The one-line message a config fails with. */
function errorOf(toml: string): string {
  try {
    parseConfig(toml);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
    return e.message;
  }
  assert.fail('the config was accepted');
}

describe('config: valid files', () => {
  test('the contract example from the foundation issue', () => {
    const config = parseConfig(`
[[listeners]]
name = "main"
host = "0.0.0.0"
port = 1443
secret = "${SECRET}"
allowed_protocols = ["classic", "secure", "tls"]

[upstream]
mode = "direct"
prefer_ipv6 = false

[upstream.dc]
2 = ["127.0.0.1:20102"]
-2 = ["127.0.0.1:20102"]
`);
    const [l] = config.listeners;
    assert.equal(l!.name, 'main');
    assert.equal(l!.port, 1443);
    assert.deepEqual(l!.secret, Buffer.from(SECRET, 'hex'));
    assert.deepEqual(l!.allowedProtocols, ['classic', 'secure', 'tls']);
    assert.equal(config.upstream.mode, 'direct');
    assert.deepEqual(config.upstream.dc.get(2), [{ host: '127.0.0.1', port: 20102 }]);
    assert.deepEqual(config.upstream.dc.get(-2), [{ host: '127.0.0.1', port: 20102 }]);
  });

  test('defaults fill everything else', () => {
    const config = parseConfig(MINIMAL);
    const [l] = config.listeners;
    assert.equal(l!.name, 'main');
    assert.equal(l!.host, '0.0.0.0');
    assert.equal(l!.port, 1443);
    assert.deepEqual(l!.allowedProtocols, ['classic', 'secure', 'tls']);
    assert.equal(l!.adTag, null);
    assert.deepEqual(l!.fronting, { kind: 'sni', port: 443 });
    assert.equal(l!.unknownSni, 'front');
    assert.equal(l!.tlsTimeSkewMs, 120_000);
    assert.equal(l!.tlsCertSize, 'auto');
    assert.equal(config.upstream.mode, 'auto');
    assert.equal(config.upstream.defaultDc, 2);
    assert.equal(config.telegram.refreshIntervalMs, 3_600_000);
    assert.ok(config.workers >= 1);
    assert.equal(config.log.level, 'info');
    assert.equal(config.metrics.listen, null);
    assert.equal(config.admin.listen, null);
    assert.deepEqual(config.policies, []);
    assert.equal(config.file, null);
  });

  test('the fake-TLS, middle-proxy and operations contract keys', () => {
    const config = parseConfig(`
workers = 2
[[listeners]]
name = "tls"
port = 443
secret = "${SECRET}"
ad_tag = "dcbe8f1493fa4cd9ab300891c0b5b326"
tls_domains = ["a.example", "B.example"]
fronting = "127.0.0.1:8443"
fronting_proxy_protocol = "v2"
unknown_sni = "reject"
tls_time_skew = "30s"
per_sni_salt = "my-private-salt-change-me"
tls_cert_size = 2048
public_host = "proxy.example.net"
max_connections = 1000
secrets = ["fedcba9876543210fedcba9876543210"]

[telegram]
proxy_secret = "/etc/mtproxy/proxy-secret"
proxy_config = "https://example.org/getProxyConfig"
refresh_interval = "1h"
external_ip = "10.0.0.5:203.0.113.7"

[[policies]]
rule = "max_connections"
keys = ["listener", "client_ipv4"]
limit = 100
[[policies]]
rule = "not_in_table"
key = "client_ipv4/24"
table = "blocked"

[metrics]
listen = "127.0.0.1:9100"
allow = ["127.0.0.0/8"]

[admin]
listen = "127.0.0.1:9101"
token = "s3cr3t-token"
`);
    const [l] = config.listeners;
    assert.equal(config.workers, 2);
    assert.deepEqual(l!.adTag, Buffer.from('dcbe8f1493fa4cd9ab300891c0b5b326', 'hex'));
    assert.deepEqual(l!.tlsDomains, ['a.example', 'b.example']);
    assert.deepEqual(l!.fronting, { kind: 'fixed', host: '127.0.0.1', port: 8443 });
    assert.equal(l!.frontingProxyProtocol, 'v2');
    assert.equal(l!.unknownSni, 'reject');
    assert.equal(l!.tlsTimeSkewMs, 30_000);
    assert.equal(l!.perSniSalt, 'my-private-salt-change-me');
    assert.equal(l!.tlsCertSize, 2048);
    assert.equal(l!.publicHost, 'proxy.example.net');
    assert.equal(l!.maxConnections, 1000);
    assert.equal(l!.extraSecrets.length, 1);
    assert.equal(config.telegram.externalIp, '10.0.0.5:203.0.113.7');
    assert.equal(config.policies.length, 2);
    assert.deepEqual(config.policies[0], {
      rule: 'max_connections',
      keys: [{ kind: 'listener' }, { kind: 'client_ipv4' }],
      limit: 100,
      raw: 'max_connections(listener,client_ipv4)',
    });
    assert.deepEqual(config.policies[1], {
      rule: 'not_in_table',
      key: { kind: 'client_ipv4_subnet', bits: 24 },
      table: 'blocked',
      raw: 'not_in_table(client_ipv4/24,blocked)',
    });
    assert.deepEqual(config.metrics.listen, { host: '127.0.0.1', port: 9100 });
    assert.deepEqual(config.admin, {
      listen: { host: '127.0.0.1', port: 9101 },
      token: 's3cr3t-token',
      bodyTimeoutMs: 10_000,
      idleTimeoutMs: 30_000,
      maxConnections: 32,
      console: true,
      consoleSessionMs: 43_200_000,
    });
  });

  test('replay.max_age covers the fake-TLS timestamp window: a shorter value is raised, with a warning', () => {
    const defaults = parseConfig(MINIMAL);
    assert.equal(defaults.replay.maxAgeMs, 6 * 3_600_000);
    assert.equal(defaults.warnings, undefined);

    const short = parseConfig(`${MINIMAL}tls_time_skew = "120s"\n[replay]\nmax_age = "60s"\n`);
    assert.equal(short.replay.maxAgeMs, 4 * 120_000);
    assert.equal(short.warnings?.length, 1);
    assert.match(short.warnings![0]!, /^replay\.max_age: raised from 60 s to 480 s/);

    // The largest window of the fake-TLS listeners counts; listeners without tls do not.
    const two = parseConfig(
      `[[listeners]]\nname = "a"\nport = 1\nsecret = "${SECRET}"\ntls_time_skew = "10m"\n` +
        `allowed_protocols = ["secure"]\n` +
        `[[listeners]]\nname = "b"\nport = 2\nsecret = "${SECRET}"\ntls_time_skew = "5m"\n` +
        '[replay]\nmax_age = "1m"\n',
    );
    assert.equal(two.replay.maxAgeMs, 4 * 300_000);

    const longEnough = parseConfig(`${MINIMAL}[replay]\nmax_age = "8m"\n`);
    assert.equal(longEnough.replay.maxAgeMs, 480_000);
    assert.equal(longEnough.warnings, undefined);
    const noTls = parseConfig(`${MINIMAL}allowed_protocols = ["secure"]\n[replay]\nmax_age = "10s"\n`);
    assert.equal(noTls.replay.maxAgeMs, 10_000);
    const disabled = parseConfig(`${MINIMAL}[replay]\nenabled = false\nmax_age = "10s"\n`);
    assert.equal(disabled.replay.maxAgeMs, 10_000);
  });

  test('tls_domain and tls_domains merge, first one first', () => {
    const config = parseConfig(
      `${MINIMAL}tls_domain = "example.com"\ntls_domains = ["b.example", "example.com"]\n`,
    );
    assert.deepEqual(config.listeners[0]!.tlsDomains, ['example.com', 'b.example']);
  });

  test('fronting "off", per_sni_salt = true, IPv6 listeners', () => {
    const config = parseConfig(
      `[[listeners]]\nhost = "::"\nsecret = "${SECRET}"\nfronting = "off"\nper_sni_salt = true\n` +
        `[[listeners]]\nname = "v6"\nhost = "::1"\nport = 2443\nsecret = "${SECRET.toUpperCase()}"\n`,
    );
    assert.deepEqual(config.listeners[0]!.fronting, { kind: 'off' });
    assert.equal(config.listeners[0]!.perSniSalt, 'mtproto-proxy-per-sni-v1');
    assert.equal(config.listeners[1]!.name, 'v6');
    assert.deepEqual(
      config.listeners[1]!.secret,
      Buffer.from(SECRET, 'hex'),
      'upper-case hex is read correctly',
    );
  });

  test('the object form (already parsed TOML) is accepted', () => {
    const config = parseConfig({ listeners: [{ secret: SECRET, port: 0 }], timeouts: { idle: 5 } });
    assert.equal(config.listeners[0]!.port, 0);
    assert.equal(config.timeouts.idleMs, 5000);
  });

  test('state_dir resolves against the config file folder', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-config-'));
    try {
      const file = path.join(dir, 'mtproxy.toml');
      await writeFile(file, `state_dir = "state"\n${MINIMAL}`);
      const config = await loadConfigFile(file);
      assert.equal(config.file, file);
      assert.equal(config.stateDir, path.join(dir, 'state'));
      await assert.rejects(
        loadConfigFile(path.join(dir, 'missing.toml')),
        /missing\.toml: expected a readable config file: file not found/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('config: every error is one line naming the key', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['unknown top-level key', `bogus = 1\n${MINIMAL}`, /^bogus: unknown key \(known keys: workers, /],
    ['unknown listener key', `${MINIMAL}secert = "x"\n`, /^listeners\[0\]\.secert: unknown key/],
    ['unknown section key', `${MINIMAL}[upstream]\nmod = "direct"\n`, /^upstream\.mod: unknown key/],
    [
      'no listeners',
      '[upstream]\nmode = "direct"\n',
      /^listeners: expected at least one \[\[listeners\]\] table/,
    ],
    [
      'missing secret',
      '[[listeners]]\nport = 1\n',
      /^listeners\[0\]\.secret: expected 32 hex characters \(required\)$/,
    ],
    [
      'bad hex',
      '[[listeners]]\nsecret = "0123456789abcdef0123456789abcdeg"\n',
      /^listeners\[0\]\.secret: expected 32 hex characters$/,
    ],
    [
      'short secret',
      '[[listeners]]\nsecret = "0123"\n',
      /^listeners\[0\]\.secret: expected 32 hex characters$/,
    ],
    [
      'dd-prefixed secret',
      `[[listeners]]\nsecret = "dd${SECRET}"\n`,
      /^listeners\[0\]\.secret: expected 32 hex characters \(keep only the secret, without the dd prefix\)$/,
    ],
    [
      'ee secret pasted from a link',
      `[[listeners]]\nsecret = "ee${SECRET}6578616d706c652e636f6d"\n`,
      /^listeners\[0\]\.secret: expected 32 hex characters \(keep only the secret, without the ee prefix and domain\)$/,
    ],
    ['secret of wrong type', '[[listeners]]\nsecret = 5\n', /^listeners\[0\]\.secret: expected 32 hex/],
    ['bad ad tag', `${MINIMAL}ad_tag = "xyz"\n`, /^listeners\[0\]\.ad_tag: expected 32 hex characters$/],
    [
      'bad extra secret',
      `${MINIMAL}secrets = ["${SECRET}", "nope"]\n`,
      /^listeners\[0\]\.secrets\[1\]: expected 32 hex/,
    ],
    [
      'port out of range',
      `${MINIMAL}port = 70000\n`,
      /^listeners\[0\]\.port: expected an integer from 0 to 65535$/,
    ],
    ['port as string', `${MINIMAL}port = "443"\n`, /^listeners\[0\]\.port: expected an integer/],
    [
      'host not an address',
      `${MINIMAL}host = "example.com"\n`,
      /^listeners\[0\]\.host: expected an IPv4 or IPv6 address/,
    ],
    [
      'bad protocol',
      `${MINIMAL}allowed_protocols = ["classic", "dd"]\n`,
      /^listeners\[0\]\.allowed_protocols\[1\]: expected "classic" or "secure" or "tls"$/,
    ],
    [
      'empty protocols',
      `${MINIMAL}allowed_protocols = []\n`,
      /^listeners\[0\]\.allowed_protocols: expected at least one/,
    ],
    [
      'bad domain',
      `${MINIMAL}tls_domain = "https://x.example/"\n`,
      /^listeners\[0\]\.tls_domain: expected a domain name/,
    ],
    [
      'metrics.allow shorthand the endpoint would refuse',
      `${MINIMAL}[metrics]\nallow = ["127.0.0.0/8", "10"]\n`,
      /^metrics\.allow\[1\]: expected an IP address or CIDR/,
    ],
    [
      'bad fronting',
      `${MINIMAL}fronting = "somewhere"\n`,
      /^listeners\[0\]\.fronting: expected "sni", "off" or "host:port"$/,
    ],
    [
      'bad unknown_sni',
      `${MINIMAL}unknown_sni = "ignore"\n`,
      /^listeners\[0\]\.unknown_sni: expected "front" or "reject" or "drop"$/,
    ],
    [
      'bad duration',
      `${MINIMAL}tls_time_skew = "2 minutes"\n`,
      /^listeners\[0\]\.tls_time_skew: expected a duration like "90s"/,
    ],
    ['negative duration', `${MINIMAL}[timeouts]\nidle = -1\n`, /^timeouts\.idle: expected a duration/],
    [
      'bad cert size',
      `${MINIMAL}tls_cert_size = 10\n`,
      /^listeners\[0\]\.tls_cert_size: expected "auto" or an integer/,
    ],
    [
      'duplicate names',
      `${MINIMAL}[[listeners]]\nname = "main"\nport = 2\nsecret = "${SECRET}"\n`,
      /^listeners\[1\]\.name: expected a unique name \("main" is also listeners\[0\]\)$/,
    ],
    [
      'default name taken',
      `${MINIMAL}name = "x"\n[[listeners]]\nname = "x"\nport = 2\nsecret = "${SECRET}"\n`,
      /^listeners\[1\]\.name: expected a unique name/,
    ],
    [
      'same address twice',
      `${MINIMAL}[[listeners]]\nname = "b"\nsecret = "${SECRET}"\n`,
      /^listeners\[1\]\.port: expected a port not used by listeners\[0\]/,
    ],
    [
      'bad mode',
      `${MINIMAL}[upstream]\nmode = "proxy"\n`,
      /^upstream\.mode: expected "direct" or "middle" or "auto"$/,
    ],
    ['bad DC id', `${MINIMAL}[upstream.dc]\nx = ["127.0.0.1:1"]\n`, /^upstream\.dc\.x: expected a DC id/],
    [
      'bad DC address',
      `${MINIMAL}[upstream.dc]\n2 = ["127.0.0.1"]\n`,
      /^upstream\.dc\.2\[0\]: expected "host:port"/,
    ],
    ['section not a table', `timeouts = 5\n${MINIMAL}`, /^timeouts: expected a table$/],
    ['bad log level', `${MINIMAL}[log]\nlevel = "verbose"\n`, /^log\.level: expected "trace" or "debug"/],
    ['workers zero', `workers = 0\n${MINIMAL}`, /^workers: expected an integer from 1 to 1024$/],
    [
      'bad external ip',
      `${MINIMAL}[telegram]\nexternal_ip = "my.host"\n`,
      /^telegram\.external_ip: expected an IPv4 address/,
    ],
    [
      'bad metrics address',
      `${MINIMAL}[metrics]\nlisten = "nowhere"\n`,
      /^metrics\.listen: expected "host:port" or a port number$/,
    ],
    [
      'bad metrics allow',
      `${MINIMAL}[metrics]\nallow = ["10.0.0.0/99"]\n`,
      /^metrics\.allow\[0\]: expected an IP address or CIDR/,
    ],
    [
      'admin without token',
      `${MINIMAL}[admin]\nlisten = "127.0.0.1:9101"\n`,
      /^admin\.token: expected a token when admin\.listen is set/,
    ],
    [
      'policy rule',
      `${MINIMAL}[[policies]]\nrule = "limit"\n`,
      /^policies\[0\]\.rule: expected "max_connections" or "in_table" or "not_in_table"$/,
    ],
    [
      'policy key',
      `${MINIMAL}[[policies]]\nrule = "in_table"\nkey = "ip"\ntable = "t"\n`,
      /^policies\[0\]\.key: expected listener, client_ipv4/,
    ],
    [
      'policy subnet bits',
      `${MINIMAL}[[policies]]\nrule = "max_connections"\nkeys = ["client_ipv6/16"]\nlimit = 1\n`,
      /^policies\[0\]\.keys\[0\]: expected/,
    ],
    [
      'policy without limit',
      `${MINIMAL}[[policies]]\nrule = "max_connections"\nkeys = ["listener"]\n`,
      /^policies\[0\]\.limit: expected an integer limit \(required\)$/,
    ],
    [
      'policy without table',
      `${MINIMAL}[[policies]]\nrule = "in_table"\nkey = "listener"\n`,
      /^policies\[0\]\.table: expected a table name \(required\)$/,
    ],
    [
      'policy mixed fields',
      `${MINIMAL}[[policies]]\nrule = "max_connections"\nkeys = ["listener"]\nlimit = 1\ntable = "t"\n`,
      /^policies\[0\]\.table: not used by max_connections/,
    ],
    ['TOML syntax', '[[listeners]\nsecret = "x"\n', /^config:1:\d+: invalid TOML: /],
  ];
  for (const [name, toml, expected] of cases) {
    test(name, () => assert.match(errorOf(toml), expected));
  }
});

describe('config: durations and addresses', () => {
  test('duration forms', () => {
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('2d'), 172_800_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration(120), 120_000);
    assert.equal(parseDuration(0.25), 250);
    for (const bad of ['', 's', '10', '10 s', '-1s', '1w', 'abc', null, true, -5, Number.NaN]) {
      assert.equal(parseDuration(bad), null, String(bad));
    }
  });

  test('host:port forms', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:443'), { host: '127.0.0.1', port: 443 });
    assert.deepEqual(parseHostPort('[2001:db8::1]:443'), { host: '2001:db8::1', port: 443 });
    assert.deepEqual(parseHostPort('dc.example:80'), { host: 'dc.example', port: 80 });
    for (const bad of ['127.0.0.1', '::1:443', '[::1]443', 'host:0', 'host:65536', ':443', 'host:x']) {
      assert.equal(parseHostPort(bad), null, bad);
    }
  });

  test('metrics and admin take a bare port as 127.0.0.1', () => {
    const config = parseConfig(
      `${MINIMAL}[metrics]\nlisten = 9100\n[admin]\nlisten = "127.0.0.1:0"\ntoken = "t"\n`,
    );
    assert.deepEqual(config.metrics.listen, { host: '127.0.0.1', port: 9100 });
    assert.deepEqual(config.admin.listen, { host: '127.0.0.1', port: 0 });
  });
});

describe('config: option reference', () => {
  test('every option has a type, a description, and the contract names are present', () => {
    const options = describeOptions();
    const keys = new Set(options.map((o) => o.key));
    for (const key of [
      'workers',
      'state_dir',
      'listeners[].name',
      'listeners[].host',
      'listeners[].port',
      'listeners[].secret',
      'listeners[].allowed_protocols',
      'listeners[].ad_tag',
      'listeners[].tls_domain',
      'listeners[].tls_domains',
      'listeners[].fronting',
      'listeners[].unknown_sni',
      'listeners[].tls_time_skew',
      'upstream.mode',
      'upstream.prefer_ipv6',
      'upstream.dc',
      'telegram.proxy_secret',
      'telegram.proxy_config',
      'telegram.refresh_interval',
      'policies[].rule',
      'policies[].keys',
      'policies[].limit',
      'policies[].key',
      'policies[].table',
      'metrics.listen',
      'metrics.allow',
      'admin.listen',
      'admin.token',
      'log.level',
    ]) {
      assert.ok(keys.has(key), key);
    }
    for (const o of options) {
      assert.ok(o.type.length > 0 && o.description.length > 0, o.key);
      assert.ok(!o.description.includes('\n'), o.key);
    }
    const port = options.find((o) => o.key === 'listeners[].port')!;
    assert.equal(port.default, '1443');
    assert.equal(options.find((o) => o.key === 'listeners[].secret')!.required, true);
    assert.equal(options.find((o) => o.key === 'timeouts.drain')!.default, '"10s"');
  });
});
