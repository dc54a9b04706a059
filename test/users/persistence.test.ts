/**
 * Usage and users survive a restart and a `kill -9`: the real CLI runs the proxy in a child process, a user
 * is created through the admin API and relays bytes; after SIGKILL (once the usage was flushed) and a new
 * start, the user, its secret and its usage are still there; a graceful stop writes what was counted since
 * the last flush.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AdminClient } from '../../src/admin/client.ts';
import { UserStore } from '../../src/users/store.ts';
import { start, waitForOutput } from '../cli/spawn-cli.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { until } from '../helpers/middle-harness.ts';
import { freePort } from '../helpers/ports.ts';
import { TEST_SECRET_HEX } from '../helpers/proxy.ts';
import { echoedSession } from '../helpers/relay-probe.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';

describe('users: usage over a kill -9', () => {
  const dir = suiteTempDir('mtp-users-kill-');
  let dc: FakeDc;
  let child: ChildProcess | null = null;
  let port = 0;
  let adminPort = 0;
  const TOKEN = 'users-kill-token-0123';

  before(async () => {
    dc = await FakeDc.start({ keepFrames: 10 });
    port = await freePort();
    adminPort = await freePort();
    writeFileSync(
      join(dir(), 'mtproxy.toml'),
      `state_dir = "state"
workers = 1
[[listeners]]
host = "127.0.0.1"
port = ${port}
secret = "${TEST_SECRET_HEX}"

[[users]]
name = "filed"

[upstream]
mode = "direct"
[upstream.dc]
2 = ["127.0.0.1:${dc.port}"]

[admin]
listen = "127.0.0.1:${adminPort}"
token = "${TOKEN}"

[log]
level = "info"
`,
    );
  });

  after(async () => {
    child?.kill('SIGKILL');
    await dc.stop();
  });

  const launch = async () => {
    child = start(['run', '--config', join(dir(), 'mtproxy.toml')], dir());
    await waitForOutput(child, /proxy listening/);
    return new AdminClient(`http://127.0.0.1:${adminPort}`, TOKEN);
  };

  it('keeps the users, their secrets and the flushed usage', async () => {
    let api = await launch();
    const created = await api.call<{ secret: string }>('POST', '/users', { name: 'alice', quota: '1GB' });
    const filed = await api.call<{ secret: string }>('GET', '/users/filed');
    const c = await echoedSession(port, created.secret);
    for (let i = 0; i < 20; i++) c.sendFrame(Buffer.alloc(1000, i));
    for (let i = 0; i < 20; i++) await c.nextFrame(5000);
    c.close();
    // Wait until a flush has written the bytes, then kill without any chance to flush again.
    await until(() => {
      const store = new UserStore(join(dir(), 'state'));
      const row = store.history('alice')[0];
      store.close();
      return row !== undefined && row.bytesUp >= 20_000;
    }, 'usage flushed');
    child!.kill('SIGKILL');
    await once(child!, 'exit');

    api = await launch();
    const again = await api.call<{
      secret: string;
      quota: number;
      usage: { bytes_up: number; sessions: number };
    }>('GET', '/users/alice');
    assert.equal(again.secret, created.secret);
    assert.equal(again.quota, 1e9);
    assert.ok(again.usage.bytes_up >= 20_000);
    assert.equal(again.usage.sessions, 1);
    assert.equal((await api.call<{ secret: string }>('GET', '/users/filed')).secret, filed.secret);
    // And it still relays for the stored user; what it relays now is written at shutdown (SIGTERM right
    // after the traffic, usually before the next two-second flush).
    const d = await echoedSession(port, created.secret);
    for (let i = 0; i < 10; i++) d.sendFrame(Buffer.alloc(1000, i));
    for (let i = 0; i < 10; i++) await d.nextFrame(5000);
    d.close();
    await d.closed;
    child!.kill('SIGTERM');
    await once(child!, 'exit');
    const store = new UserStore(join(dir(), 'state'));
    const row = store.history('alice')[0];
    store.close();
    assert.ok(row.bytesUp >= again.usage.bytes_up + 10_000, JSON.stringify(row));
    assert.equal(row.sessions, 2);
    child = null;
  });
});
