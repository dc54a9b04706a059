/** Start-up failures outside the listeners end with one line on stderr and exit code 1, in every worker mode. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { suiteTempDir } from '../helpers/temp-dir.ts';
import { run, SECRET } from './spawn-cli.ts';

const LISTENER = `[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\n[upstream]\nmode = "direct"\n`;
const TOKEN = 'a-long-enough-admin-token-0123456789';
const MODES: Array<{ workers: string; mode: string }> = [
  { workers: '1', mode: 'auto' },
  { workers: '2', mode: 'threads' },
  { workers: '2', mode: 'processes' },
];

describe('mtproxy run: start-up errors are one line', () => {
  const dir = suiteTempDir('mtproxy-startup-');
  const blocker = net.createServer();
  let busy = 0;
  before(async () => {
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    busy = (blocker.address() as net.AddressInfo).port;
  });
  after(() => blocker.close());

  for (const { workers, mode } of MODES) {
    const env = { MTP_WORKERS: workers, MTP_WORKER_MODE: mode };
    const label = `${workers} worker(s), ${mode}`;

    test(`[admin] listen on a busy port (${label})`, async () => {
      const cwd = await mkdtemp(path.join(dir(), 'admin-'));
      const file = path.join(cwd, 'mtproxy.toml');
      await writeFile(file, `${LISTENER}[admin]\nlisten = "127.0.0.1:${busy}"\ntoken = "${TOKEN}"\n`);
      const r = await run(['--config', file], cwd, env);
      assert.equal(r.stderr, `mtproxy: admin.listen: 127.0.0.1:${busy} is already in use\n`);
      assert.equal(r.code, 1);
    });

    test(`[metrics] listen on a busy port (${label})`, async () => {
      const cwd = await mkdtemp(path.join(dir(), 'metrics-'));
      const file = path.join(cwd, 'mtproxy.toml');
      await writeFile(file, `${LISTENER}[metrics]\nlisten = "127.0.0.1:${busy}"\n`);
      const r = await run(['--config', file], cwd, env);
      assert.equal(r.stderr, `mtproxy: metrics.listen: 127.0.0.1:${busy} is already in use\n`);
      assert.equal(r.code, 1);
    });

    test(`a state_dir that cannot be created (${label})`, async () => {
      const cwd = await mkdtemp(path.join(dir(), 'state-'));
      // A file where the folder should be: a path nobody can write to, even when the tests run as root.
      const blocked = path.join(cwd, 'not-a-folder');
      await writeFile(blocked, '');
      const file = path.join(cwd, 'mtproxy.toml');
      await writeFile(
        file,
        `state_dir = "${path.join(blocked, 'state')}"\n${LISTENER}[admin]\nlisten = "127.0.0.1:0"\ntoken = "${TOKEN}"\n`,
      );
      const r = await run(['--config', file], cwd, env);
      assert.match(
        r.stderr,
        /^mtproxy: state_dir: cannot open the policy tables database in [^\n]*not-a-folder[^\n]*: [^\n]+\n$/,
      );
      assert.equal(r.code, 1);
    });
  }
});
