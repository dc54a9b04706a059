/**
 * bin/mtproxy.js on a Node that does not strip types by itself re-runs the CLI in a child Node: the exit code
 * comes back and signals go through (SIGHUP reloads, SIGTERM drains).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const launcher = fileURLToPath(new URL('../../bin/mtproxy.js', import.meta.url));
// Node 24 without its type stripping stands in for an older Node.
const noStripping = ['--no-experimental-strip-types', launcher];

describe('bin/mtproxy.js without built-in type stripping', () => {
  it('runs a command and passes its exit code back', () => {
    const ok = spawnSync(process.execPath, [...noStripping, 'secret'], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^[0-9a-f]{32}\n$/);
    const bad = spawnSync(process.execPath, [...noStripping, 'no-such-command'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown command/);
  });

  it('passes SIGHUP and SIGTERM on to the proxy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mtproxy-launcher-'));
    const file = join(dir, 'mtproxy.toml');
    writeFileSync(
      file,
      `workers = 1\n[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "0123456789abcdef0123456789abcdef"\nallowed_protocols = ["secure"]\n`,
    );
    const child = spawn(process.execPath, [...noStripping, 'run', '--config', file], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const waitFor = async (pattern: RegExp) => {
      for (;;) {
        const { value, done } = await lines.next();
        if (done) throw new Error(`output ended before ${pattern}`);
        if (pattern.test(value as string)) return;
      }
    };
    try {
      await waitFor(/Proxy links for listener "main"/);
      child.kill('SIGHUP');
      await waitFor(/"msg":"reload done"/);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bin/mtproxy.js on Linux', { skip: process.platform !== 'linux' }, () => {
  it('runs the proxy in its own process with two malloc arenas, unless the environment says otherwise', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mtproxy-launcher-'));
    const file = join(dir, 'mtproxy.toml');
    writeFileSync(
      file,
      `workers = 1\n[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "0123456789abcdef0123456789abcdef"\nallowed_protocols = ["secure"]\n`,
    );
    const arenasOf = async (env: NodeJS.ProcessEnv): Promise<string | undefined> => {
      const child = spawn(process.execPath, [launcher, 'run', '--config', file], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env,
      });
      try {
        const lines = createInterface({ input: child.stdout! });
        for await (const line of lines) if (/Proxy links for listener "main"/.test(line)) break;
        // The same pid: the launcher replaced itself rather than starting a child.
        const environ = readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0');
        return environ.find((e) => e.startsWith('MALLOC_ARENA_MAX='));
      } finally {
        child.kill('SIGKILL');
      }
    };
    try {
      const { MALLOC_ARENA_MAX: _, ...env } = process.env;
      assert.equal(await arenasOf(env), 'MALLOC_ARENA_MAX=2');
      assert.equal(await arenasOf({ ...env, MALLOC_ARENA_MAX: '4' }), 'MALLOC_ARENA_MAX=4');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
