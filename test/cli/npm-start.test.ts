/** `npm start` in a checkout: the CLI with its commands (default `run`), and Ctrl-C under npm. */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Result, SECRET } from './spawn-cli.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** `npm start --silent -- ARGS` from the checkout, with the npm that runs this test when there is one. */
export function npmStart(args: string[], env: Record<string, string> = {}): ChildProcess {
  const npmCli = process.env.npm_execpath;
  const base: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of Object.keys(base)) if (k.startsWith('MTP_') && !(k in env)) delete base[k];
  return spawn(
    npmCli ? process.execPath : 'npm',
    [...(npmCli ? [npmCli] : []), 'start', '--silent', '--', ...args],
    { cwd: REPO, env: base, stdio: ['ignore', 'pipe', 'pipe'] },
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
});
