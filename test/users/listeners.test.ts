/**
 * A user's `listeners`: its secret opens sessions on the listeners it may use and nowhere else; a user
 * without the field may use every listener; a reload that changes the list applies to new sessions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { until } from '../helpers/middle-harness.ts';
import { basicToml, startTestProxy, type TestProxy } from '../helpers/proxy.ts';
import { relays } from '../helpers/relay-probe.ts';

const MAIN_ONLY = 'f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2';
const EVERYWHERE = 'f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3';

describe('users: the listeners a user may use', () => {
  let dc: FakeDc;
  let proxy: TestProxy;
  let toml: (list: string) => string = () => '';

  before(async () => {
    dc = await FakeDc.start({ keepFrames: 10 });
    toml = (list: string) =>
      `${basicToml(dc.port, {
        listener: `
[[listeners]]
name = "other"
host = "127.0.0.1"
port = 0
secret = "ffeeddccbbaa99887766554433221100"
`,
      })}
[[users]]
name = "main-only"
secret = "${MAIN_ONLY}"
listeners = ${list}

[[users]]
name = "everywhere"
secret = "${EVERYWHERE}"

[log]
level = "silent"
`;
    proxy = await startTestProxy(toml('["main"]'));
  });

  after(async () => {
    await proxy.stop();
    await dc.stop();
  });

  it('opens sessions only on its listeners; without the field, on every listener', async () => {
    assert.equal(await relays(proxy.port('main'), MAIN_ONLY), true);
    assert.equal(await relays(proxy.port('other'), MAIN_ONLY), false);
    assert.equal(await relays(proxy.port('main'), EVERYWHERE), true);
    assert.equal(await relays(proxy.port('other'), EVERYWHERE), true);
  });

  it('a reload that changes the list applies at once', async () => {
    await proxy.proxy.applyConfig(parseConfig(toml('["other"]')));
    assert.equal(await relays(proxy.port('main'), MAIN_ONLY), false);
    assert.equal(await relays(proxy.port('other'), MAIN_ONLY), true);
    await until(() => proxy.proxy.users.outstanding === 0, 'every lease given back');
  });
});
