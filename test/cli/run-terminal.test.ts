/**
 * The start output: for a person with stdout on a terminal (a pseudo-terminal from script(1)): the links with QR
 * codes, where the config and the state are, what to do next; without a terminal, no QR code and the same facts
 * as one log line in `log.format`.
 */
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

  test('prints a QR code under each link, then where things are and what to do next', async () => {
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
      const out = await waitForOutput(child, /Next:[\s\S]*Ctrl-C stops it/);
      assert.match(out, /https:\/\/t\.me\/proxy[^\n]*\n(?:[█▀▄ ]+\r?\n){10}/);
      assert.match(out, /secure: https:\/\/t\.me\/proxy\?server=127\.0\.0\.1/);
      assert.match(out, /mtproxy is running\./);
      assert.ok(out.includes(`config   ${file}`), out);
      assert.match(out, /state {4}\S/);
      assert.match(out, /admin {4}off: /);
      assert.ok(out.includes(`mtproxy doctor --config ${file}`), out);
      // The facts go to the person, not into a log line as well.
      assert.doesNotMatch(out, /"msg":"mtproxy started"/);
    } finally {
      // Ctrl-C on the terminal reaches the proxy (in script's session) as SIGINT: it drains and exits.
      if (child.exitCode === null) {
        const exited = once(child, 'exit');
        child.stdin!.write('\x03');
        await exited;
      }
    }
  });
});

describe('run without a terminal', () => {
  const dir = suiteTempDir('mtproxy-pipe-');

  for (const format of ['json', 'pretty'] as const) {
    test(`${format}: the links, no QR code, the facts as one log line`, async () => {
      const cwd = await mkdtemp(path.join(dir(), `${format}-`));
      const file = path.join(cwd, 'mtproxy.toml');
      await writeFile(
        file,
        `workers = 1\nstate_dir = "${path.join(cwd, 'state')}"\n[[listeners]]\nhost = "127.0.0.1"\nport = 0\n` +
          `secret = "${SECRET}"\nallowed_protocols = ["secure"]\n[admin]\nlisten = "127.0.0.1:0"\n` +
          `token = "t0ken-for-the-test"\n[log]\nformat = "${format}"\n`,
      );
      const child = spawn(process.execPath, [MAIN, 'run', '--config', file], {
        cwd,
        env: { PATH: process.env.PATH ?? '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      try {
        const out = await waitForOutput(child, /mtproxy started[^\n]*\n/);
        assert.match(out, /secure: https:\/\/t\.me\/proxy[^\n]*\n/);
        assert.doesNotMatch(out, /[█▀▄]/);
        assert.doesNotMatch(out, /Next:/);
        const line = out.split('\n').find((l) => l.includes('mtproxy started'))!;
        if (format === 'json') {
          const entry = JSON.parse(line) as Record<string, unknown>;
          assert.equal(entry.level, 'info');
          assert.equal(entry.config, file);
          assert.equal(entry.stateDir, path.join(cwd, 'state'));
          assert.match(String(entry.admin), /^http:\/\/127\.0\.0\.1:\d+$/);
        } else {
          assert.match(line, /^\d\d:\d\d:\d\d INFO {2}mtproxy started config=\S+ stateDir=\S+ admin=http:/);
        }
        // The log line carries neither the secret nor the admin token.
        assert.ok(!line.includes(SECRET) && !line.includes('t0ken-for-the-test'), line);
      } finally {
        child.kill('SIGTERM');
        if (child.exitCode === null) await once(child, 'exit');
      }
    });
  }
});
