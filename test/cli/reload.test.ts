import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { suiteTempDir } from '../helpers/temp-dir.ts';
import { SECRET, start, waitForOutput } from './spawn-cli.ts';

/** One listener on 127.0.0.1, any port, that accepts only `protocol`. */
function listenerToml(name: string, protocol: 'classic' | 'secure'): string {
  return `[[listeners]]\nname = "${name}"\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\nallowed_protocols = ["${protocol}"]\n`;
}

describe('mtproxy run: reloading', () => {
  const dir = suiteTempDir('mtproxy-cli-');

  test('SIGHUP reloads the file; an invalid file is refused with one line and the proxy keeps running', async (t) => {
    const cwd = await mkdtemp(path.join(dir(), 'hup-'));
    const file = path.join(cwd, 'mtproxy.toml');
    const listener = (name: string) => listenerToml(name, 'classic');
    await writeFile(file, listener('a'));
    const child = start([], cwd, { MTP_WORKERS: '1' });
    t.after(() => child.kill('SIGKILL'));
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    await waitForOutput(child, /listener "a"[\s\S]*tg:\/\/proxy/);

    await writeFile(file, listener('a') + listener('b'));
    const reloaded = waitForOutput(child, /listener "b"[\s\S]*https:\/\/t\.me/);
    child.kill('SIGHUP');
    await reloaded;

    await writeFile(file, listener('a') + 'colour = "x"\n');
    child.kill('SIGHUP');
    while (!stderr.includes('reload refused')) await new Promise((r) => setTimeout(r, 20));
    assert.match(stderr, /mtproxy: reload refused: listeners\[0\]\.colour: unknown key[^\n]*\n$/);
    assert.equal(child.exitCode, null, 'still running');

    child.kill('SIGTERM');
    assert.equal((await once(child, 'exit'))[0], 0);
  });

  test('--watch reloads when the config file is saved', async (t) => {
    const cwd = await mkdtemp(path.join(dir(), 'watch-'));
    const file = path.join(cwd, 'mtproxy.toml');
    const listener = (name: string) => listenerToml(name, 'secure');
    await writeFile(file, listener('a'));
    const child = start(['--watch'], cwd, { MTP_WORKERS: '1' });
    t.after(() => child.kill('SIGKILL'));
    await waitForOutput(child, /listener "a"[\s\S]*https:\/\/t\.me/);
    const reloaded = waitForOutput(child, /listener "w2"[\s\S]*https:\/\/t\.me/);
    await writeFile(file, listener('a') + listener('w2'));
    await reloaded;
    child.kill('SIGTERM');
    assert.equal((await once(child, 'exit'))[0], 0);
  });
});
