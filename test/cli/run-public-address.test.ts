/**
 * `mtproxy run` without public_host: the links use the public address found the way config/public-address.ts
 * finds it, and the start output says so when that address is only a guess (defect: links pointing at a
 * private address while the quick start says to open them on a phone).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { discoverPublicAddress } from '../../src/config/public-address.ts';
import { freePort } from '../helpers/ports.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';
import { SECRET, start, waitForOutput } from './spawn-cli.ts';

describe('mtproxy run: the link host without public_host', () => {
  const dir = suiteTempDir('mtproxy-run-host-');

  test('the links use the address the proxy finds, and a guess is said to be one', async (t) => {
    const cwd = await mkdtemp(path.join(dir(), 'host-'));
    const port = await freePort();
    const text = `[[listeners]]\nhost = "0.0.0.0"\nport = ${port}\nsecret = "${SECRET}"\nallowed_protocols = ["secure"]\n[upstream]\nmode = "direct"\n`;
    const file = path.join(cwd, 'mtproxy.toml');
    await writeFile(file, text);
    const child = start(['--config', file], cwd);
    t.after(() => child.kill('SIGKILL'));
    const stdout = await waitForOutput(child, /mtproxy started/);
    child.kill('SIGTERM');
    await once(child, 'exit');

    // Direct mode: no lookup, so this is exactly what the proxy found on this machine.
    const found = await discoverPublicAddress(parseConfig(text));
    const host = /tg:\/\/proxy\?server=([^&]+)&/.exec(stdout)?.[1];
    assert.equal(host, found.host?.includes(':') ? `[${found.host}]` : (found.host ?? '127.0.0.1'));
    if (found.source === 'guess')
      assert.match(stdout, /Warning: the links of "main" use \S+, only a guess: .*set public_host/);
    else assert.doesNotMatch(stdout, /only a guess/);
  });
});
