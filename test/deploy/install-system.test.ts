/**
 * scripts/install.sh as on a server, with the system's commands stubbed on PATH (systemctl, journalctl, npm,
 * apt-get, apt-cache, curl, gpg, nft): the service check and doctor after the install, the admin API in
 * the written config, Node.js from packages (never a download by hand), the public address found the way the
 * proxy finds it (no third-party lookup), --firewall, --update, and the installer's own error messages instead
 * of a raw tool error.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/load.ts';
import { discoverPublicAddress } from '../../src/config/public-address.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const script = join(repo, 'scripts/install.sh');
const dirs: string[] = [];
let listener: net.Server;
let listeningPort = 0;

before(async () => {
  // Stands in for the started proxy: the service check connects to the configured port.
  listener = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', () => resolve()));
  listeningPort = (listener.address() as net.AddressInfo).port;
});
after(() => {
  listener.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const STUBS: Record<string, string> = {
  systemctl: `[ "$1" = restart ] && [ -n "$STUB_RESTART_FAILS" ] && { echo "Job for mtproxy.service failed." >&2; exit 1; }
case "$1" in is-active) echo "\${STUB_STATE:-active}"; [ "\${STUB_STATE:-active}" = active ] || exit 3 ;; esac`,
  journalctl: 'echo "mtproxy[42]: mtproxy: port 443 is in use by another program"',
  // npm ci --prefix DIR: borrow the checkout's dependencies.
  npm: `[ -n "$STUB_NPM_FAILS" ] && { echo "npm error code ECONNREFUSED" >&2; exit 1; }; prefix=""; while [ $# -gt 0 ]; do [ "$1" = --prefix ] && prefix=$2; shift; done; ln -sfn "$STUB_NODE_MODULES" "$prefix/node_modules"`,
  'apt-cache':
    'v=$STUB_APT_NODE; [ -n "$v" ] || v="(none)"; printf "nodejs:\\n  Installed: (none)\\n  Candidate: %s\\n" "$v"',
  // Installing nodejs puts a current node first in PATH.
  'apt-get':
    '[ -n "$STUB_APT_FAILS" ] && { echo "E: Could not get lock /var/lib/apt/lists/lock" >&2; exit 100; }; case " $* " in *" nodejs "*) ln -sf "$STUB_NODE" "$STUB_BIN/node" ;; esac',
  curl: `for a; do url=$a; done
case "$url" in
  *nodesource*) [ -n "$STUB_KEY_FAILS" ] && { echo "curl: (6) Could not resolve host: deb.nodesource.com" >&2; exit 6; }; echo "-----BEGIN PGP PUBLIC KEY BLOCK-----" ;;
  *) for ok in $STUB_IP_OK; do case "$url" in *"$ok"*) echo "$STUB_IP"; exit 0 ;; esac; done
     echo "curl: (28) Connection timed out" >&2; exit 28 ;;
esac`,
  gpg: 'out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done; cat > "$out"',
  nft: 'cat >> "$STUB_LOG.nft"',
};

interface Machine {
  dir: string;
  root: string;
  bin: string;
  log: () => string;
  run(args: string[], env?: Record<string, string>): { code: number | null; out: string; err: string };
}

function machine(without: string[] = []): Machine {
  const dir = mkdtempSync(join(tmpdir(), 'mtproxy-install-sys-'));
  dirs.push(dir);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const logFile = join(dir, 'calls.log');
  writeFileSync(logFile, '');
  for (const [name, body] of Object.entries(STUBS)) {
    if (without.includes(name)) continue;
    writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> "$STUB_LOG"\n${body}\n`, { mode: 0o755 });
  }
  const root = join(dir, 'root');
  return {
    dir,
    root,
    bin,
    log: () => readFileSync(logFile, 'utf8'),
    run(args, env = {}) {
      const r = spawnSync('bash', [script, '--root', root, '--yes', ...args], {
        encoding: 'utf8',
        env: {
          // The stubs, then the basic tools; a node found there is too old (or absent).
          PATH: `${bin}:/usr/bin:/bin`,
          HOME: dir,
          STUB_LOG: logFile,
          STUB_BIN: bin,
          STUB_NODE: process.execPath,
          STUB_NODE_MODULES: join(repo, 'node_modules'),
          MTPROXY_INSTALL_START_WAIT: '2',
          ...env,
        },
      });
      return { code: r.status, out: r.stdout, err: r.stderr };
    },
  };
}

const onServer = ['--with-systemd', '--with-npm', '--node', process.execPath];

describe('install.sh on a server (stubbed system commands)', () => {
  it('checks that the service came up and runs doctor', () => {
    const m = machine();
    const r = m.run([...onServer, '-p', String(listeningPort), '--public-host', '203.0.113.7']);
    assert.equal(r.code, 0, r.err + r.out);
    const calls = m.log();
    assert.match(calls, /^systemctl daemon-reload$/m);
    assert.match(calls, /^systemctl enable mtproxy\.service$/m);
    assert.match(calls, /^systemctl restart mtproxy\.service$/m);
    assert.match(calls, /^systemctl is-active mtproxy\.service$/m);
    assert.match(r.out, /mtproxy\.service is running and its listeners accept connections/);
    assert.match(r.out, /Checking the set-up \(mtproxy doctor\)/);
    assert.match(r.out, /ok\s+config\s+valid from /, 'doctor ran against the installed config');
    assert.match(r.out, /tg:\/\/proxy\?server=203\.0\.113\.7/);
  });

  it('a service that does not come up fails with its own message and the log', () => {
    for (const [env, port] of [
      [{ STUB_STATE: 'failed' }, listeningPort],
      // systemctl restart itself fails: the same check, with the log.
      [{ STUB_STATE: 'failed', STUB_RESTART_FAILS: '1' }, listeningPort],
      // Active, but nothing accepts connections on the port.
      [{}, 1],
    ] as const) {
      const m = machine();
      const r = m.run([...onServer, '-p', String(port), '--public-host', '203.0.113.7'], env);
      assert.notEqual(r.code, 0, r.out);
      assert.match(r.err, /^install\.sh: mtproxy\.service did not come up \(state: \w+\)/m);
      assert.match(r.out, /port 443 is in use by another program/, 'the journal is shown');
      assert.doesNotMatch(r.out, /tg:\/\//, 'no links for a proxy that is not running');
    }
  });

  it('writes an [admin] section on 127.0.0.1 with a random token, kept on re-runs', () => {
    const m = machine();
    const first = m.run([...onServer, '-p', String(listeningPort), '--public-host', '203.0.113.7']);
    assert.equal(first.code, 0, first.err);
    const file = join(m.root, 'etc/mtproxy/mtproxy.toml');
    const config = parseConfig(readFileSync(file, 'utf8'));
    assert.deepEqual(config.admin.listen, { host: '127.0.0.1', port: 9101 });
    assert.match(config.admin.token ?? '', /^[0-9a-f]{48}$/);
    const again = m.run([...onServer]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /config unchanged/);
    assert.equal(parseConfig(readFileSync(file, 'utf8')).admin.token, config.admin.token);
    // A new config (another public host) keeps the admin address and token the installed one had.
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace('listen = "127.0.0.1:9101"', 'listen = "127.0.0.1:9202"'),
    );
    const changed = m.run([...onServer, '--public-host', '203.0.113.8']);
    assert.equal(changed.code, 0, changed.err);
    assert.match(changed.out, /Updating \S+mtproxy\.toml with mtproxy init/);
    const rewritten = parseConfig(readFileSync(file, 'utf8'));
    assert.equal(rewritten.listeners[0]!.publicHost, '203.0.113.8');
    assert.deepEqual(rewritten.admin.listen, { host: '127.0.0.1', port: 9202 });
    assert.equal(rewritten.admin.token, config.admin.token);
    // A config without [admin] (an older installer's) gets one on the next run.
    writeFileSync(file, readFileSync(file, 'utf8').replace(/\n\[admin\][\s\S]*$/, '\n'));
    assert.equal(m.run([...onServer]).code, 0);
    assert.match(parseConfig(readFileSync(file, 'utf8')).admin.token ?? '', /^[0-9a-f]{48}$/);
    // Another machine, another token.
    const other = machine();
    assert.equal(other.run([...onServer, '-p', String(listeningPort), '--public-host', '192.0.2.1']).code, 0);
    const otherToken = parseConfig(readFileSync(join(other.root, 'etc/mtproxy/mtproxy.toml'), 'utf8')).admin
      .token;
    assert.notEqual(otherToken, config.admin.token);
  });

  it('installs jemalloc from the distribution when it is missing; without --online it says how', () => {
    const m = machine();
    const r = m.run(['--online', '--public-host', '192.0.2.1'], { STUB_APT_NODE: '22.14.0+dfsg-1' });
    assert.equal(r.code, 0, r.err);
    assert.match(m.log(), /^apt-get install -y -q libjemalloc2$/m);
    const offline = machine();
    const quiet = offline.run([...onServer, '-p', String(listeningPort), '--public-host', '203.0.113.7']);
    assert.equal(quiet.code, 0, quiet.err + quiet.out);
    assert.doesNotMatch(offline.log(), /libjemalloc2/, 'nothing installed without --online');
    assert.match(quiet.out, /no jemalloc here \(Debian\/Ubuntu: apt-get install libjemalloc2\)/);
  });

  it("takes Node.js from the distribution's package when it is new enough", () => {
    const m = machine();
    const r = m.run(['--online', '--public-host', '192.0.2.1'], { STUB_APT_NODE: '22.14.0+dfsg-1' });
    assert.equal(r.code, 0, r.err);
    assert.match(m.log(), /^apt-get install -y -q nodejs npm$/m);
    assert.doesNotMatch(m.log(), /^curl /m, 'nothing downloaded by hand');
    assert.ok(!existsSync(join(m.root, 'opt/mtproxy/node')));
    assert.match(
      readFileSync(join(m.root, 'etc/systemd/system/mtproxy.service'), 'utf8'),
      /^ExecStart=\S+node /m,
    );
  });

  it('adds the NodeSource apt repository when the distribution has none new enough', () => {
    const m = machine();
    const r = m.run(['--online', '--public-host', '192.0.2.1'], { STUB_APT_NODE: '18.19.0+dfsg-6' });
    assert.equal(r.code, 0, r.err);
    const list = readFileSync(join(m.root, 'etc/apt/sources.list.d/nodesource.list'), 'utf8');
    assert.match(
      list,
      /^deb \[signed-by=\/usr\/share\/keyrings\/nodesource\.gpg\] https:\/\/deb\.nodesource\.com\/node_24\.x nodistro main$/m,
    );
    assert.ok(existsSync(join(m.root, 'usr/share/keyrings/nodesource.gpg')));
    assert.match(m.log(), /^curl \S+ .*https:\/\/deb\.nodesource\.com\/gpgkey\/nodesource-repo\.gpg\.key$/m);
    assert.match(m.log(), /^apt-get install -y -q nodejs$/m);
    assert.doesNotMatch(m.log(), /nodejs\.org/);
  });

  it('fails with its own one-line messages, never a raw tool error', () => {
    const keyFails = machine().run(['--online', '--public-host', '192.0.2.1'], {
      STUB_APT_NODE: '18.19.0',
      STUB_KEY_FAILS: '1',
    });
    const offline = machine().run(['--public-host', '192.0.2.1']);
    const noApt = machine(['apt-get', 'apt-cache']).run(['--online', '--public-host', '192.0.2.1']);
    const aptFails = machine().run(['--online', '--public-host', '192.0.2.1'], { STUB_APT_FAILS: '1' });
    for (const r of [keyFails, offline, noApt, aptFails]) {
      assert.notEqual(r.code, 0);
      assert.equal(r.err.trim().split('\n').length, 1, r.err);
      assert.match(r.err, /^install\.sh: /);
      assert.match(r.err, /--node PATH/);
      assert.doesNotMatch(r.err, /curl: \(/);
    }
    assert.match(keyFails.err, /could not download the NodeSource signing key/);
    assert.match(
      aptFails.err,
      /apt-get update failed \(E: Could not get lock \S+\); fix the package sources/,
    );

    // Sources that cannot be fetched (the curl stub times out; nothing listens on port 1 for git).
    const tarball = machine().run([
      ...onServer,
      '--online',
      '--source',
      'https://127.0.0.1:1/mtproxy.tar.gz',
      '--public-host',
      '192.0.2.1',
    ]);
    const clone = machine().run([
      ...onServer,
      '--online',
      '--source',
      'http://127.0.0.1:1/mtproxy.git',
      '--public-host',
      '192.0.2.1',
    ]);
    const npmFails = machine().run([...onServer, '--public-host', '192.0.2.1'], { STUB_NPM_FAILS: '1' });
    assert.notEqual(npmFails.code, 0);
    assert.match(npmFails.err, /^install\.sh: npm ci could not install the dependencies into /m);
    for (const [r, message] of [
      [tarball, /^install\.sh: could not download or unpack https:\/\/127\.0\.0\.1:1\/mtproxy\.tar\.gz \(/],
      [clone, /^install\.sh: could not clone http:\/\/127\.0\.0\.1:1\/mtproxy\.git \(/],
    ] as const) {
      assert.notEqual(r.code, 0);
      assert.equal(r.err.trim().split('\n').length, 1, r.err);
      assert.match(r.err, message);
      assert.doesNotMatch(r.err, /curl: \(|fatal:/);
    }

    // What mtproxy init refuses (an installed admin token it finds too weak) is said in one line, and the
    // installed config stays as it was.
    const m = machine();
    assert.equal(m.run([...onServer, '-p', String(listeningPort), '--public-host', '192.0.2.1']).code, 0);
    const file = join(m.root, 'etc/mtproxy/mtproxy.toml');
    const weak = readFileSync(file, 'utf8').replace(/^token = ".*"$/m, 'token = "changeme"');
    writeFileSync(file, weak);
    const refused = m.run([...onServer, '-p', '1']);
    assert.notEqual(refused.code, 0);
    assert.equal(refused.err.trim().split('\n').length, 1, refused.err);
    assert.match(
      refused.err,
      /^install\.sh: mtproxy init could not write the config: mtproxy: --admin-token: expected 16 to 256 characters/,
    );
    assert.equal(readFileSync(file, 'utf8'), weak);
    assert.deepEqual(
      readdirSync(join(m.root, 'etc/mtproxy')).filter((f) => f.includes('.new.')),
      [],
      'no half-written file left',
    );
  });

  it('asks no third-party service for the address: the links use what the proxy finds, and say when it guessed', async () => {
    const text = readFileSync(script, 'utf8');
    for (const name of ['ident.me', 'ipify', 'icanhazip', 'IP_LOOKUP']) assert.ok(!text.includes(name), name);
    const link = (out: string) => /server=([^&]+)&/.exec(out)?.[1];
    // Lookup services that would answer, if they were asked.
    const env = { STUB_IP_OK: 'ident.me ipify icanhazip', STUB_IP: '198.51.100.30' };
    const m = machine();
    const r = m.run(['--node', process.execPath, '--online'], env);
    assert.equal(r.code, 0, r.err);
    assert.doesNotMatch(m.log(), /^curl /m, 'no lookup service asked');
    const written = readFileSync(join(m.root, 'etc/mtproxy/mtproxy.toml'), 'utf8');
    assert.doesNotMatch(written, /^public_host/m, 'the proxy finds the address at start');
    // The same address `mtproxy run` would put into its links.
    const found = await discoverPublicAddress(parseConfig(written));
    assert.equal(link(r.out), found.host ?? '127.0.0.1');
    if (found.source === 'guess') {
      assert.match(r.out, /only a guess/);
      assert.match(r.out, /re-run with --public-host HOST/);
    }

    const named = machine();
    const n = named.run(['--node', process.execPath, '--online', '--public-host', 'Proxy.Example.NET'], env);
    assert.equal(n.code, 0, n.err);
    assert.equal(link(n.out), 'proxy.example.net');
    assert.doesNotMatch(n.out, /only a guess/);
    assert.equal(
      parseConfig(readFileSync(join(named.root, 'etc/mtproxy/mtproxy.toml'), 'utf8')).listeners[0]!
        .publicHost,
      'proxy.example.net',
    );
    assert.doesNotMatch(named.log(), /^curl /m);

    const bad = machine().run(['--node', process.execPath, '--public-host', 'not a host']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.err.trim(), /^install\.sh: --public-host: expected a host name or an IP address/);
  });

  it('--firewall installs the start/stop drop-in and loads the rules with nft', () => {
    const m = machine();
    const r = m.run([...onServer, '--firewall', '-p', String(listeningPort), '--public-host', '192.0.2.1']);
    assert.equal(r.code, 0, r.err + r.out);
    const dropin = readFileSync(join(m.root, 'etc/systemd/system/mtproxy.service.d/firewall.conf'), 'utf8');
    assert.match(dropin, /^\[Service\]$/m);
    assert.match(
      dropin,
      /^ExecStartPre=-\+\S+node \/opt\/mtproxy\/bin\/mtproxy\.js firewall apply --config \/etc\/mtproxy\/mtproxy\.toml$/m,
    );
    assert.match(
      dropin,
      /^ExecStopPost=-\+\S+node \/opt\/mtproxy\/bin\/mtproxy\.js firewall remove --config /m,
    );
    // The same two lines the unit offers commented out (with the node path the installer found).
    const unit = readFileSync(join(m.root, 'etc/systemd/system/mtproxy.service'), 'utf8');
    for (const line of dropin.split('\n').filter((l) => l.startsWith('Exec'))) {
      assert.ok(unit.includes(`\n#${line}\n`), line);
    }
    assert.match(r.out, /loaded table inet mtproxy: port\(s\) \d+/);
    assert.match(readFileSync(`${join(m.dir, 'calls.log')}.nft`, 'utf8'), /table inet mtproxy/);

    const u = m.run(['--uninstall', '--with-systemd']);
    assert.equal(u.code, 0, u.err);
    assert.ok(!existsSync(join(m.root, 'etc/systemd/system/mtproxy.service.d')));

    const noNft = machine(['nft']).run([...onServer, '--firewall', '--public-host', '192.0.2.1']);
    assert.notEqual(noNft.code, 0);
    assert.match(noNft.err, /^install\.sh: --firewall needs the nft command/);
  });

  it('asks about the firewall when not given; "no" removes an installed drop-in and the rules', () => {
    const m = machine();
    const dropin = join(m.root, 'etc/systemd/system/mtproxy.service.d/firewall.conf');
    const ask = (answers: string) =>
      spawnSync(
        'bash',
        [script, '--root', m.root, ...onServer, '-p', String(listeningPort), '--public-host', '192.0.2.1'],
        {
          input: answers,
          encoding: 'utf8',
          env: {
            PATH: `${m.bin}:/usr/bin:/bin`,
            HOME: m.dir,
            STUB_LOG: join(m.dir, 'calls.log'),
            STUB_NODE_MODULES: join(repo, 'node_modules'),
            MTPROXY_INSTALL_START_WAIT: '2',
            MTPROXY_INSTALL_ANSWERS_ON_STDIN: '1',
          },
        },
      );
    // secret, ad tag, cover domain, protocols (port and public host are flags), then the firewall.
    const yes = ask('\n\n\n\nyes\n');
    assert.equal(yes.status, 0, yes.stderr + yes.stdout);
    assert.match(
      yes.stderr,
      /SYN limit \(nftables\) against the connection-rate block, yes or no \[no\]: yes/,
    );
    assert.ok(existsSync(dropin));
    assert.match(yes.stdout, /loaded table inet mtproxy/);
    const no = ask('\n\n\n\nno\n');
    assert.equal(no.status, 0, no.stderr + no.stdout);
    assert.match(no.stderr, /yes or no \[yes\]: no/, 'the installed state is the default');
    assert.ok(!existsSync(dropin));
    assert.match(no.stdout, /removed table inet mtproxy|nothing to remove/);
  });

  it('--update installs new code and restarts, keeping the config', () => {
    const m = machine();
    const source = join(m.dir, 'checkout');
    for (const item of ['bin', 'src', 'deploy', 'package.json', 'package-lock.json']) {
      cpSync(join(repo, item), join(source, item), { recursive: true });
    }
    const first = m.run([
      ...onServer,
      '--source',
      source,
      '-p',
      String(listeningPort),
      '--public-host',
      '192.0.2.1',
    ]);
    assert.equal(first.code, 0, first.err);
    const config = readFileSync(join(m.root, 'etc/mtproxy/mtproxy.toml'), 'utf8');
    writeFileSync(join(source, 'src/new-file.ts'), 'export const x = 1;\n');
    const restartsBefore = (m.log().match(/^systemctl restart/gm) ?? []).length;
    const u = m.run([...onServer, '--update', '--source', source, '-p', '1']);
    assert.equal(u.code, 0, u.err + u.out);
    assert.ok(existsSync(join(m.root, 'opt/mtproxy/src/new-file.ts')));
    assert.equal(readFileSync(join(m.root, 'etc/mtproxy/mtproxy.toml'), 'utf8'), config, 'config kept');
    assert.equal((m.log().match(/^systemctl restart/gm) ?? []).length, restartsBefore + 1);
    assert.match(u.out, /running and its listeners accept connections/);

    const nothing = machine().run([...onServer, '--update']);
    assert.notEqual(nothing.code, 0);
    assert.match(
      nothing.err.trim(),
      /^install\.sh: no installed config at .*; run without --update to install$/,
    );
  });

  it('README and --help describe the options, and the README has no placeholder one-liner', () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const section = readme.slice(
      readme.indexOf('\n## systemd and the installer\n'),
      readme.indexOf('\n## Choosing'),
    );
    assert.doesNotMatch(
      section,
      /<raw URL|<git URL/,
      'no placeholder for a location the project does not have',
    );
    assert.match(section, /no published download location yet/);
    assert.match(section, /run `sudo scripts\/install\.sh`\s+in that folder/);
    const help = spawnSync('bash', [script, '--help'], { encoding: 'utf8' }).stdout;
    for (const option of ['--update', '--firewall']) {
      assert.ok(section.includes(`\`${option}\``), `README: ${option}`);
      assert.ok(help.includes(option), `--help: ${option}`);
    }
    assert.match(section, /\[admin\]/);
  });
});
