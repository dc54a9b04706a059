/**
 * The console with worker threads: the admin server (and so the console) runs in the main thread, over
 * every worker's numbers. A user created through the console relays on whichever worker takes it, its
 * usage and the traffic reach the live stream, and disabling it through the console ends its session.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated } from '../../../src/client/obfuscated-client.ts';
import { parseConfig } from '../../../src/config/load.ts';
import { logger } from '../../../src/log.ts';
import { Stats } from '../../../src/metrics/stats.ts';
import { reusePortSupported, Supervisor } from '../../../src/workers/supervisor.ts';
import { CONSOLE_TOKEN, raw, sameOrigin, signIn } from '../../helpers/console.ts';
import { FakeDc } from '../../helpers/fake-dc.ts';
import { TEST_SECRET_HEX } from '../../helpers/proxy.ts';
import { suiteTempDir } from '../../helpers/temp-dir.ts';

let dc: FakeDc;
let sup: Supervisor;
let base = '';

/** Read the live stream (with users) until `done` accepts what came so far. */
async function until(cookie: string, done: (text: string) => boolean): Promise<string> {
  const controller = new AbortController();
  const res = await fetch(`${base}/console/api/events?users=1`, {
    headers: { cookie, 'sec-fetch-site': 'same-origin' },
    signal: controller.signal,
  });
  assert.equal(res.status, 200);
  let text = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      // Keep the latest snapshots only: each check looks at what the last pushes said.
      if (text.length > 200_000) text = text.slice(-100_000);
      if (done(text)) return text;
    }
  } finally {
    controller.abort();
  }
  throw new Error('the live stream ended');
}

function lastUsers(text: string): Array<{ name: string; usage: { bytes: number; sessions_active: number } }> {
  const all = [...text.matchAll(/event: users\ndata: (.*)\n/g)];
  return all.length === 0 ? [] : JSON.parse(all[all.length - 1][1]).users;
}

describe('console: with worker threads', () => {
  const dir = suiteTempDir('mtp-console-workers-');

  before(async () => {
    dc = await FakeDc.start();
    const log = logger.child({ test: 'console-workers' });
    log.level = 'silent';
    const config = parseConfig(`
state_dir = ${JSON.stringify(dir())}
workers = 2
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"

[admin]
listen = "127.0.0.1:0"
token = "${CONSOLE_TOKEN}"

[log]
level = "silent"

[upstream]
mode = "direct"
[upstream.dc]
2 = ["${dc.address}"]
`);
    sup = new Supervisor(config, { log, stats: new Stats() });
    await sup.start();
    base = `http://127.0.0.1:${sup.operations.adminAddress()!.port}`;
  });

  after(async () => {
    await sup?.stop(0);
    await dc?.stop();
  });

  it('a user made in the console relays on the workers, its usage shows live, disabling it ends the session', async (t) => {
    if (!(await reusePortSupported())) t.skip('no SO_REUSEPORT here');
    const { cookie, csrf } = await signIn(base);
    const headers = { cookie, ...sameOrigin(base), 'x-csrf-token': csrf, 'content-type': 'application/json' };
    const created = await raw(base, 'POST', '/console/api/users', headers, JSON.stringify({ name: 'carol' }));
    assert.equal(created.status, 201, created.body);
    const { secret } = JSON.parse(created.body);

    const client = await connectObfuscated({
      host: '127.0.0.1',
      port: sup.address('main').port,
      secret,
      dcId: 2,
    });
    for (let i = 0; i < 10; i++) {
      client.sendFrame(Buffer.alloc(20_000, i));
      await client.nextFrame(5000);
    }
    const text = await until(cookie, (s) => {
      const carol = lastUsers(s).find((u) => u.name === 'carol');
      return carol !== undefined && carol.usage.bytes >= 400_000 && carol.usage.sessions_active === 1;
    });
    const statuses = [...text.matchAll(/event: status\ndata: (.*)\n/g)];
    const status = JSON.parse(statuses[statuses.length - 1][1]);
    assert.ok(status.listeners[0].bytesFromClient >= 200_000, 'the traffic of the workers is summed');

    const disabled = await raw(base, 'POST', '/console/api/users/carol/disable', headers);
    assert.equal(disabled.status, 200);
    await client.closed;
    await until(cookie, (s) => lastUsers(s).find((u) => u.name === 'carol')?.usage.sessions_active === 0);
  });
});
