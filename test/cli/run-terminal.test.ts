/** The start output for a person: with stdout on a terminal (a pseudo-terminal from script(1)), QR codes. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { suiteTempDir } from '../helpers/temp-dir.ts';
import { SECRET, waitForOutput } from './spawn-cli.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const hasScript = spawnSync('script', ['--version']).status === 0;

describe('run on a terminal', { skip: !hasScript && 'script(1) is not installed' }, () => {
  const dir = suiteTempDir('mtproxy-tty-');

  test('prints a QR code under each link', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'tty-'));
    const file = path.join(cwd, 'mtproxy.toml');
    await writeFile(
      file,
      `workers = 1\n[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\nallowed_protocols = ["secure"]\n`,
    );
    const command = [process.execPath, MAIN, 'run', '--config', file].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    try {
      const out = await waitForOutput(child, /https:\/\/t\.me\/proxy[^\n]*\n(?:[█▀▄ ]+\r?\n){10}/);
      assert.match(out, /secure: https:\/\/t\.me\/proxy\?server=127\.0\.0\.1/);
    } finally {
      // Ctrl-C on the terminal reaches the proxy (in script's session) as SIGINT: it drains and exits.
      if (child.exitCode === null) {
        const exited = once(child, 'exit');
        child.stdin!.write('\x03');
        await exited;
      }
    }
  });

  test('without a terminal, no QR code', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'pipe-'));
    const file = path.join(cwd, 'mtproxy.toml');
    await writeFile(
      file,
      `workers = 1\n[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\nallowed_protocols = ["secure"]\n`,
    );
    const child = spawn(process.execPath, [MAIN, 'run', '--config', file], {
      cwd,
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const out = await waitForOutput(child, /secure: https:\/\/t\.me\/proxy[^\n]*\n/);
      assert.doesNotMatch(out, /[█▀▄]/);
    } finally {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    }
  });
});
