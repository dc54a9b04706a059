/**
 * Hellos without SNI (the iOS and macOS apps) and with a trailing-dot SNI through the real proxy: served,
 * and admitted by the policies under the domain they count as (the first tls_domain, or no_sni_domain).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PolicyGate } from '../../src/session/types.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { fixtureRoundTrip } from '../helpers/fake-tls-session.ts';
import { helloFixture } from '../helpers/hello-shapes.ts';
import { basicToml, startTestProxy, TEST_SECRET, type TestProxy } from '../helpers/proxy.ts';

let dc: FakeDc;
let proxy: TestProxy;
const admitted: { listener: string; tlsDomain: string | null }[] = [];

const recordingPolicy: PolicyGate = {
  admit: (request) => {
    admitted.push({ listener: request.listener, tlsDomain: request.tlsDomain });
    return { ok: true, ticket: { release: () => {} } };
  },
  allowFronting: () => true,
};

before(async () => {
  dc = await FakeDc.start();
  const toml = basicToml(dc.port, {
    listener:
      'allowed_protocols = ["tls"]\ntls_domains = ["first.example", "second.example"]\nfronting = "off"',
  });
  const [head, upstream] = toml.split('[upstream]');
  proxy = await startTestProxy(
    `${head}
[[listeners]]
name = "alt"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET.toString('hex')}"
allowed_protocols = ["tls"]
tls_domains = ["first.example", "second.example"]
no_sni_domain = "second.example"
fronting = "off"
[upstream]${upstream}`,
    { policy: recordingPolicy },
  );
});

after(async () => {
  await proxy?.stop();
  await dc?.stop();
});

const now = (): number => Math.floor(Date.now() / 1000);

test('an iOS hello without SNI is served and counts as the first tls_domain', async () => {
  admitted.length = 0;
  const f = helloFixture('ios', { secret: TEST_SECRET, domain: 'unused.example', unixTime: now() });
  assert.equal(f.sni, null);
  await fixtureRoundTrip(proxy.port(), f, TEST_SECRET);
  assert.deepEqual(admitted, [{ listener: 'main', tlsDomain: 'first.example' }]);
});

test('no_sni_domain names the domain a hello without SNI counts as', async () => {
  admitted.length = 0;
  const f = helloFixture('ios', { secret: TEST_SECRET, domain: 'unused.example', unixTime: now() });
  await fixtureRoundTrip(proxy.port('alt'), f, TEST_SECRET);
  assert.deepEqual(admitted, [{ listener: 'alt', tlsDomain: 'second.example' }]);
});

test('a trailing dot and another case in the SNI count as the same domain', async () => {
  admitted.length = 0;
  for (const sni of ['Second.Example.', 'second.example']) {
    const f = helloFixture('android', { secret: TEST_SECRET, domain: sni, unixTime: now() });
    await fixtureRoundTrip(proxy.port(), f, TEST_SECRET);
  }
  assert.deepEqual(admitted, [
    { listener: 'main', tlsDomain: 'second.example' },
    { listener: 'main', tlsDomain: 'second.example' },
  ]);
});
