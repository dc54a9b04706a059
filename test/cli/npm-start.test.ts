/** `npm start` in a checkout: the CLI with its commands (default `run`), and Ctrl-C under npm. */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { suiteTempDir } from '../helpers/temp-dir.ts';
import { type Result, SECRET, start, waitForOutput } from './spawn-cli.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** `npm start --silent -- ARGS` from the checkout, with the npm that runs this test when there is one. */
export function npmStart(
  args: string[],
  env: Record<string, string> = {},
  detached = false,
): ChildProcess {
  const npmCli = process.env.npm_execpath;
  const base: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of Object.keys(base)) if (k.startsWith('MTP_') && !(k in env)) delete base[k];
  return spawn(
    npmCli ? process.execPath : 'npm',
    [...(npmCli ? [npmCli] : []), 'start', '--silent', '--', ...args],
    { cwd: REPO, env: base, stdio: ['ignore', 'pipe', 'pipe'], detached },
  );
}

/** Runs a command that ends by itself; one that does not (a proxy started by mistake) is stopped after a while. */
async function npmStartResult(args: string[]): Promise<Result> {
  const child = npmStart(args);
  const stray = setTimeout(() => child.kill('SIGTERM'), 30_000);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(stray);
  return { code, stdout, stderr };
}

describe('npm start', () => {
  test('npm start -- COMMAND runs that command, not a proxy', async () => {
    const r = await npmStartResult(['secret', '--dd', '-s', SECRET]);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, `dd${SECRET}\n`);
    assert.equal(r.code, 0);
  });

  test('run refuses a stray argument with one line and exit code 2', async () => {
    const r = await npmStartResult(['run', 'doctor', '-p', '0', '-s', SECRET]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'mtproxy run: unexpected argument "doctor" (see mtproxy --help)\n');
    assert.equal(r.stdout, '');
  });

  const dir = suiteTempDir('mtproxy-npm-');

  for (const workers of [1, 2]) {
    test(`one Ctrl-C under npm start drains the open sessions (${workers} worker(s))`, async (t) => {
      const cwd = await mkdtemp(path.join(dir(), 'ctrl-c-'));
      const file = path.join(cwd, 'mtproxy.toml');
      await writeFile(
        file,
        `[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\nallowed_protocols = ["classic"]\n` +
          '[upstream]\nmode = "direct"\n[timeouts]\ndrain = "1s"\n',
      );
      // Its own process group, as a shell gives a foreground job: Ctrl-C signals every process in it, and
      // npm passes the signal on to the proxy as well, so the proxy sees two SIGINTs.
      const child = npmStart(['--config', file], { MTP_WORKERS: String(workers) }, true);
      t.after(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {}
      });
      let output = '';
      child.stdout!.on('data', (d) => (output += d));
      const stdout = await waitForOutput(child, /tg:\/\/proxy\S*\n/);
      const port = Number(/port=(\d+)/.exec(stdout)![1]);
      const client = net.connect({ host: '127.0.0.1', port });
      client.on('error', () => {});
      await once(client, 'connect');
      process.kill(-child.pid!, 'SIGINT');
      const [code] = await once(child, 'exit');
      client.destroy();
      assert.match(output, /shutting down: draining sessions/);
      assert.doesNotMatch(output, /exiting without waiting/);
      assert.equal(code, 0);
    });
  }

  test('a second Ctrl-C sent deliberately later stops without waiting for the drain', async (t) => {
    const cwd = await mkdtemp(path.join(dir(), 'force-'));
    await writeFile(
      path.join(cwd, 'mtproxy.toml'),
      `[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\nallowed_protocols = ["classic"]\n` +
        '[upstream]\nmode = "direct"\n[timeouts]\ndrain = "10m"\n',
    );
    const child = start([], cwd, { MTP_WORKERS: '1' });
    t.after(() => child.kill('SIGKILL'));
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    const stdout = await waitForOutput(child, /tg:\/\/proxy\S*\n/);
    const port = Number(/port=(\d+)/.exec(stdout)![1]);
    const client = net.connect({ host: '127.0.0.1', port });
    client.on('error', () => {});
    await once(client, 'connect');
    const exited = once(child, 'exit');
    // Keep pressing Ctrl-C: the ones within the grace count as the first, a later one forces the exit.
    const presses = setInterval(() => child.kill('SIGINT'), 250);
    child.kill('SIGINT');
    const [code] = await exited;
    clearInterval(presses);
    client.destroy();
    assert.match(output, /second signal: exiting without waiting for sessions/);
    assert.equal(code, 1);
  });
});
