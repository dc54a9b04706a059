/**
 * Under the systemd unit's sandbox, `os.networkInterfaces()` needs AF_NETLINK. The unit allows it, and the
 * proxy survives without it anyway: it starts without `public_host` and its workers live through probes that
 * are fronted. The proxy runs under a seccomp filter that fails AF_NETLINK sockets (as RestrictAddressFamilies
 * does), inside a network namespace of its own so nothing can leave the machine. Needs Linux, python3, ip and
 * unprivileged user namespaces (or root); skipped with the reason otherwise.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';
import ipaddr from 'ipaddr.js';
import type { InterfaceAddress } from '../../src/runtime/interfaces.ts';

const LOADER = fileURLToPath(new URL('./fixtures/no-netlink.py', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/netlink-probe.ts', import.meta.url));
const unit = readFileSync(new URL('../../deploy/systemd/mtproxy.service', import.meta.url), 'utf8');

/** The command that runs `argv` in a namespace with only loopback, under the AF_NETLINK filter. */
function sandboxed(argv: string[]): [string, string[]] {
  const script = 'ip link set lo up && exec "$@"';
  const inner = ['sh', '-c', script, 'sh', 'python3', LOADER, ...argv];
  return process.getuid?.() === 0 ? ['unshare', ['-n', ...inner]] : ['unshare', ['-rn', ...inner]];
}

function whyNotRunnable(): string | null {
  if (process.platform !== 'linux') return 'seccomp and network namespaces are Linux only';
  try {
    const [cmd, args] = sandboxed([process.execPath, '-e', 'process.exit(0)']);
    execFileSync(cmd, args, { stdio: 'pipe' });
  } catch (e) {
    return `cannot run a filtered process in a namespace here (${String((e as Error).message).split('\n')[0]})`;
  }
  return null;
}

describe('AF_NETLINK', () => {
  it('the systemd unit allows AF_NETLINK (os.networkInterfaces needs it)', () => {
    const families = /^RestrictAddressFamilies=(.*)$/m.exec(unit)?.[1].split(/\s+/) ?? [];
    assert.ok(families.includes('AF_NETLINK'), `RestrictAddressFamilies=${families.join(' ')}`);
  });

  const skip = whyNotRunnable();
  it('without it the proxy starts, and probes fronted through the loop check leave its workers alive', {
    skip: skip ?? false,
  }, () => {
    const [cmd, args] = sandboxed([process.execPath, FIXTURE]);
    const stdout = execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 90_000,
    });
    const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    assert.equal(r.netlinkBlocked, true, 'the filter is in place');
    assert.equal(r.started, true, String(r.output));
    assert.equal(r.probed, 6);
    assert.equal(r.workerDied, false, String(r.output));
    assert.equal(r.stack, false, String(r.output));
    assert.equal(r.servedAfter, true, String(r.output));
    assert.equal(r.code, 0, String(r.output));
  });

  it('without it the addresses come from /proc/net: ones os.networkInterfaces() also gives', {
    skip: skip ?? false,
  }, () => {
    const module = fileURLToPath(new URL('../../src/runtime/interfaces.ts', import.meta.url));
    const script = `import(${JSON.stringify(module)}).then((m) => console.log(JSON.stringify(m.interfaceAddresses())))`;
    const [cmd, args] = sandboxed([process.execPath, '-e', script]);
    const inside = JSON.parse(execFileSync(cmd, args, { encoding: 'utf8' })) as InterfaceAddress[];
    assert.ok(inside.some((a) => a.address === '127.0.0.1' && a.internal));
    // In this machine's own namespace, still under the filter: every address read from /proc is one of those
    // Node reports without the filter (and loopback is among them).
    const viaProc = sandboxedHere(script);
    const normal = (address: string) => ipaddr.parse(address.split('%')[0]).toNormalizedString();
    const known = new Set(
      Object.values(networkInterfaces())
        .flatMap((l) => l ?? [])
        .map((a) => normal(a.address)),
    );
    assert.ok(viaProc.some((a) => a.address === '127.0.0.1'));
    for (const a of viaProc) assert.ok(known.has(normal(a.address)), a.address);
  });
});

/** Runs `script` under the AF_NETLINK filter in this network namespace. */
function sandboxedHere(script: string): InterfaceAddress[] {
  const out = execFileSync('python3', [LOADER, process.execPath, '-e', script], { encoding: 'utf8' });
  return JSON.parse(out) as InterfaceAddress[];
}
