/**
 * `mtproxy user ...` against a running proxy found through its config file (admin API on loopback):
 * the issue's own example works as written, flags are refused one per line, links come with a QR code.
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

const dir = mkdtempSync(join(tmpdir(), 'mtproxy-cli-user-'));
const file = join(dir, 'mtproxy.toml');
let proxy: ProxyServer;

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { code, out, err } = await runCli([...args, '--config', file], dir);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

before(async () => {
  const adminPort = await freePort();
  writeFileSync(
    file,
    `state_dir = "state"
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"
tls_domains = ["cover.example"]

[[users]]
name = "filed"

[admin]
listen = "127.0.0.1:${adminPort}"
token = "cli-user-token-42"

[log]
level = "silent"
`,
  );
  const log = logger.child({ test: 'cli' });
  log.level = 'silent';
  proxy = new ProxyServer(await loadConfigFile(file), { log, stats: new Stats() });
  await proxy.start();
});

after(async () => {
  await proxy.stop(0);
  rmSync(dir, { recursive: true, force: true });
});

test('mtproxy user add alice --quota 50GB --period monthly --max-ips 3 --expires 2027-06-01', async () => {
  const r = await cli(
    'user',
    'add',
    'alice',
    '--quota',
    '50GB',
    '--period',
    'monthly',
    '--max-ips',
    '3',
    '--expires',
    '2027-06-01',
  );
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /quota: 50GB monthly/);
  assert.match(r.out, /max_ips: 3/);
  assert.match(r.out, /expires: 2027-06-01T00:00:00.000Z/);
  const shown = JSON.parse((await cli('user', 'show', 'alice', '--json')).out);
  assert.equal(shown.quota, 50e9);
  assert.equal(shown.max_ips, 3);
  assert.equal(proxy.users.get('alice')!.config.quotaPeriod, 'monthly');
});

test('bad flags are refused, one line per flag', async () => {
  const r = await cli('user', 'add', 'bob', '--quota', 'lots', '--period', 'yearly', '--max-ips', 'x');
  assert.equal(r.code, 1);
  const lines = r.err.split('\n').sort();
  assert.equal(lines.length, 3);
  assert.match(lines[0], /^mtproxy user: --max-ips: expected an integer/);
  assert.match(lines[1], /^mtproxy user: --period: expected "total"/);
  assert.match(lines[2], /^mtproxy user: --quota: expected a size/);
});

test('set, disable, enable, reset, list, del', async () => {
  let r = await cli('user', 'set', 'alice', '--rate', '2MB', '--max-connections', '8', '--listener', 'main');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /rate: 2MB\/s each way/);
  assert.match((await cli('user', 'disable', 'alice')).out, /user alice disabled/);
  assert.equal(proxy.users.get('alice')!.config.enabled, false);
  assert.match((await cli('user', 'enable', 'alice')).out, /user alice enabled/);
  assert.match((await cli('user', 'reset', 'alice')).out, /usage of alice reset/);
  r = await cli('user', 'list');
  assert.match(r.out, /^alice\tenabled\t0 sessions/m);
  assert.match(r.out, /^filed\tenabled/m);
  const list = JSON.parse((await cli('user', 'list', '--json')).out);
  assert.deepEqual(
    list.users.map((u: { name: string }) => u.name),
    ['alice', 'filed'],
  );
  r = await cli('user', 'del', 'filed');
  assert.equal(r.code, 1);
  assert.match(r.err, /defined in the config file/);
  assert.match((await cli('user', 'del', 'alice')).out, /deleted user alice/);
  assert.equal(proxy.users.get('alice'), undefined);
});

test('--json everywhere: every action prints a JSON document', async () => {
  const parse = async (...args: string[]) => {
    const r = await cli(...args, '--json');
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
    return JSON.parse(r.out);
  };
  assert.equal((await parse('user', 'add', 'jay', '--max-connections', '2')).max_connections, 2);
  assert.equal((await parse('user', 'set', 'jay', '--reset-day', '5')).quota_reset_day, 5);
  const secret = 'cd'.repeat(16);
  assert.equal((await parse('user', 'set', 'jay', '--secret', secret)).secret, secret);
  assert.equal(proxy.users.get('jay')!.secret.toString('hex'), secret);
  assert.deepEqual((await parse('user', 'set', 'jay', '--listener', 'main')).listeners, ['main']);
  assert.equal((await parse('user', 'show', 'jay')).name, 'jay');
  assert.equal((await parse('user', 'disable', 'jay')).enabled, false);
  assert.equal((await parse('user', 'enable', 'jay')).enabled, true);
  assert.equal((await parse('user', 'reset', 'jay')).reset, true);
  assert.ok(Array.isArray((await parse('user', 'list')).users));
  assert.ok((await parse('user', 'link', 'jay')).links.length > 0);
  assert.equal((await parse('user', 'del', 'jay')).deleted, true);
  assert.ok((await parse('status')).users, 'the status document has the top users');
});

test('mtproxy user link NAME prints the links and a QR code; --json gives them as JSON', async () => {
  const r = await cli('user', 'link', 'filed');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /main classic: tg:\/\/proxy\?server=127\.0\.0\.1/);
  assert.match(r.out, /main tls cover\.example: tg:\/\/proxy/);
  assert.match(r.out, /[▀▄█]/);
  const doc = JSON.parse((await cli('user', 'link', 'filed', '--json')).out);
  const secret = proxy.users.get('filed')!.secret.toString('hex');
  assert.equal(doc.links[0].secret, secret);
  assert.equal(doc.links.length, 3);
});

test('mtproxy status shows the top users', async () => {
  const r = await cli('status');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /top users by traffic \(this period\):/);
  assert.match(r.out, /top users by connections now:/);
});

test('every `mtproxy user` command of the README runs as written', async () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Users\n'), readme.indexOf('\n## Hot reload\n'));
  const commands = [...section.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((m) => m[1].split('\n'))
    .filter((line) => line.startsWith('mtproxy user '));
  assert.ok(commands.length >= 10);
  for (const line of commands) {
    const r = await cli(...line.split(' ').slice(1));
    assert.equal(r.code, 0, `${line}: ${r.err}`);
  }
  assert.equal(proxy.users.get('alice'), undefined, 'the README ends with del alice');
  assert.equal(proxy.users.get('customer-42')!.config.quota, 100e9);
});
