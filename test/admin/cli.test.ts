/**
 * The operator commands (status, links, table, reload) against a running proxy, found through the same
 * config file, with the admin API on loopback.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadConfigFile } from '../../src/config/load.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { ProxyServer } from '../../src/server/proxy.ts';
import { runCli } from '../helpers/cli.ts';
import { freePort } from '../helpers/ports.ts';
import { TEST_SECRET_HEX } from '../helpers/proxy.ts';

const dir = mkdtempSync(join(tmpdir(), 'mtproxy-cli-'));
const file = join(dir, 'mtproxy.toml');
const TOKEN = 'cli-test-token-42';
let proxy: ProxyServer;
let toml = '';

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { code, out, err } = await runCli([...args, '--config', file], dir);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

before(async () => {
  const adminPort = await freePort();
  toml = `
state_dir = "state"
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"
allowed_protocols = ["secure", "tls"]
tls_domains = ["cover.example"]

[[policies]]
rule = "not_in_table"
key = "client_ipv4/24"
table = "blocked_nets"

[admin]
listen = "127.0.0.1:${adminPort}"
token = "${TOKEN}"

[log]
level = "silent"
`;
  writeFileSync(file, toml);
  const log = logger.child({ test: 'cli' });
  log.level = 'silent';
  proxy = new ProxyServer(await loadConfigFile(file), { log, stats: new Stats() });
  await proxy.start();
});

after(async () => {
  await proxy.stop(0);
  rmSync(dir, { recursive: true, force: true });
});

test('mtproxy status', async () => {
  const r = await cli('status');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^mtproxy \d+\.\d+\.\d+/);
  assert.match(r.out, new RegExp(`main 127\\.0\\.0\\.1:${proxy.address('main').port} \\[secure,tls\\]`));
  const json = await cli('status', '--json');
  const doc = JSON.parse(json.out) as { listeners: Array<{ name: string; port: number }>; upstream: object };
  assert.equal(doc.listeners[0].port, proxy.address('main').port);
  assert.ok('mode' in doc.upstream);
});

test('mtproxy links prints links with the bound port and QR codes', async () => {
  const r = await cli('links');
  assert.equal(r.code, 0, r.err);
  const port = proxy.address('main').port;
  assert.match(
    r.out,
    new RegExp(`tg://proxy\\?server=127\\.0\\.0\\.1&port=${port}&secret=dd${TEST_SECRET_HEX}`),
  );
  assert.match(r.out, /tls cover\.example:/);
  assert.match(r.out, /[█▀▄]/, 'QR code drawn with block characters');
  const plain = await cli('links', '--no-qr');
  assert.doesNotMatch(plain.out, /[█▀▄]/);
  const json = await cli('links', '--json');
  const lines = json.out.split('\n').map((l) => JSON.parse(l) as { protocol: string });
  assert.deepEqual(
    lines.map((l) => l.protocol),
    ['secure', 'tls'],
  );
  assert.equal((await cli('links', '--listener', 'nope')).code, 1);
});

test('mtproxy table list/add/del', async () => {
  let r = await cli('table', 'list');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /blocked_nets\tclient_ipv4\/24\t0 values/);

  r = await cli('table', 'add', 'blocked_nets', '198.51.100.77');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'added 198.51.100.0/24 to blocked_nets');
  assert.equal(r.err, '', 'no warning for a table a policy uses');
  r = await cli('table', 'add', 'blocked_nets', '198.51.100.0/24');
  assert.equal(r.out, '198.51.100.0/24 was already in blocked_nets');
  assert.equal(
    proxy.operations!.policy.admit({ listener: 'main', remoteAddress: '198.51.100.1', tlsDomain: null }).ok,
    false,
    'applies at once',
  );

  r = await cli('table', 'list', 'blocked_nets');
  assert.equal(r.out, '198.51.100.0/24');

  r = await cli('table', 'add', 'blocked_nets', 'not-an-ip');
  assert.equal(r.code, 1);
  assert.match(r.err, /^mtproxy table: expected an IP address/);

  r = await cli('table', 'del', 'blocked_nets', '198.51.100.0/24');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'removed 198.51.100.0/24 from blocked_nets');
  r = await cli('table', 'del', 'blocked_nets', '198.51.100.0/24');
  assert.equal(r.code, 1);
  assert.match(r.err, /not in table/);

  r = await cli('table', 'add', 'blocked_nest', '203.0.113.5');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'added 203.0.113.5 to blocked_nest');
  assert.match(r.err, /^mtproxy table: warning: no policy uses table "blocked_nest"/);
  await cli('table', 'del', 'blocked_nest', '203.0.113.5');

  for (const bad of [[], ['add', 'x'], ['list', 'a', 'b'], ['frob', 'x', 'y']]) {
    assert.equal((await cli('table', ...bad)).code, 2, bad.join(' '));
  }
});

test('mtproxy reload applies a valid file and refuses an invalid one', async () => {
  writeFileSync(file, toml.replace('level = "silent"', 'level = "error"'));
  let r = await cli('reload');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'reload applied');
  assert.equal(proxy.config.log.level, 'error');

  writeFileSync(file, `${readFileSync(file, 'utf8')}\n[[listeners]]\nport = "nope"\n`);
  // The CLI itself reads the same file to find the API, so it refuses first with the same one-line message.
  r = await cli('reload');
  assert.equal(r.code, 1);
  assert.match(r.err, /^mtproxy reload: not sent, the config file is invalid .*listeners\[1\]\.port/);
  assert.equal(proxy.config.log.level, 'error', 'running config unchanged');
  writeFileSync(file, toml);
});

test('wrong token and admin off give one clear line', async () => {
  writeFileSync(file, toml.replace(TOKEN, 'some-other-token'));
  let r = await cli('status');
  assert.equal(r.code, 1);
  assert.match(r.err, /^mtproxy status: missing or wrong bearer token/);

  writeFileSync(file, toml.replace(/\[admin\][^[]*/, ''));
  r = await cli('status');
  assert.equal(r.code, 1);
  assert.match(r.err, /admin API is off/);
  writeFileSync(file, toml);
});
