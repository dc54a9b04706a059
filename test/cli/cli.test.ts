import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const SECRET = 'd0d6e111bada5511fcce9584deadbeef';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of Object.keys(env)) if (k.startsWith('MTP_') && !(k in extra)) delete env[k];
  return env;
}

function start(args: string[], cwd: string, env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [MAIN, ...args], {
    cwd,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function run(args: string[], cwd: string, env: Record<string, string> = {}): Promise<Result> {
  const child = start(args, cwd, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/** Collects output until `pattern` shows up on stdout. */
function waitForOutput(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const onExit = (code: number) => reject(new Error(`exited with ${code}: ${stderr}`));
    child.stderr!.on('data', (d) => (stderr += d));
    child.stdout!.on('data', (d) => {
      stdout += d;
      if (pattern.test(stdout)) {
        child.off('exit', onExit);
        resolve(stdout);
      }
    });
    child.once('exit', onExit);
  });
}

function linkSecrets(stdout: string): string[] {
  return [...stdout.matchAll(/tg:\/\/proxy\?server=[^&\s]+&port=\d+&secret=([0-9a-f]+)/g)].map((m) => m[1]!);
}

describe('mtproxy CLI', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('first start without a config writes mtproxy.toml, prints links, and SIGTERM exits 0', async () => {
    const cwd = await mkdtemp(path.join(dir, 'first-'));
    const child = start(['-p', '0'], cwd);
    const stdout = await waitForOutput(child, /secret=ee[0-9a-f]+/);
    const file = path.join(cwd, 'mtproxy.toml');
    assert.ok(existsSync(file));
    const secret = /secret = "([0-9a-f]{32})"/.exec(await readFile(file, 'utf8'))![1]!;
    const secrets = linkSecrets(stdout);
    assert.ok(secrets.includes(secret), 'classic link');
    assert.ok(secrets.includes(`dd${secret}`), 'dd link');
    assert.ok(
      secrets.some((s) => s.startsWith(`ee${secret}`)),
      'ee link',
    );
    assert.match(stdout, /https:\/\/t\.me\/proxy\?server=/);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);

    // The next start reuses the file, so the links stay the same.
    const again = start([], cwd);
    const stdout2 = await waitForOutput(again, /secret=ee[0-9a-f]+/);
    assert.ok(linkSecrets(stdout2).includes(secret));
    again.kill('SIGINT');
    assert.equal((await once(again, 'exit'))[0], 0);
  });

  test('SIGTERM waits for open sessions at most timeouts.drain, then exits 0', async () => {
    const cwd = await mkdtemp(path.join(dir, 'drain-'));
    await writeFile(
      path.join(cwd, 'mtproxy.toml'),
      `[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\nallowed_protocols = ["classic"]\n` +
        '[timeouts]\ndrain = "300ms"\n',
    );
    const child = start([], cwd);
    const stdout = await waitForOutput(child, /tg:\/\/proxy/);
    const port = Number(/port=(\d+)/.exec(stdout)![1]);
    const client = net.connect({ host: '127.0.0.1', port });
    await once(client, 'connect');
    client.on('error', () => {});
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    client.destroy();
  });

  test('a bad config stops the start with one line and exit code 1', async () => {
    const cwd = await mkdtemp(path.join(dir, 'bad-'));
    const file = path.join(cwd, 'bad.toml');
    await writeFile(file, '[[listeners]]\nport = 0\nsecret = "not-hex"\n');
    const r = await run(['--config', file], cwd);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'mtproxy: listeners[0].secret: expected 32 hex characters\n');

    await writeFile(file, `[[listeners]]\nport = 0\nsecret = "${SECRET}"\ncolour = "blue"\n`);
    const unknown = await run([], cwd, { MTP_CONFIG: file });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^mtproxy: listeners\[0\]\.colour: unknown key[^\n]*\n$/);

    const missing = await run(['-c', path.join(cwd, 'nope.toml')], cwd);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /^mtproxy: .*nope\.toml: expected a readable config file: file not found\n$/,
    );
  });

  test('a port in use stops the start with one line and exit code 1', async () => {
    const blocker = net.createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const cwd = await mkdtemp(path.join(dir, 'busy-'));
      await writeFile(
        path.join(cwd, 'mtproxy.toml'),
        `[[listeners]]\nhost = "127.0.0.1"\nport = ${port}\nsecret = "${SECRET}"\n`,
      );
      const r = await run([], cwd);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `mtproxy: listeners[0].port: 127.0.0.1:${port} is already in use\n`);
    } finally {
      blocker.close();
    }
  });

  test('bad flag values name the flag', async () => {
    const r = await run(['-p', 'http'], dir);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'mtproxy: --port (MTP_PORT): expected a port number from 1 to 65535\n');
    const env = await run([], dir, { MTP_SECRET: 'xyz' });
    assert.equal(env.code, 1);
    assert.equal(env.stderr, 'mtproxy: --secret (MTP_SECRET): expected 32 hex characters\n');
    const allow = await run(['-a', 'ftp', '-s', SECRET], dir);
    assert.equal(allow.stderr, 'mtproxy: --allow (MTP_ALLOW): expected classic, secure (dd) or tls (ee)\n');
  });

  test('secret: plain, dd, ee (hex and base64url)', async () => {
    const plain = await run(['secret'], dir);
    assert.equal(plain.code, 0);
    assert.match(plain.stdout, /^[0-9a-f]{32}\n$/);
    assert.match((await run(['secret', '--dd'], dir)).stdout, /^dd[0-9a-f]{32}\n$/);
    const ee = await run(['secret', '--ee', '--domain', 'example.com', '-s', SECRET], dir);
    assert.equal(ee.stdout, `ee${SECRET}6578616d706c652e636f6d\n`);
    const b64 = await run(['secret', '--ee', '--domain', 'example.com', '--base64', '-s', SECRET], dir);
    assert.equal(b64.stdout, '7tDW4RG62lUR_M6VhN6tvu9leGFtcGxlLmNvbQ\n');
    const noDomain = await run(['secret', '--ee'], dir);
    assert.equal(noDomain.code, 1);
    assert.match(noDomain.stderr, /^mtproxy: --domain: expected a domain name/);
  });

  test('link: from the config, with flag and environment overrides, and per-SNI --domain', async () => {
    const cwd = await mkdtemp(path.join(dir, 'link-'));
    const file = path.join(cwd, 'mtproxy.toml');
    await writeFile(
      file,
      `[[listeners]]\nhost = "127.0.0.1"\nport = 443\nsecret = "${SECRET}"\ntls_domain = "example.com"\n` +
        'per_sni_salt = "my-private-salt-change-me"\npublic_host = "proxy.example.net"\n',
    );
    const r = await run(['link'], cwd);
    assert.equal(r.code, 0);
    assert.match(
      r.stdout,
      new RegExp(`tg://proxy\\?server=proxy\\.example\\.net&port=443&secret=${SECRET}\\n`),
    );
    assert.match(
      r.stdout,
      new RegExp(`https://t\\.me/proxy\\?server=proxy\\.example\\.net&port=443&secret=dd${SECRET}\\n`),
    );

    const overridden = await run(['link', '-p', '8443', '--json'], cwd, { MTP_ALLOW: 'dd' });
    const links = overridden.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      links.map((l) => [l.protocol, l.secret]),
      [['secure', `dd${SECRET}`]],
    );
    assert.match(links[0].tg, /port=8443/);

    const user = await run(['link', '--domain', 'alice.example.com'], cwd);
    assert.equal(user.code, 0);
    const derived = 'eeaf4d5729ce2a0de4a40bbf439ac9d515' + Buffer.from('alice.example.com').toString('hex');
    assert.match(user.stdout, new RegExp(`secret=${derived}\\n`));
  });

  test('--help, --version, unknown command', async () => {
    const help = await run(['--help'], dir);
    assert.equal(help.code, 0);
    for (const name of ['run', 'secret', 'link']) assert.match(help.stdout, new RegExp(`\\n  ${name} `));
    const version = await run(['--version'], dir);
    assert.match(version.stdout, /^\d+\.\d+\.\d+/);
    const unknown = await run(['frobnicate'], dir);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
  });
});
