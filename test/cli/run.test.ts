import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { suiteTempDir } from '../helpers/temp-dir.ts';
import { linkSecrets, run, SECRET, start, waitForOutput } from './spawn-cli.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

describe('mtproxy run: process life cycle', () => {
  const dir = suiteTempDir('mtproxy-cli-');

  test('first start without a config writes mtproxy.toml, prints links, and SIGTERM exits 0', async (t) => {
    const cwd = await mkdtemp(path.join(dir(), 'first-'));
    const child = start(['-p', '0'], cwd);
    t.after(() => child.kill('SIGKILL'));
    const stdout = await waitForOutput(child, /secret=ee[0-9a-f]+/);
    const file = path.join(cwd, 'mtproxy.toml');
    assert.ok(existsSync(file));
    const secret = /secret = "([0-9a-f]{32})"/.exec(await readFile(file, 'utf8'))![1]!;
    const secrets = linkSecrets(stdout);
    assert.ok(secrets.includes(secret), 'classic link');
    assert.ok(secrets.includes(`dd${secret}`), 'dd link');
    assert.ok(
      secrets.some((s) => s.startsWith(`ee${secret}`)),
      'ee link',
    );
    assert.match(stdout, /https:\/\/t\.me\/proxy\?server=/);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);

    // The next start reuses the file, so the links stay the same.
    const again = start([], cwd);
    t.after(() => again.kill('SIGKILL'));
    const stdout2 = await waitForOutput(again, /secret=ee[0-9a-f]+/);
    assert.ok(linkSecrets(stdout2).includes(secret));
    again.kill('SIGINT');
    assert.equal((await once(again, 'exit'))[0], 0);
  });

  test('SIGTERM waits for open sessions at most timeouts.drain, then exits 0', async (t) => {
    const cwd = await mkdtemp(path.join(dir(), 'drain-'));
    await writeFile(
      path.join(cwd, 'mtproxy.toml'),
      `[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\nallowed_protocols = ["classic"]\n` +
        '[timeouts]\ndrain = "300ms"\n',
    );
    const child = start([], cwd, { MTP_WORKERS: '1' });
    t.after(() => child.kill('SIGKILL'));
    const stdout = await waitForOutput(child, /tg:\/\/proxy/);
    const port = Number(/port=(\d+)/.exec(stdout)![1]);
    const client = net.connect({ host: '127.0.0.1', port });
    await once(client, 'connect');
    client.on('error', () => {});
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    client.destroy();
  });

  test('npm start -- --config FILE: a SIGTERM sent to npm reaches the proxy, which exits 0 and frees its port', async (t) => {
    const cwd = await mkdtemp(path.join(dir(), 'npm-start-'));
    const file = path.join(cwd, 'contract.toml');
    await writeFile(
      file,
      `[[listeners]]\nname = "main"\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\n` +
        '[upstream]\nmode = "direct"\n',
    );
    // npm runs the script through sh; without exec the signal would stop the shell and orphan the proxy.
    const npmCli = process.env.npm_execpath;
    const child = spawn(
      npmCli ? process.execPath : 'npm',
      [...(npmCli ? [npmCli] : []), 'start', '--silent', '--', '--config', file],
      { cwd: REPO, env: { ...process.env, MTP_WORKERS: '2' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    t.after(() => child.kill('SIGKILL'));
    const stdout = await waitForOutput(child, /tg:\/\/proxy\S*\n/);
    const port = Number(/port=(\d+)/.exec(stdout)![1]);
    child.kill('SIGTERM');
    assert.equal((await once(child, 'exit'))[0], 0);
    const probe = net.connect({ host: '127.0.0.1', port });
    const [err] = (await once(probe, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
  });

  test('a bad config stops the start with one line and exit code 1', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'bad-'));
    const file = path.join(cwd, 'bad.toml');
    await writeFile(file, '[[listeners]]\nport = 0\nsecret = "not-hex"\n');
    const r = await run(['--config', file], cwd);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'mtproxy: listeners[0].secret: expected 32 hex characters\n');
  });

  test('a port in use stops the start with one line and exit code 1', async () => {
    const blocker = net.createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const cwd = await mkdtemp(path.join(dir(), 'busy-'));
      await writeFile(
        path.join(cwd, 'mtproxy.toml'),
        `[[listeners]]\nhost = "127.0.0.1"\nport = ${port}\nsecret = "${SECRET}"\n`,
      );
      const r = await run([], cwd);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `mtproxy: listeners[0].port: 127.0.0.1:${port} is already in use\n`);
    } finally {
      blocker.close();
    }
  });
});
