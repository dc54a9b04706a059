import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { main } from '../../src/cli/cli.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import type { PublicAddress } from '../../src/config/public-address.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';
import { linkSecrets, run } from './spawn-cli.ts';

const TAG = '0123456789abcdef0123456789abcdef';
const FOUND: PublicAddress = { host: '8.8.8.8', ipv6: null, source: 'interface' };

interface InitRun {
  code: number;
  out: string;
  err: string;
  checked: string[];
  asked: string[];
}

async function init(
  args: string[],
  cwd: string,
  opts: { answers?: string[]; coverFails?: boolean } = {},
): Promise<InitRun> {
  const out: string[] = [];
  const err: string[] = [];
  const checked: string[] = [];
  const asked: string[] = [];
  const answers = opts.answers;
  const code = await main(['init', ...args], {
    cwd,
    env: {},
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    publicAddress: async () => FOUND,
    ask: answers
      ? async (q, fallback) => {
          asked.push(q);
          const a = answers.shift() ?? '';
          return a === '' ? fallback : a;
        }
      : null,
    checkCover: async (_config, _listener, domain) => {
      checked.push(domain);
      return [
        opts.coverFails
          ? { check: `cover ${domain}`, status: 'fail', message: 'no TLS 1.3 answer' }
          : { check: `cover ${domain}`, status: 'ok', message: 'TLS 1.3, certificate valid' },
      ];
    },
  });
  return { code, out: out.join('\n'), err: err.join('\n'), checked, asked };
}

describe('mtproxy init', () => {
  const dir = suiteTempDir('mtproxy-init-');

  test('from flags: a commented config the proxy loads, links with QR codes, the cover domain checked', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'flags-'));
    const r = await init(
      ['--port', '8443', '--protocols', 'dd,ee', '--domain', 'Cover.Example.org', '--ad-tag', TAG],
      cwd,
    );
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.checked, ['cover.example.org']);
    const file = path.join(cwd, 'mtproxy.toml');
    const text = await readFile(file, 'utf8');
    assert.match(text, /^# mtproxy configuration written by `mtproxy init`/);
    assert.ok(text.split('\n').filter((l) => l.startsWith('#')).length >= 5, 'commented');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const config = await loadConfigFile(file);
    const l = config.listeners[0]!;
    assert.equal(l.port, 8443);
    assert.deepEqual(l.allowedProtocols, ['secure', 'tls']);
    assert.deepEqual(l.tlsDomains, ['cover.example.org']);
    assert.equal(l.adTag?.toString('hex'), TAG);
    assert.equal(config.admin.listen?.host, '127.0.0.1');
    assert.match(text, /^token = "[0-9a-f]{48}"$/m);

    assert.match(r.out, /^ok  +cover cover\.example\.org/m);
    assert.match(r.out, new RegExp(`Wrote ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const secret = l.secret.toString('hex');
    assert.match(r.out, new RegExp(`tg://proxy\\?server=8\\.8\\.8\\.8&port=8443&secret=dd${secret}`));
    assert.match(r.out, /secret=ee/);
    assert.match(r.out, /█/, 'QR codes');
    assert.match(r.out, /Next: start the proxy with `mtproxy run --config mtproxy\.toml`/);

    const again = await init(['--no-check'], cwd);
    assert.equal(again.code, 1);
    assert.match(again.err, /already exists \(use --force/);
    assert.equal(await readFile(file, 'utf8'), text, 'not overwritten');
    const forced = await init(['--no-check', '--force', '--no-admin', '--no-qr'], cwd);
    assert.equal(forced.code, 0, forced.err);
    assert.deepEqual(forced.checked, [], '--no-check skips the check');
    assert.doesNotMatch(forced.out, /█/);
    assert.equal((await loadConfigFile(file)).admin.listen, null);
  });

  test('asks at a terminal, with defaults for empty answers', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'ask-'));
    const r = await init(['--config', 'proxy.toml'], cwd, {
      answers: ['9443', 'none', '', '', 'maybe', 'no'],
    });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.asked.length, 6, 'the admin question is asked again after "maybe"');
    assert.deepEqual(r.checked, [], 'no cover domain, nothing to check');
    const config = await loadConfigFile(path.join(cwd, 'proxy.toml'));
    assert.equal(config.listeners[0]!.port, 9443);
    assert.deepEqual(config.listeners[0]!.allowedProtocols, ['secure']);
    assert.equal(config.listeners[0]!.adTag, null);
    assert.equal(config.admin.listen, null);
  });

  test('a failing cover domain or bad flag writes nothing, with one line', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'bad-'));
    const failed = await init(['--domain', 'nohttps.example'], cwd, { coverFails: true });
    assert.equal(failed.code, 1);
    assert.match(
      failed.err,
      /^mtproxy init: the cover domain nohttps\.example failed the check; .*--no-check/,
    );
    for (const [args, message] of [
      [['--port', '70000'], /^mtproxy: --port: expected a port number/],
      [['--protocols', 'ftp'], /^mtproxy: --protocols: expected classic, secure/],
      [['--protocols', 'tls', '--no-domain'], /^mtproxy: --protocols: tls needs a cover domain/],
      [['--ad-tag', 'xyz'], /^mtproxy: --ad-tag: expected 32 hex/],
      [['--domain', 'not a domain'], /^mtproxy: --domain: expected a domain name/],
    ] as const) {
      const r = await init([...args, '--no-check'], cwd);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.err, message);
    }
    await assert.rejects(stat(path.join(cwd, 'mtproxy.toml')));
  });

  test('the flags the installer writes its config with: --yes never asks, the same flags give the same file', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'installer-'));
    let found = 0;
    const args = [
      '--yes',
      '--no-links',
      '--port',
      '443',
      '--secret',
      'ABCDEF0123456789abcdef0123456789',
      '--protocols',
      'secure',
      '--no-domain',
      '--public-host',
      'Proxy.Example.NET',
      '--state-dir',
      '/var/lib/mtproxy',
      '--admin-listen',
      '127.0.0.1:9201',
      '--admin-token',
      'kept-token-0123456789',
    ];
    const first = await main(['init', ...args], {
      cwd,
      env: {},
      out: () => {},
      err: (l) => assert.fail(l),
      publicAddress: async () => {
        found++;
        return FOUND;
      },
      ask: async () => assert.fail('--yes asks nothing'),
      checkCover: async () => assert.fail('no domain, no check'),
    });
    assert.equal(first, 0);
    assert.equal(found, 0, '--no-links: no address lookup');
    const file = path.join(cwd, 'mtproxy.toml');
    const text = await readFile(file, 'utf8');
    const config = await loadConfigFile(file);
    assert.equal(config.stateDir, '/var/lib/mtproxy');
    assert.equal(config.listeners[0]!.publicHost, 'proxy.example.net');
    assert.equal(config.listeners[0]!.secret.toString('hex'), 'abcdef0123456789abcdef0123456789');
    assert.deepEqual(config.admin.listen, { host: '127.0.0.1', port: 9201 });
    assert.equal(config.admin.token, 'kept-token-0123456789');
    const again = await init([...args, '--force'], cwd);
    assert.equal(again.code, 0, again.err);
    assert.equal(await readFile(file, 'utf8'), text, 'deterministic');
    assert.doesNotMatch(again.out, /tg:\/\//);

    // With public_host the links need no address lookup either.
    let looked = false;
    const linked = await main(['init', ...args.filter((a) => a !== '--no-links'), '--force', '--no-qr'], {
      cwd,
      env: {},
      out: () => {},
      err: () => {},
      publicAddress: async () => {
        looked = true;
        return FOUND;
      },
      ask: null,
      checkCover: async () => [],
    });
    assert.equal(linked, 0);
    assert.equal(looked, false);

    for (const [bad, message] of [
      [['--public-host', 'not a host'], /^mtproxy: --public-host: expected a host name or an IP address/],
      [['--admin-listen', '9101'], /^mtproxy: --admin-listen: expected HOST:PORT/],
      [['--admin-token', 'short'], /^mtproxy: --admin-token: expected 16 to 256 characters/],
      [['--admin-token', 'has a "quote" in it'], /^mtproxy: --admin-token: expected/],
      [['--no-admin', '--admin-token', 'kept-token-0123456789'], /^mtproxy: --no-admin: cannot be combined/],
      [['--state-dir', ''], /^mtproxy: --state-dir: expected a folder path/],
      [['--port', '44x'], /^mtproxy: --port: expected a port number/],
    ] as const) {
      const r = await init(['--yes', '--no-check', '--force', '--config', 'bad.toml', ...bad], cwd);
      assert.equal(r.code, 1, bad.join(' '));
      assert.match(r.err, message);
    }
    await assert.rejects(stat(path.join(cwd, 'bad.toml')));
  });

  test('-d means dd only and -D the cover domain, as for run, link and the installer', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'dash-d-'));
    const dd = await init(['--yes', '--no-check', '--no-links', '-d', '--config', 'dd.toml'], cwd);
    assert.equal(dd.code, 0, dd.err);
    const ddConfig = await loadConfigFile(path.join(cwd, 'dd.toml'));
    assert.deepEqual(ddConfig.listeners[0]!.allowedProtocols, ['secure']);
    assert.deepEqual(ddConfig.listeners[0]!.tlsDomains, []);
    const both = await init(
      ['--yes', '--no-links', '-d', '-a', 'tls', '-D', 'cover.example.org', '--config', 'both.toml'],
      cwd,
    );
    assert.equal(both.code, 0, both.err);
    assert.deepEqual(both.checked, ['cover.example.org']);
    const bothConfig = await loadConfigFile(path.join(cwd, 'both.toml'));
    assert.deepEqual(bothConfig.listeners[0]!.allowedProtocols, ['secure', 'tls']);
  });

  test('as a process without a terminal: flags only, no questions', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'spawn-'));
    await writeFile(path.join(cwd, 'unrelated.txt'), '');
    const r = await run(['init', '-p', '8443', '--no-check', '--no-qr'], cwd);
    assert.equal(r.code, 0, r.stderr);
    const config = await loadConfigFile(path.join(cwd, 'mtproxy.toml'));
    assert.equal(linkSecrets(r.stdout)[0], `dd${config.listeners[0]!.secret.toString('hex')}`);
    assert.deepEqual(config.listeners[0]!.tlsDomains, ['www.cloudflare.com']);
  });
});
