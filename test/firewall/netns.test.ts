/**
 * `mtproxy firewall` with the real `nft`, in a network namespace of the test's own so the host's firewall is
 * never touched: the proxy listens inside it, a client inside it opens connections to it. A burst within the
 * limit connects, the next SYN is answered with a reset at once (ECONNREFUSED, not a timeout), `apply` twice
 * is the same as once, other tables stay as they were, and `remove` restores the namespace's ruleset.
 * Needs root and `ip netns`; skipped (with the reason) otherwise.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { suiteTempDir } from '../helpers/temp-dir.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const SECRET = '0123456789abcdef0123456789abcdef';
const NS = `mtproxy-fw-${process.pid}`;
const PORT = 8443;
/** Not nft's own default burst (5), so the test shows the configured value is the one applied. */
const BURST = 7;

function whyNotRunnable(): string | null {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'needs root (ip netns, nft)';
  for (const [cmd, args] of [
    ['ip', ['-V']],
    ['nft', ['--version']],
  ] as const) {
    try {
      execFileSync(cmd, args, { stdio: 'ignore' });
    } catch {
      return `${cmd} is not installed (${cmd === 'nft' ? 'apt-get install nftables' : 'iproute2'})`;
    }
  }
  try {
    execFileSync('ip', ['netns', 'add', NS], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'exec', NS, 'nft', 'list', 'ruleset'], { stdio: 'pipe' });
  } catch (e) {
    try {
      execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
    } catch {}
    return `no network namespace support here (${String((e as Error).message).split('\n')[0]})`;
  }
  return null;
}

const skip = whyNotRunnable();

function inNs(cmd: string, args: string[], input?: string): string {
  return execFileSync('ip', ['netns', 'exec', NS, cmd, ...args], {
    encoding: 'utf8',
    input,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync('ip', ['netns', 'exec', NS, process.execPath, MAIN, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { code: err.status, stdout: err.stdout, stderr: err.stderr };
  }
}

/**
 * Opens `count` connections one after the other from inside the namespace; each ends as "ok" (connected),
 * or its error code. A dropped SYN would end as "timeout" only after several seconds of retransmissions.
 */
function probe(count: number): string[] {
  const script = `
    import net from 'node:net';
    const out = [];
    for (let i = 0; i < ${count}; i++) {
      out.push(await new Promise((resolve) => {
        const s = net.connect(${PORT}, '127.0.0.1');
        const timer = setTimeout(() => { s.destroy(); resolve('timeout'); }, 15000);
        s.once('connect', () => { clearTimeout(timer); s.destroy(); resolve('ok'); });
        s.once('error', (e) => { clearTimeout(timer); resolve(e.code); });
      }));
    }
    console.log(JSON.stringify(out));`;
  return JSON.parse(inNs(process.execPath, ['--input-type=module', '-e', script])) as string[];
}

describe('firewall in a network namespace', { skip: skip ?? false }, () => {
  const dir = suiteTempDir('mtproxy-fw-');
  let proxy: ChildProcess | null = null;
  let configFile = '';

  before(async () => {
    configFile = path.join(dir(), 'mtproxy.toml');
    writeFileSync(
      configFile,
      [
        'workers = 1',
        '[[listeners]]',
        'host = "127.0.0.1"',
        `port = ${PORT}`,
        `secret = "${SECRET}"`,
        '[upstream]',
        'mode = "direct"',
        '[telegram]',
        'ip_lookup_url = ""',
        '[firewall]',
        'table = "mtproxy_test"',
        // Slow enough that no token comes back while the test runs.
        'syn_rate = "1/hour"',
        `syn_burst = ${BURST}`,
        'mss_clamp = 536',
        '',
      ].join('\n'),
    );
    // Another table of the "host", which must come through untouched.
    inNs(
      'nft',
      ['-f', '-'],
      'table inet other {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n',
    );
    proxy = spawn('ip', ['netns', 'exec', NS, process.execPath, MAIN, 'run', '--config', configFile], {
      cwd: dir(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    await new Promise<void>((resolve, reject) => {
      proxy!.once('exit', (code) => reject(new Error(`proxy exited with ${code}`)));
      proxy!.stdout!.on('data', (d) => {
        stdout += d;
        if (/tg:\/\/proxy/.test(stdout)) resolve();
      });
    });
  });

  after(async () => {
    if (proxy && proxy.exitCode === null) {
      proxy.kill('SIGTERM');
      await once(proxy, 'exit');
    }
    try {
      execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
    } catch {}
  });

  it('a burst within the limit connects; the SYN past it gets a reset at once; remove restores the ruleset', () => {
    const before = inNs('nft', ['list', 'ruleset']);
    assert.match(before, /table inet other/);

    assert.deepEqual(probe(3), ['ok', 'ok', 'ok'], 'no limit before apply');

    const applied = cli(['firewall', 'apply', '--config', configFile]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(
      applied.stdout,
      /loaded table inet mtproxy_test: port\(s\) 8443, 1\/hour per client address, burst 7/,
    );
    const once1 = inNs('nft', ['list', 'table', 'inet', 'mtproxy_test']);
    assert.equal(cli(['firewall', 'apply', '--config', configFile]).code, 0);
    const ruleset = inNs('nft', ['list', 'ruleset']);
    assert.equal(inNs('nft', ['list', 'table', 'inet', 'mtproxy_test']), once1, 'apply twice = apply once');
    assert.equal(ruleset.match(/table inet mtproxy_test/g)?.length, 1);
    assert.ok(ruleset.includes(before.trim()), 'the other table is untouched');

    const results = probe(BURST + 2);
    assert.deepEqual(results.slice(0, BURST), Array(BURST).fill('ok'), `the burst connects: ${results}`);
    assert.deepEqual(results.slice(BURST), ['ECONNREFUSED', 'ECONNREFUSED'], 'the rest get a TCP reset');

    const removed = cli(['firewall', 'remove', '--config', configFile]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /removed table inet mtproxy_test/);
    assert.equal(inNs('nft', ['list', 'ruleset']), before, 'the ruleset is as it was');
    assert.deepEqual(probe(2), ['ok', 'ok'], 'connections pass again');

    const again = cli(['firewall', 'remove', '--config', configFile]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /not loaded; nothing to remove/);
  });

  it('print shows the script apply loads, and nft accepts it as it is', () => {
    const printed = cli(['firewall', 'print', '--config', configFile]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(printed.stdout, /reject with tcp reset/);
    assert.match(printed.stdout, /tcp option maxseg size set 536/);
    inNs('nft', ['-c', '-f', '-'], printed.stdout);
  });

  it('a bad action is a usage error', () => {
    const r = cli(['firewall', 'flush', '--config', configFile]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /expected one of print, apply, remove/);
  });
});

if (skip)
  describe('firewall in a network namespace: skipped', () => it(`skipped: ${skip}`, { skip }, () => {}));
