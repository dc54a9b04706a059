import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { SECRET, start, waitForOutput } from './spawn-cli.ts';

/** The shipped entry point, as an operator runs it (worker threads included), relaying to a fake DC. */
describe('mtproxy run: end to end through the command line', () => {
  let dir: string;
  let dc: FakeDc;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-e2e-'));
    dc = await FakeDc.start();
  });
  after(async () => {
    dc.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  for (const workers of ['1', '2']) {
    test(`classic, dd and ee links work with ${workers} worker(s)`, async (t) => {
      const cwd = await mkdtemp(path.join(dir, `w${workers}-`));
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
});
