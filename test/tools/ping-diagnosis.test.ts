/**
 * `mtproxy ping` tells a wrong secret from a DC the proxy cannot reach, and the proxy says at info level (once
 * in a while, not once per client) which DC it could not reach. The proxy runs as `mtproxy run` in a child
 * process, with DC 2 at the fake DC and DC 4 at a port where nothing listens.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { start, waitForOutput } from '../cli/spawn-cli.ts';
import { runCli } from '../helpers/cli.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { freePort } from '../helpers/ports.ts';
import { TEST_SECRET_HEX } from '../helpers/proxy.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';

const DOMAIN = 'example.com';
const DOMAIN_HEX = Buffer.from(DOMAIN).toString('hex');

describe('mtproxy ping: wrong secret or unreachable DC', () => {
  const dir = suiteTempDir('mtproxy-ping-');
  let dc: FakeDc;
  let child: ChildProcess;
  let port = 0;
  let output = '';

  before(async () => {
    dc = await FakeDc.start();
    const dead = await freePort();
    const cwd = await mkdtemp(path.join(dir(), 'proxy-'));
    const file = path.join(cwd, 'mtproxy.toml');
    await writeFile(
      file,
      `[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "${TEST_SECRET_HEX}"\n` +
        `allowed_protocols = ["classic", "secure", "tls"]\ntls_domain = "${DOMAIN}"\ntls_cert_size = 2900\nfronting = "off"\n` +
        `[upstream]\nmode = "direct"\nconnect_timeout = "2s"\nconnect_retries = 0\n` +
        `[upstream.dc]\n2 = ["127.0.0.1:${dc.port}"]\n4 = ["127.0.0.1:${dead}"]\n`,
    );
    child = start(['--config', file], cwd, { MTP_WORKERS: '1', MTP_LOG_LEVEL: 'info' });
    child.stdout!.on('data', (d) => (output += d));
    const links = await waitForOutput(child, /tg:\/\/proxy\S*\n/);
    port = Number(/port=(\d+)/.exec(links)![1]);
  });

  after(async () => {
    child?.kill('SIGKILL');
    await dc?.stop();
  });

  const link = (secret: string) => `tg://proxy?server=127.0.0.1&port=${port}&secret=${secret}`;
  const ping = (secret: string, args: string[]) =>
    runCli(['ping', link(secret), '--timeout', '3000', ...args], process.cwd());

  it('a dd link: DC 2 answers, so DC 4 is one the proxy cannot reach; the proxy logs it once at info', async () => {
    const r = await ping(`dd${TEST_SECRET_HEX}`, ['--dc', '2,4', '--repeat', '3']);
    assert.equal(r.code, 1);
    const summary = r.out.join('\n');
    assert.match(summary, /The secret is right \(DC 2 answered\): the proxy cannot reach DC 4/);
    // Three clients failed on DC 4 within the interval: one info line.
    const lines = output
      .split('\n')
      .filter((l) => l.includes('"level":"info"') && l.includes('upstream connect failed'));
    assert.equal(lines.length, 1, output);
    assert.match(lines[0], /DC 4 unreachable \(ECONNREFUSED\)/);
    assert.match(lines[0], /"dc":4/);
  });

  it('an ee link: the signed TLS answer shows the secret is right even when no DC answers', async () => {
    const r = await ping(`ee${TEST_SECRET_HEX}${DOMAIN_HEX}`, ['--dc', '4']);
    assert.equal(r.code, 1);
    assert.match(r.out[1], /^DC 4 +FAIL .*the proxy accepted the secret .*cannot reach this DC/);
    assert.match(
      r.out.join('\n'),
      /The secret is right \(its TLS answer is signed with it\): the proxy cannot reach DC 4/,
    );
  });

  it('a wrong dd secret: no DC answers, and the summary says it is the secret or no DC at all', async () => {
    const r = await ping(`dd${'f'.repeat(32)}`, ['--dc', '2,4']);
    assert.equal(r.code, 1);
    const text = r.out.join('\n');
    assert.match(text, /No DC answered after the handshake: the secret is wrong/);
    assert.doesNotMatch(text, /The secret is right/);
  });
});
