/**
 * A fresh clone on a machine whose only Node.js is too old to run the TypeScript sources (Node 20) still gets a
 * working proxy from `npm ci && npm start`: the `node` package pinned in package.json puts a Node 24 into
 * node_modules/.bin, which `npm run` puts first in PATH, so the start script's `node` is that one.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SECRET = 'd0d6e111bada5511fcce9584deadbeef';
const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  devDependencies: Record<string, string>;
  engines: { node: string };
};
const lock = JSON.parse(readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version: string; hasInstallScript?: boolean; dev?: boolean }>;
};

const major = (version: string) => Number(/(\d+)/.exec(version)![1]);

/** PATH without any node_modules/.bin (as a shell has it before `npm run` adds them). */
const plainPath = (process.env.PATH ?? '/usr/bin:/bin')
  .split(path.delimiter)
  .filter((dir) => !dir.includes(`node_modules${path.sep}.bin`))
  .join(path.delimiter);

/** The first `node` on that PATH when it cannot strip types (older than 22.6), with its npm; else null. */
function oldNode(): { node: string; npmCli: string; version: string } | null {
  for (const dir of plainPath.split(path.delimiter)) {
    const node = path.join(dir, 'node');
    if (!existsSync(node)) continue;
    const r = spawnSync(node, ['-p', 'process.versions.node'], { encoding: 'utf8' });
    if (r.status !== 0) return null;
    const [maj, min] = r.stdout.trim().split('.').map(Number) as [number, number];
    if (maj > 22 || (maj === 22 && min >= 6)) return null;
    const npm = path.join(dir, 'npm');
    if (!existsSync(npm)) return null;
    return { node, npmCli: realpathSync(npm), version: r.stdout.trim() };
  }
  return null;
}

/** npm's own CLI script, to run it under a Node of our choice. */
function npmCli(): string | null {
  if (process.env.npm_execpath) return process.env.npm_execpath;
  for (const dir of plainPath.split(path.delimiter)) {
    const npm = path.join(dir, 'npm');
    if (existsSync(npm)) return realpathSync(npm);
  }
  return null;
}

function startProxy(node: string, cli: string, configFile: string, PATH: string): ChildProcess {
  const env: NodeJS.ProcessEnv = { HOME: process.env.HOME ?? tmpdir(), PATH };
  return spawn(node, [cli, 'start', '--silent', '--', 'run', '--config', configFile], {
    cwd: REPO,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Waits for the links, then stops the proxy with SIGTERM (passed on by npm): it must drain and exit 0. */
async function linksOf(child: ChildProcess): Promise<void> {
  let out = '';
  let err = '';
  const exited = once(child, 'exit');
  child.stderr!.on('data', (d) => (err += d));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (/secure: tg:\/\/proxy\S*\n/.test(out)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${err}`)));
  });
  assert.match(out, /secure: tg:\/\/proxy\?server=127\.0\.0\.1&port=\d+&secret=dd/, err);
  child.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0, err);
  assert.doesNotMatch(err, /old Node\.js in PATH/);
}

describe('npm ci && npm start with only an old Node.js on the machine', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mtproxy-old-node-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const configFile = path.join(dir, 'mtproxy.toml');
  writeFileSync(
    configFile,
    `workers = 1\n[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\nallowed_protocols = ["secure"]\n`,
  );

  it('package.json pins a Node.js package new enough to run the sources, and the lock installs it', () => {
    assert.ok(major(pkg.devDependencies.node!) >= 24, pkg.devDependencies.node);
    const locked = lock.packages['node_modules/node'];
    assert.ok(locked && major(locked.version) >= 24, 'package-lock.json has node_modules/node >= 24');
    // Its install script fetches the platform's binary: `npm ci` runs it (no --ignore-scripts in the README).
    assert.equal(locked.hasInstallScript, true);
    // The start script calls `node` by name, so npm's PATH (node_modules/.bin first) picks the pinned one.
    assert.match(pkg.scripts.start!, /^(exec )?node /);
    const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
    assert.ok(readme.includes('npm ci && npm start'));
    assert.doesNotMatch(readme, /npm ci --ignore-scripts && npm start/);
  });

  const cli = npmCli();
  it('the start script never runs the node found in PATH (one standing in for Node 20 fails loudly)', {
    skip: !cli && 'npm is not installed',
  }, async () => {
    const stub = path.join(dir, 'old-bin');
    mkdirSync(stub, { recursive: true });
    const fake = path.join(stub, 'node');
    writeFileSync(fake, '#!/bin/sh\necho "this is the old Node.js in PATH" >&2\nexit 97\n');
    chmodSync(fake, 0o755);
    await linksOf(startProxy(process.execPath, cli!, configFile, `${stub}${path.delimiter}${plainPath}`));
  });

  const old = oldNode();
  it(`under this machine's own old Node.js and its npm (${old?.version ?? 'none'})`, {
    skip: !old && 'the node in PATH strips types itself (no older Node.js here to try)',
  }, async () => {
    await linksOf(startProxy(old!.node, old!.npmCli, configFile, plainPath));
  });
});
