import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { main } from '../../src/cli/cli.ts';
import type { PublicAddress } from '../../src/config/public-address.ts';
import { loadCliConfig } from '../../src/cli/config-source.ts';
import { qrMatrix, qrPng, qrSvg, qrTerminal } from '../../src/links/qr.ts';
import { runCli } from '../helpers/cli.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';
import { type Result, SECRET } from './spawn-cli.ts';

/** The CLI in this process (the process-level behaviour is covered by run.test.ts). */
async function run(args: string[], cwd: string, env: Record<string, string> = {}): Promise<Result> {
  const { code, out, err } = await runCli(args, cwd, env);
  const text = (lines: string[]) => lines.map((line) => `${line}\n`).join('');
  return { code, stdout: text(out), stderr: text(err) };
}

describe('mtproxy commands and flags', () => {
  const dir = suiteTempDir('mtproxy-cli-');

  test('run: an unknown key or a missing file is one line and exit code 1', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'bad-'));
    const file = path.join(cwd, 'bad.toml');
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

  test('bad flag values name the flag', async () => {
    const r = await run(['-p', 'http'], dir());
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'mtproxy: --port (MTP_PORT): expected a port number from 1 to 65535\n');
    const env = await run([], dir(), { MTP_SECRET: 'xyz' });
    assert.equal(env.code, 1);
    assert.equal(env.stderr, 'mtproxy: --secret (MTP_SECRET): expected 32 hex characters\n');
    const allow = await run(['-a', 'ftp', '-s', SECRET], dir());
    assert.equal(allow.stderr, 'mtproxy: --allow (MTP_ALLOW): expected classic, secure (dd) or tls (ee)\n');
    const level = await run(['link', '-s', SECRET], dir(), { MTP_LOG_LEVEL: 'verbose' });
    assert.equal(level.code, 1);
    assert.match(level.stderr, /^mtproxy: --log-level \(MTP_LOG_LEVEL\): expected one of trace, debug, info/);
    const mode = await run(['link', '-s', SECRET], dir(), { MTP_WORKER_MODE: 'fibers' });
    assert.equal(mode.code, 1);
    assert.equal(
      mode.stderr,
      'mtproxy: --worker-mode (MTP_WORKER_MODE): expected one of auto, threads, processes\n',
    );
  });

  test('-p/-s/-t/-a and MTP_PORT/MTP_SECRET/MTP_TAG/MTP_ALLOW set the first listener; flags win', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'overrides-'));
    const file = path.join(cwd, 'mtproxy.toml');
    await writeFile(file, `[[listeners]]\nport = 443\nsecret = "${SECRET}"\n[upstream]\nmode = "direct"\n`);
    const tag = '0123456789abcdef0123456789abcdef';
    const other = 'fedcba9876543210fedcba9876543210';
    const flags = await loadCliConfig(
      { port: '8443', secret: other, tag, allow: ['dd', 'tls'] },
      { MTP_PORT: '9443', MTP_SECRET: SECRET, MTP_TAG: other, MTP_ALLOW: 'classic' },
      cwd,
    );
    const l = flags.config.listeners[0]!;
    assert.equal(l.port, 8443);
    assert.equal(l.secret.toString('hex'), other);
    assert.equal(l.adTag?.toString('hex'), tag);
    assert.deepEqual(l.allowedProtocols, ['secure', 'tls']);
    const env = await loadCliConfig(
      {},
      { MTP_PORT: '9443', MTP_SECRET: other, MTP_TAG: tag, MTP_ALLOW: 'classic' },
      cwd,
    );
    const e = env.config.listeners[0]!;
    assert.equal(e.port, 9443);
    assert.equal(e.secret.toString('hex'), other);
    assert.equal(e.adTag?.toString('hex'), tag);
    assert.deepEqual(e.allowedProtocols, ['classic']);
  });

  test('-w/--worker-mode and MTP_WORKERS/MTP_WORKER_MODE set how the workers run; flags win', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'workers-'));
    await writeFile(
      path.join(cwd, 'mtproxy.toml'),
      `workers = 4\n[[listeners]]\nport = 443\nsecret = "${SECRET}"\n`,
    );
    const fromFile = await loadCliConfig({}, {}, cwd);
    assert.equal(fromFile.config.workers, 4);
    assert.equal(fromFile.config.workerMode, 'auto');
    const env = await loadCliConfig({}, { MTP_WORKERS: '2', MTP_WORKER_MODE: 'processes' }, cwd);
    assert.equal(env.config.workers, 2);
    assert.equal(env.config.workerMode, 'processes');
    const flags = await loadCliConfig(
      { workers: '3', 'worker-mode': 'threads' },
      { MTP_WORKERS: '2', MTP_WORKER_MODE: 'processes' },
      cwd,
    );
    assert.equal(flags.config.workers, 3);
    assert.equal(flags.config.workerMode, 'threads');
  });

  test('secret: plain, dd, ee (hex and base64url)', async () => {
    const plain = await run(['secret'], dir());
    assert.equal(plain.code, 0);
    assert.match(plain.stdout, /^[0-9a-f]{32}\n$/);
    assert.match((await run(['secret', '--dd'], dir())).stdout, /^dd[0-9a-f]{32}\n$/);
    const ee = await run(['secret', '--ee', '--domain', 'example.com', '-s', SECRET], dir());
    assert.equal(ee.stdout, `ee${SECRET}6578616d706c652e636f6d\n`);
    const b64 = await run(['secret', '--ee', '--domain', 'example.com', '--base64', '-s', SECRET], dir());
    assert.equal(b64.stdout, '7tDW4RG62lUR_M6VhN6tvu9leGFtcGxlLmNvbQ\n');
    const noDomain = await run(['secret', '--ee'], dir());
    assert.equal(noDomain.code, 1);
    assert.match(noDomain.stderr, /^mtproxy: --domain: expected a domain name/);
  });

  test('link: from the config, with flag and environment overrides, and per-SNI --domain', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'link-'));
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

    const dashD = await run(['link', '--json', '-d', '-a', 'tls'], cwd);
    assert.deepEqual(
      dashD.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).protocol),
      ['secure', 'tls'],
    );

    // -D is the cover domain (as for the installer); -d stays "dd only".
    const dashBigD = await run(['link', '--json', '-D', 'cover.example.org', '-a', 'tls'], cwd);
    assert.deepEqual(
      dashBigD.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).domain),
      ['cover.example.org'],
    );

    const ddOnly = await run(['link', '--json'], cwd, { MTP_DD_ONLY: '1' });
    assert.deepEqual(
      ddOnly.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).protocol),
      ['secure'],
    );
    const both = await run(['link', '--json'], cwd, { MTP_DD_ONLY: '1', MTP_TLS_ONLY: 'yes' });
    assert.deepEqual(
      both.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).protocol),
      ['secure', 'tls'],
    );

    const user = await run(['link', '--domain', 'alice.example.com'], cwd);
    assert.equal(user.code, 0);
    const derived = 'eeaf4d5729ce2a0de4a40bbf439ac9d515' + Buffer.from('alice.example.com').toString('hex');
    assert.match(user.stdout, new RegExp(`secret=${derived}\\n`));
    const derivedBase64url = Buffer.from(derived, 'hex').toString('base64url');
    assert.match(
      user.stdout,
      new RegExp(`tls alice\\.example\\.com secret \\(base64url\\): ${derivedBase64url}\\n`),
    );
  });

  test('link --domain: refused with the reason for a domain the listener would not serve', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'unserved-'));
    await writeFile(
      path.join(cwd, 'mtproxy.toml'),
      `[[listeners]]\nhost = "127.0.0.1"\nport = 443\nsecret = "${SECRET}"\ntls_domain = "example.com"\n`,
    );
    const other = await run(['link', '--domain', 'other.example.org'], cwd);
    assert.equal(other.code, 1);
    assert.equal(other.stdout, '');
    assert.match(
      other.stderr,
      /^mtproxy: --domain: listener "main" does not serve "other\.example\.org" \(tls_domains: example\.com\) and has no per_sni_salt, so the proxy would refuse this link; add the domain to tls_domains or set per_sni_salt\n$/,
    );
    // A served domain (in any case) still gets its link.
    const served = await run(['link', '--domain', 'Example.COM'], cwd);
    assert.equal(served.code, 0, served.stderr);
    assert.match(served.stdout, /secret=ee/);
  });

  test('link: --qr draws a QR code under each link, --png/--svg write the first one', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'qr-'));
    await writeFile(
      path.join(cwd, 'mtproxy.toml'),
      `[[listeners]]\nhost = "127.0.0.1"\nport = 443\nsecret = "${SECRET}"\ntls_domain = "example.com"\n`,
    );
    const plain = await run(['link'], cwd);
    assert.doesNotMatch(plain.stdout, /[█▀▄]/, 'no QR code when stdout is not a terminal');
    const { code, out } = await runCli(['link', '--qr'], cwd);
    assert.equal(code, 0);
    const links = out.filter((l) => l.includes('https://t.me/proxy?'));
    assert.ok(links.length >= 2);
    for (const link of links) {
      const url = link.slice(link.indexOf('https://'));
      const at = out.indexOf(link);
      // Under the link (and the base64url line of an ee link): its QR code, as one block of lines.
      const qr = out.slice(at + 1).find((l) => /^[█▀▄ \n]+$/.test(l))!;
      assert.equal(qr, qrTerminal(qrMatrix(url)));
    }
    const tty = await main(['link'], { cwd, env: {}, out: () => {}, err: () => {}, outIsTTY: true });
    assert.equal(tty, 0);
    const ttyOut: string[] = [];
    await main(['link'], { cwd, env: {}, out: (l) => ttyOut.push(l), outIsTTY: true });
    assert.ok(
      ttyOut.some((l) => l.startsWith('█')),
      'QR codes by default on a terminal',
    );
    const noQr: string[] = [];
    await main(['link', '--no-qr'], { cwd, env: {}, out: (l) => noQr.push(l), outIsTTY: true });
    assert.ok(!noQr.some((l) => /[█▀▄]/.test(l)));

    const files = await run(['link', '--png', 'link.png', '--svg', 'link.svg', '--json'], cwd);
    assert.equal(files.code, 0, files.stderr);
    const first = JSON.parse(files.stdout.split('\n')[0]!) as { https: string };
    const modules = qrMatrix(first.https);
    assert.deepEqual(await readFile(path.join(cwd, 'link.png')), qrPng(modules));
    assert.equal(await readFile(path.join(cwd, 'link.svg'), 'utf8'), qrSvg(modules));
    assert.match(files.stderr, /QR code of the \w+ link of listener "main" written to link\.png\n/);
    const bad = await run(['link', '--png', path.join(cwd, 'no-such-dir', 'x.png')], cwd);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^mtproxy: .*x\.png: cannot write the QR code: /);
  });

  test('link: without public_host the links use the public address found, and say when it is a guess', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'public-'));
    await writeFile(path.join(cwd, 'mtproxy.toml'), `[[listeners]]\nport = 443\nsecret = "${SECRET}"\n`);
    const linkWith = async (found: PublicAddress) => {
      const out: string[] = [];
      const code = await main(['link', '-a', 'dd'], {
        cwd,
        env: {},
        out: (l) => out.push(l),
        publicAddress: async () => found,
      });
      assert.equal(code, 0);
      return out.join('\n');
    };
    const found = await linkWith({ host: '8.8.8.8', ipv6: null, source: 'interface' });
    assert.match(found, /server=8\.8\.8\.8&port=443/);
    assert.doesNotMatch(found, /guess/);
    const guessed = await linkWith({ host: '10.0.0.5', ipv6: null, source: 'guess' });
    assert.match(guessed, /server=10\.0\.0\.5&port=443/);
    assert.match(guessed, /Warning: the links of "main" use 10\.0\.0\.5, only a guess/);

    // With public_host nothing is looked up (in middle mode that would ask telegram.ip_lookup_url).
    await writeFile(
      path.join(cwd, 'mtproxy.toml'),
      `[[listeners]]\nport = 443\nsecret = "${SECRET}"\nad_tag = "${SECRET}"\npublic_host = "proxy.example.net"\n`,
    );
    const named: string[] = [];
    const code = await main(['link', '-a', 'dd'], {
      cwd,
      env: {},
      out: (l) => named.push(l),
      publicAddress: async () => assert.fail('no lookup with public_host'),
    });
    assert.equal(code, 0);
    assert.match(named.join('\n'), /server=proxy\.example\.net&port=443/);
  });

  test('link: a fake-TLS listener without a cover domain gets a hint instead of an ee link', async () => {
    const cwd = await mkdtemp(path.join(dir(), 'nodomain-'));
    await writeFile(
      path.join(cwd, 'mtproxy.toml'),
      `[[listeners]]\nhost = "127.0.0.1"\nsecret = "${SECRET}"\n`,
    );
    const r = await run(['link'], cwd);
    assert.equal(r.code, 0);
    assert.doesNotMatch(r.stdout, /secret=ee/);
    assert.match(r.stdout, /Listener "main" accepts fake-TLS for any domain: set tls_domain/);
  });

  test('--help, --version, unknown command', async () => {
    const help = await run(['--help'], dir());
    assert.equal(help.code, 0);
    for (const name of ['run', 'secret', 'link']) assert.match(help.stdout, new RegExp(`\\n  ${name} `));
    const version = await run(['--version'], dir());
    assert.match(version.stdout, /^\d+\.\d+\.\d+/);
    const unknown = await run(['frobnicate'], dir());
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
  });
});
