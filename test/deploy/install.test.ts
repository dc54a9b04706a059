/**
 * scripts/install.sh in a throwaway root: no root privileges, no systemctl, no npm, no network.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const script = join(repo, 'scripts/install.sh');
const roots: string[] = [];

after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function freshRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'mtproxy-install-'));
  roots.push(r);
  return r;
}

function install(root: string, ...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync('bash', [script, '--root', root, '--node', process.execPath, '--yes', ...args], {
    encoding: 'utf8',
    env: { ...process.env, PATH: process.env.PATH ?? '/usr/bin:/bin' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function read(root: string, path: string): string {
  return readFileSync(join(root, path), 'utf8');
}

const secret = '0123456789abcdef0123456789abcdef';

describe('install.sh', () => {
  it('passes bash -n and starts with strict mode', () => {
    const r = spawnSync('bash', ['-n', script]);
    assert.equal(r.status, 0, String(r.stderr));
    assert.match(readFileSync(script, 'utf8'), /^#!\/usr\/bin\/env bash\n[\s\S]*?^set -euo pipefail$/m);
  });

  it('installs the app, config and unit, and prints the links', () => {
    const root = freshRoot();
    const r = install(
      root,
      '-p',
      '8443',
      '-s',
      secret,
      '-D',
      'www.example.com',
      '--public-host',
      '203.0.113.7',
    );
    assert.equal(r.code, 0, r.err);
    assert.ok(existsSync(join(root, 'opt/mtproxy/bin/mtproxy.js')));
    assert.ok(existsSync(join(root, 'opt/mtproxy/src')));
    assert.ok(existsSync(join(root, 'opt/mtproxy/package-lock.json')));

    const config = read(root, 'etc/mtproxy/mtproxy.toml');
    // Written by `mtproxy init`, not by a template of the installer's own.
    assert.match(config, /^# mtproxy configuration written by `mtproxy init`/);
    assert.match(r.out, /Writing \S+mtproxy\.toml with mtproxy init/);
    assert.doesNotMatch(readFileSync(script, 'utf8'), /\[\[listeners\]\]|^\[admin\]$|<<\W*TOML/m);
    assert.match(config, /^port = 8443$/m);
    assert.match(config, new RegExp(`^secret = "${secret}"$`, 'm'));
    assert.match(config, /^tls_domain = "www\.example\.com"$/m);
    assert.match(config, /^allowed_protocols = \["secure", "tls"\]$/m);
    assert.equal(statSync(join(root, 'etc/mtproxy/mtproxy.toml')).mode & 0o777, 0o640);

    // `mtproxy` in PATH runs the installed copy with the installed config.
    const wrapper = read(root, 'usr/local/bin/mtproxy');
    assert.match(wrapper, /MTP_CONFIG:=\/etc\/mtproxy\/mtproxy\.toml/);
    assert.match(wrapper, /^exec \S+ \/opt\/mtproxy\/bin\/mtproxy\.js "\$@"$/m);
    assert.equal(statSync(join(root, 'usr/local/bin/mtproxy')).mode & 0o777, 0o755);
    // Under --root npm is skipped: borrow the checkout's dependencies.
    symlinkSync(join(repo, 'node_modules'), join(root, 'opt/mtproxy/node_modules'));
    const viaWrapper = spawnSync(
      'sh',
      [
        '-c',
        wrapper.replace('/opt/mtproxy/', `${root}/opt/mtproxy/`).replace('#!/bin/sh\n', ''),
        'mtproxy',
        'secret',
      ],
      { encoding: 'utf8', cwd: root },
    );
    assert.equal(viaWrapper.status, 0, viaWrapper.stderr);
    assert.match(viaWrapper.stdout, /^[0-9a-f]{32}$/m);

    const unit = read(root, 'etc/systemd/system/mtproxy.service');
    assert.match(
      unit,
      /^ExecStart=\S+ \/opt\/mtproxy\/bin\/mtproxy\.js run --config \/etc\/mtproxy\/mtproxy\.toml$/m,
    );
    assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);

    const domainHex = Buffer.from('www.example.com').toString('hex');
    assert.match(r.out, new RegExp(`tg://proxy\\?server=203\\.0\\.113\\.7&port=8443&secret=dd${secret}`));
    assert.match(
      r.out,
      new RegExp(`https://t\\.me/proxy\\?server=203\\.0\\.113\\.7&port=8443&secret=ee${secret}${domainHex}`),
    );
    assert.match(r.out, /skipped: systemctl/);
  });

  it('writes a config the proxy accepts', async () => {
    const root = freshRoot();
    const tag = 'fedcba9876543210fedcba9876543210';
    const r = install(
      root,
      '-p',
      '443',
      '-s',
      secret,
      '-t',
      tag,
      '-a',
      'classic,secure',
      '-a',
      'tls',
      '-D',
      'a.example.org',
      '--public-host',
      'proxy.example.net',
    );
    assert.equal(r.code, 0, r.err);
    const { parseConfig } = await import('../../src/config/load.ts');
    const config = parseConfig(read(root, 'etc/mtproxy/mtproxy.toml'));
    const [listener] = config.listeners;
    assert.equal(listener.port, 443);
    assert.equal(listener.secret.toString('hex'), secret);
    assert.equal(listener.adTag?.toString('hex'), tag);
    assert.deepEqual([...listener.allowedProtocols].sort(), ['classic', 'secure', 'tls']);
    assert.deepEqual(listener.tlsDomains, ['a.example.org']);
    assert.equal(listener.publicHost, 'proxy.example.net');
    assert.equal(config.stateDir, '/var/lib/mtproxy');
  });

  it('asks for what the flags do not give, with the installed values as defaults', () => {
    const root = freshRoot();
    const ask = (answers: string, ...args: string[]) =>
      spawnSync(
        'bash',
        [script, '--root', root, '--node', process.execPath, '--public-host', '192.0.2.9', ...args],
        {
          input: answers,
          encoding: 'utf8',
          env: { ...process.env, MTPROXY_INSTALL_ANSWERS_ON_STDIN: '1' },
        },
      );
    // port, secret (empty = random), ad tag, cover domain, protocols
    const first = ask(`8443\n\n${'ab'.repeat(16)}\nwww.example.com\nsecure,tls\n`);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stderr, /Port to listen on \[443\]: 8443/);
    const config = read(root, 'etc/mtproxy/mtproxy.toml');
    assert.match(config, /^port = 8443$/m);
    assert.match(config, new RegExp(`^ad_tag = "${'ab'.repeat(16)}"$`, 'm'));
    assert.match(config, /^allowed_protocols = \["secure", "tls"\]$/m);
    const secret = /^secret = "([0-9a-f]{32})"$/m.exec(config)?.[1];
    assert.ok(secret);

    // Enter everywhere keeps what is installed, except "none" drops the ad tag.
    const second = ask('\n\nnone\n\n\n');
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stderr, /Port to listen on \[8443\]/);
    const after = read(root, 'etc/mtproxy/mtproxy.toml');
    assert.match(after, new RegExp(`^secret = "${secret}"$`, 'm'));
    assert.match(after, /^tls_domain = "www\.example\.com"$/m);
    assert.doesNotMatch(after, /ad_tag/);

    // Flags are not asked for.
    const third = ask('\n\n\n', '-p', '9443', '-s', secret!, '-a', 'secure');
    assert.equal(third.status, 0, third.stderr);
    assert.doesNotMatch(third.stderr, /Port to listen on|Allowed protocols/);
  });

  it('is idempotent: a second run keeps the secret and changes nothing', () => {
    const root = freshRoot();
    const first = install(root, '-p', '1443', '--public-host', '198.51.100.1');
    assert.equal(first.code, 0, first.err);
    const config1 = read(root, 'etc/mtproxy/mtproxy.toml');
    const unit1 = read(root, 'etc/systemd/system/mtproxy.service');
    const generated = /^secret = "([0-9a-f]{32})"$/m.exec(config1)?.[1];
    assert.ok(generated, 'a random secret was generated');

    const second = install(root);
    assert.equal(second.code, 0, second.err);
    assert.match(second.out, /config unchanged/);
    assert.equal(read(root, 'etc/mtproxy/mtproxy.toml'), config1);
    // Nothing asked changes: a hand edit stays as it is.
    const edited = `${config1}\n[log]\nlevel = "warn"\n`;
    writeFileSync(join(root, 'etc/mtproxy/mtproxy.toml'), edited);
    const kept = install(root, '-p', '1443');
    assert.equal(kept.code, 0, kept.err);
    assert.match(kept.out, /config unchanged/);
    assert.equal(read(root, 'etc/mtproxy/mtproxy.toml'), edited);
    writeFileSync(join(root, 'etc/mtproxy/mtproxy.toml'), config1);
    assert.equal(read(root, 'etc/systemd/system/mtproxy.service'), unit1);
    assert.ok(!existsSync(join(root, 'etc/mtproxy/mtproxy.toml.bak')));

    const third = install(root, '-p', '2443');
    assert.equal(third.code, 0, third.err);
    const config3 = read(root, 'etc/mtproxy/mtproxy.toml');
    assert.match(config3, /^port = 2443$/m);
    assert.match(config3, new RegExp(`^secret = "${generated}"$`, 'm'));
    assert.equal(read(root, 'etc/mtproxy/mtproxy.toml.bak'), config1);
  });

  it('rejects bad input with one line and changes nothing', () => {
    const root = freshRoot();
    for (const args of [
      ['-s', 'xyz'],
      ['-p', '70000'],
      ['-t', '1234'],
      ['-a', 'tls'],
      ['-a', 'socks'],
      ['--public-host', 'bad host'],
      ['--bogus'],
    ]) {
      const r = install(root, ...args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.equal(r.err.trim().split('\n').length, 1, r.err);
      assert.match(r.err, /^install\.sh: /);
    }
    assert.ok(!existsSync(join(root, 'etc/mtproxy/mtproxy.toml')));
  });

  it('-d means dd only, as in the mtproxy command; -D (--tls-domain) is the cover domain', () => {
    const old = install(freshRoot(), '-d', 'www.example.com', '--yes');
    assert.notEqual(old.code, 0);
    assert.match(old.err, /^install\.sh: -d means dd only \(as in mtproxy -d\).*use -D www\.example\.com/);
    const root = freshRoot();
    const r = install(root, '-d', '--public-host', '203.0.113.7', '--yes');
    assert.equal(r.code, 0, r.err);
    const config = readFileSync(join(root, 'etc/mtproxy/mtproxy.toml'), 'utf8');
    assert.match(config, /^allowed_protocols = \["secure"\]$/m);
  });

  it('--dry-run prints the actions and writes nothing', () => {
    const root = freshRoot();
    const r = install(root, '--dry-run', '--sysctl', '-s', secret, '--public-host', '192.0.2.1');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /would write: .*mtproxy\.toml/);
    assert.match(r.out, /would write: .*mtproxy\.service/);
    assert.match(r.out, /would write: .*90-mtproxy\.conf/);
    assert.ok(!existsSync(join(root, 'opt')));
    assert.ok(!existsSync(join(root, 'etc')));
  });

  it('installs from a source archive, and from a piped script', () => {
    const work = freshRoot();
    const top = join(work, 'mtproxy-main');
    for (const item of ['bin', 'src', 'deploy', 'package.json', 'package-lock.json']) {
      cpSync(join(repo, item), join(top, item), { recursive: true });
    }
    // Under --root npm is skipped, and `mtproxy init` needs the dependencies: the archive brings them.
    symlinkSync(join(repo, 'node_modules'), join(top, 'node_modules'));
    const archive = join(work, 'mtproxy.tar.gz');
    assert.equal(spawnSync('tar', ['-czf', archive, '-C', work, 'mtproxy-main']).status, 0);
    const root = join(work, 'root');
    const r = install(root, '--source', archive, '--public-host', '192.0.2.1');
    assert.equal(r.code, 0, r.err);
    assert.ok(existsSync(join(root, 'opt/mtproxy/src/cli/main.ts')));
    assert.ok(existsSync(join(root, 'etc/systemd/system/mtproxy.service')));

    // `curl … | bash -s -- …`: no script file, so the sources must be named.
    const piped = (args: string[]) =>
      spawnSync(
        'bash',
        ['-s', '--', '--root', join(work, 'piped'), '--node', process.execPath, '--yes', ...args],
        {
          input: readFileSync(script),
          cwd: work,
          encoding: 'utf8',
        },
      );
    const without = piped(['--public-host', '192.0.2.1']);
    assert.notEqual(without.status, 0);
    assert.match(without.stderr, /--source/);
    const withSource = piped(['--source', `file://${archive}`, '--public-host', '192.0.2.1']);
    assert.equal(withSource.status, 0, withSource.stderr);
    assert.ok(existsSync(join(work, 'piped/opt/mtproxy/bin/mtproxy.js')));
  });

  it('--sysctl installs the kernel settings', () => {
    const root = freshRoot();
    const r = install(root, '--sysctl', '--public-host', '192.0.2.1');
    assert.equal(r.code, 0, r.err);
    const sysctl = read(root, 'etc/sysctl.d/90-mtproxy.conf');
    assert.match(sysctl, /net\.ipv4\.tcp_max_orphans/);
    assert.match(sysctl, /nf_conntrack_max/);
    // The README's "Kernel tuning" block is the same set of settings.
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const block = /## Kernel tuning[\s\S]*?```ini\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const settings = (text: string) =>
      text
        .split('\n')
        .map((l) => l.replace(/#.*$/, '').trim())
        .filter(Boolean)
        .map((l) => l.replace(/\s+/g, ' '));
    assert.deepEqual(settings(block), settings(sysctl));
  });

  it('--uninstall removes the app and unit but keeps config; --purge removes everything', () => {
    const root = freshRoot();
    assert.equal(install(root, '--sysctl', '--public-host', '192.0.2.1').code, 0);
    const u = install(root, '--uninstall');
    assert.equal(u.code, 0, u.err);
    assert.ok(!existsSync(join(root, 'opt/mtproxy')));
    assert.ok(!existsSync(join(root, 'etc/systemd/system/mtproxy.service')));
    assert.ok(!existsSync(join(root, 'etc/sysctl.d/90-mtproxy.conf')));
    assert.ok(!existsSync(join(root, 'usr/local/bin/mtproxy')));
    assert.ok(existsSync(join(root, 'etc/mtproxy/mtproxy.toml')));
    const again = install(root, '--uninstall');
    assert.equal(again.code, 0, again.err);
    const p = install(root, '--uninstall', '--purge');
    assert.equal(p.code, 0, p.err);
    assert.ok(!existsSync(join(root, 'etc/mtproxy')));
    assert.ok(!existsSync(join(root, 'var/lib/mtproxy')));
  });
});
