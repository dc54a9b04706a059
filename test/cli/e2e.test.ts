import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';
import { SECRET, start, waitForOutput } from './spawn-cli.ts';

/** The shipped entry point, as an operator runs it (worker threads included), relaying to a fake DC. */
describe('mtproxy run: end to end through the command line', () => {
  const dir = suiteTempDir('mtproxy-e2e-');
  let dc: FakeDc;
  before(async () => {
    dc = await FakeDc.start();
  });
  after(() => {
    dc.server.close();
  });

  for (const workers of ['1', '2']) {
    test(`classic, dd and ee links work with ${workers} worker(s)`, async (t) => {
      const cwd = await mkdtemp(path.join(dir(), `w${workers}-`));
      await writeFile(
        path.join(cwd, 'mtproxy.toml'),
        `workers = ${workers}\n` +
          '[[listeners]]\nhost = "127.0.0.1"\nport = 0\n' +
          `secret = "${SECRET}"\ntls_domain = "example.com"\nfronting = "off"\n` +
          `[upstream]\nmode = "direct"\n[upstream.dc]\n2 = ["${dc.address}"]\n` +
          '[log]\nlevel = "warn"\n',
      );
      const child = start([], cwd);
      t.after(() => child.kill('SIGKILL'));
      const stdout = await waitForOutput(child, /tls example\.com: https:\/\/t\.me\S+\n/);
      const port = Number(/port=(\d+)/.exec(stdout)![1]);
      const secrets = [...stdout.matchAll(/tg:\/\/proxy\?\S*secret=([0-9a-f]+)/g)].map((m) => m[1]!);
      assert.equal(secrets.length, 3);
      for (const secret of secrets) {
        const conn = await connectObfuscated({ host: '127.0.0.1', port, secret, dcId: 2 });
        const payload = Buffer.from(`hello over ${secret.slice(0, 2)}`.padEnd(32, '.'));
        conn.sendFrame(payload);
        const answer = await conn.nextFrame();
        assert.deepEqual(answer.payload, payload, secret.slice(0, 2));
        conn.end();
      }
      child.kill('SIGTERM');
      assert.equal((await once(child, 'exit'))[0], 0);
    });
  }

  test('the foundation issue example keys alone (DC 2 and media DC -2 overridden) relay both ways', async (t) => {
    const cwd = await mkdtemp(path.join(dir(), 'contract-'));
    const file = path.join(cwd, 'contract.toml');
    // The example of the issue, with a loopback address and a free port instead of 0.0.0.0:1443.
    await writeFile(
      file,
      '[[listeners]]\nname = "main"\nhost = "127.0.0.1"\nport = 0\n' +
        'secret = "0123456789abcdef0123456789abcdef"\nallowed_protocols = ["classic", "secure", "tls"]\n\n' +
        '[upstream]\nmode = "direct"\nprefer_ipv6 = false\n\n' +
        `[upstream.dc]\n2 = ["${dc.address}"]\n-2 = ["${dc.address}"]\n`,
    );
    const child = start(['--config', file], cwd);
    t.after(() => child.kill('SIGKILL'));
    const stdout = await waitForOutput(child, /secure: https:\/\/t\.me\S+\n/);
    const port = Number(/port=(\d+)/.exec(stdout)![1]);
    const secrets = [...stdout.matchAll(/tg:\/\/proxy\?\S*secret=([0-9a-f]+)/g)].map((m) => m[1]!);
    assert.deepEqual(secrets, ['0123456789abcdef0123456789abcdef', 'dd0123456789abcdef0123456789abcdef']);
    for (const secret of secrets) {
      for (const dcId of [2, -2]) {
        const conn = await connectObfuscated({ host: '127.0.0.1', port, secret, dcId });
        const payload = Buffer.from(`dc ${dcId} over ${secret.slice(0, 2)}`.padEnd(32, '.'));
        conn.sendFrame(payload);
        assert.deepEqual((await conn.nextFrame()).payload, payload);
        conn.end();
      }
    }
    assert.deepEqual(
      dc.connections.slice(-4).map((c) => c.dcId),
      [2, -2, 2, -2],
    );
    child.kill('SIGTERM');
    assert.equal((await once(child, 'exit'))[0], 0);
  });

  test('at log level trace, no log line carries a secret or the ad tag', async (t) => {
    const cwd = await mkdtemp(path.join(dir(), 'nolog-'));
    const tag = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const extra = '00112233445566778899aabbccddeeff';
    const file = path.join(cwd, 'mtproxy.toml');
    const toml = (secret: string) =>
      'workers = 2\n[[listeners]]\nhost = "127.0.0.1"\nport = 0\n' +
      `secret = "${secret}"\nsecrets = ["${extra}"]\nad_tag = "${tag}"\ntls_domain = "example.com"\n` +
      `fronting = "off"\n[upstream]\nmode = "direct"\n[upstream.dc]\n2 = ["${dc.address}"]\n` +
      '[log]\nlevel = "trace"\n';
    await writeFile(file, toml(SECRET));
    const child = start([], cwd);
    t.after(() => child.kill('SIGKILL'));
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const stdout = await waitForOutput(child, /tls example\.com: https:\/\/t\.me\S+\n/);
    const port = Number(/port=(\d+)/.exec(stdout)![1]);
    const secrets = [...stdout.matchAll(/tg:\/\/proxy\?\S*secret=([0-9a-f]+)/g)].map((m) => m[1]!);
    for (const secret of secrets) {
      const conn = await connectObfuscated({ host: '127.0.0.1', port, secret, dcId: 2 });
      conn.sendFrame(Buffer.alloc(16, 7));
      await conn.nextFrame();
      conn.end();
    }
    // Failures: a wrong secret, garbage, a fake-TLS hello with a wrong digest.
    const wrong = 'ffeeddccbbaa99887766554433221100';
    for (const secret of [wrong, `dd${wrong}`, `ee${wrong}${Buffer.from('example.com').toString('hex')}`]) {
      await connectObfuscated({ host: '127.0.0.1', port, secret, dcId: 2 }).then(
        (c) => c.close(),
        () => {},
      );
    }
    const garbage = net.connect({ host: '127.0.0.1', port }, () => garbage.end(Buffer.alloc(300, 0x5a)));
    garbage.on('error', () => {});
    await once(garbage, 'close');
    // A reload with the secret pasted from a link is refused; the message must not echo it.
    await writeFile(file, toml(`dd${SECRET}`));
    child.kill('SIGHUP');
    while (!/reload refused/.test(output)) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGTERM');
    assert.equal((await once(child, 'exit'))[0], 0);

    const logLines = output.split('\n').filter((l) => l.startsWith('{'));
    assert.ok(logLines.some((l) => l.includes('"level":"trace"') || l.includes('"level":"debug"')));
    const forbidden = [SECRET, extra, tag].flatMap((hex) => [
      hex,
      hex.toUpperCase(),
      Buffer.from(hex, 'hex').toString('base64'),
      Buffer.from(hex, 'hex').toString('base64url'),
    ]);
    for (const line of logLines) for (const f of forbidden) assert.ok(!line.includes(f), `logged: ${line}`);
    const refused = output.split('\n').find((l) => l.includes('reload refused'));
    assert.ok(refused !== undefined && !refused.includes(SECRET), `refused reload line: ${refused}`);
  });
});
