/**
 * Reload of a spawned `mtproxy run`: SIGHUP and `mtproxy reload` re-read the file, secrets and log level apply
 * to new connections, an established session goes on, and an invalid file is refused while the old config
 * keeps serving.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AdminClient } from '../../src/admin/client.ts';
import type { ProxyStatus } from '../../src/admin/status.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { runCli } from '../helpers/cli.ts';
import { freePort } from '../helpers/ports.ts';
import { TEST_SECRET_HEX } from '../helpers/proxy.ts';
import { echoedSession, relays } from '../helpers/relay-probe.ts';

const SECRET_B = 'fedcba9876543210fedcba9876543210';
const TOKEN = 'sighup-test-token';
const ENTRY = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mtproxy-sighup-'));
const file = join(dir, 'mtproxy.toml');
let dc: FakeDc;
let child: ChildProcess;
let admin: AdminClient;
let adminPort = 0;
let stdout = '';
let stderr = '';

function toml(secret: string, level: string): string {
  return `
state_dir = "state"
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${secret}"

[admin]
listen = "127.0.0.1:${adminPort}"
token = "${TOKEN}"

[log]
level = "${level}"

[upstream]
mode = "direct"
[upstream.dc]
2 = ["${dc.address}"]
`;
}

/** How long a step may take on a loaded machine (a start-up alone can take ten seconds there). */
const DEADLINE_MS = 90_000;

async function until<T>(probe: () => Promise<T | null | undefined | false>, what: string): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `the proxy exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}; stderr: ${stderr.slice(-500)}`,
      );
    }
    const v = await probe().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 30));
  }
  throw new Error(`timed out waiting for ${what}; stderr: ${stderr.slice(-500)}`);
}

const status = () => admin.call<ProxyStatus>('GET', '/status');
let port = 0;

const session = (secret: string) => echoedSession(port, secret);
const works = (secret: string) => relays(port, secret);

async function reloadsDone(total: number): Promise<ProxyStatus> {
  return until(async () => {
    const s = await status();
    return s.reloads.total >= total ? s : null;
  }, `reload #${total}`);
}

before(async () => {
  dc = await FakeDc.start();
  adminPort = await freePort();
  writeFileSync(file, toml(TEST_SECRET_HEX, 'info'));
  child = spawn(process.execPath, [ENTRY, 'run', '--config', file], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  admin = new AdminClient(`http://127.0.0.1:${adminPort}`, TOKEN);
  // Ready once it says so (its start-up time varies with the machine's load), then asked for its status.
  await until(async () => /"msg":"admin API listening"/.test(stdout), 'the admin API to listen');
  const first = await until(() => status(), 'the admin API');
  port = first.listeners[0].port;
  assert.notEqual(port, 0);
});

after(async () => {
  if (child.exitCode === null) {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  await dc.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('SIGHUP applies a new secret and log level to new connections', async () => {
  const established = await session(TEST_SECRET_HEX);
  assert.doesNotMatch(stdout, /"level":"debug"/);
  writeFileSync(file, toml(SECRET_B, 'debug'));
  child.kill('SIGHUP');
  // The proxy prints its links again once a reload has applied.
  await until(async () => stdout.includes(`secret=${SECRET_B}`), 'the links of the new secret');
  const s = await reloadsDone(1);
  assert.equal(s.reloads.lastOk, true);
  assert.equal(await works(SECRET_B), true);
  assert.equal(await works(TEST_SECRET_HEX), false);
  await until(async () => /"level":"debug"/.test(stdout), 'debug lines after the reload');
  established.sendFrame(Buffer.alloc(16, 9));
  assert.equal((await established.nextFrame(5000)).payload.length, 16);
  established.close();
});

test('`mtproxy reload` re-reads the file of the running proxy', async () => {
  writeFileSync(file, toml(TEST_SECRET_HEX, 'info'));
  const { code, out, err } = await runCli(['reload', '--config', file], dir);
  assert.equal(code, 0, err.join('\n'));
  assert.deepEqual(out, ['reload applied']);
  assert.equal(await works(TEST_SECRET_HEX), true);
  assert.equal(await works(SECRET_B), false);
});

test('an invalid file on SIGHUP is refused and the old config keeps serving', async () => {
  const before = (await status()).reloads.total;
  writeFileSync(file, toml('xyz', 'info'));
  child.kill('SIGHUP');
  await until(async () => /reload refused: listeners\[0\]\.secret/.test(stderr), 'the refusal message');
  const s = await reloadsDone(before + 1);
  assert.equal(s.reloads.lastOk, false);
  assert.equal(s.reloads.failures, 1);
  assert.equal(await works(TEST_SECRET_HEX), true);
});

test('SIGTERM stops the proxy cleanly', async () => {
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
});
