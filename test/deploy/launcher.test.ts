/**
 * bin/mtproxy.js on a Node that does not strip types by itself re-runs the CLI in a child Node: the exit code
 * comes back and signals go through (SIGHUP reloads, SIGTERM drains).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  /** Start `mtproxy run` through the launcher and read its environment and mappings once it serves. */
  const started = async (env: NodeJS.ProcessEnv): Promise<{ environ: string[]; maps: string }> => {
    const dir = mkdtempSync(join(tmpdir(), 'mtproxy-launcher-'));
    const file = join(dir, 'mtproxy.toml');
    writeFileSync(
      file,
      `workers = 1\n[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "0123456789abcdef0123456789abcdef"\nallowed_protocols = ["secure"]\n`,
    );
    const child = spawn(process.execPath, [launcher, 'run', '--config', file], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env,
    });
    try {
      const lines = createInterface({ input: child.stdout! });
      for await (const line of lines) if (/Proxy links for listener "main"/.test(line)) break;
      // The same pid: the launcher replaced itself rather than starting a child.
      return {
        environ: readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0'),
        maps: readFileSync(`/proc/${child.pid}/maps`, 'utf8'),
      };
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const {
    MALLOC_ARENA_MAX: _arenas,
    LD_PRELOAD: _preload,
    MALLOC_CONF: _conf,
    MTPROXY_MALLOC: _malloc,
    ...cleanEnv
  } = process.env;

  it('runs the proxy in its own process with two malloc arenas, unless the environment says otherwise', async () => {
    const arenasOf = async (env: NodeJS.ProcessEnv) =>
      (await started(env)).environ.find((e) => e.startsWith('MALLOC_ARENA_MAX='));
    assert.equal(await arenasOf(cleanEnv), 'MALLOC_ARENA_MAX=2');
    assert.equal(await arenasOf({ ...cleanEnv, MALLOC_ARENA_MAX: '4' }), 'MALLOC_ARENA_MAX=4');
  });

  const jemalloc = [
    '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
    '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2',
    '/usr/lib64/libjemalloc.so.2',
    '/usr/lib/libjemalloc.so.2',
    '/usr/local/lib/libjemalloc.so.2',
  ].find((p) => existsSync(p));

  it("preloads the system's jemalloc unless MTPROXY_MALLOC=system, keeping an operator's MALLOC_CONF", {
    skip: jemalloc ? false : 'no libjemalloc.so.2 on this system',
  }, async () => {
    const preloaded = await started(cleanEnv);
    assert.ok(preloaded.environ.includes(`LD_PRELOAD=${jemalloc}`));
    assert.ok(preloaded.environ.some((e) => e.startsWith('MALLOC_CONF=background_thread:true,')));
    assert.match(preloaded.maps, /libjemalloc/);
    // An operator's own allocator settings stay as they are.
    const tuned = await started({ ...cleanEnv, MALLOC_CONF: 'narenas:1' });
    assert.ok(tuned.environ.includes('MALLOC_CONF=narenas:1'));
    const system = await started({ ...cleanEnv, MTPROXY_MALLOC: 'system' });
    assert.doesNotMatch(system.maps, /libjemalloc/);
    assert.ok(!system.environ.some((e) => e.startsWith('LD_PRELOAD=')));
    assert.ok(system.environ.includes('MALLOC_ARENA_MAX=2'));
  });
});
