/**
 * The systemd unit carries what the deployment issue asks for: a descriptor limit, port 443 without root,
 * restarts on failure, reload by SIGHUP, and the sandbox with a state directory as the only writable place.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const unit = readFileSync(new URL('../../deploy/systemd/mtproxy.service', import.meta.url), 'utf8');

/** Every `Key=value` of the [Service] section, in order (a key may repeat). */
function serviceSettings(): Array<[string, string]> {
  const start = unit.indexOf('\n[Service]\n');
  const end = unit.indexOf('\n[', start + 1);
  assert.ok(start >= 0, 'has a [Service] section');
  return unit
    .slice(start, end < 0 ? undefined : end)
    .split('\n')
    .filter((line) => /^[A-Za-z]+=/.test(line))
    .map((line) => {
      const eq = line.indexOf('=');
      return [line.slice(0, eq), line.slice(eq + 1)];
    });
}

function value(key: string): string | undefined {
  return serviceSettings().find(([k]) => k === key)?.[1];
}

describe('systemd unit', () => {
  it('raises the descriptor limit and restarts on failure', () => {
    assert.ok(Number(value('LimitNOFILE')) >= 65536, `LimitNOFILE=${value('LimitNOFILE')}`);
    assert.equal(value('Restart'), 'on-failure');
  });

  it('binds 443 as an unprivileged user through CAP_NET_BIND_SERVICE only', () => {
    assert.ok(value('User') && value('User') !== 'root');
    assert.equal(value('AmbientCapabilities'), 'CAP_NET_BIND_SERVICE');
    assert.equal(value('CapabilityBoundingSet'), 'CAP_NET_BIND_SERVICE');
    assert.equal(value('NoNewPrivileges'), 'true');
  });

  it('reloads with SIGHUP and stops with SIGTERM', () => {
    assert.match(value('ExecReload') ?? '', /^\/bin\/kill -HUP \$MAINPID$/);
    assert.equal(value('KillSignal') ?? 'SIGTERM', 'SIGTERM');
    assert.match(value('ExecStart') ?? '', / run --config \/etc\/mtproxy\/mtproxy\.toml$/);
  });

  it('is sandboxed with the state directory as the only writable place', () => {
    assert.equal(value('ProtectSystem'), 'strict');
    assert.equal(value('StateDirectory'), 'mtproxy');
    assert.equal(value('WorkingDirectory'), '/var/lib/mtproxy');
    assert.ok(
      serviceSettings().some(([k, v]) => k === 'Environment' && v === 'MTP_STATE_DIR=/var/lib/mtproxy'),
      'the proxy keeps its state in the StateDirectory',
    );
    for (const key of ['ProtectHome', 'PrivateTmp', 'PrivateDevices']) assert.equal(value(key), 'true', key);
    assert.equal(value('ReadWritePaths'), undefined, 'no other writable path');
  });

  it('offers the firewall at start and stop, commented out, as root outside the sandbox', () => {
    const optional = unit
      .split('\n')
      .filter((line) => /^#Exec(StartPre|StopPost)=/.test(line))
      .map((line) => line.slice(1));
    assert.equal(optional.length, 2, 'an ExecStartPre and an ExecStopPost line to uncomment');
    const [pre, post] = optional;
    const execStart = value('ExecStart') ?? '';
    const node = execStart.split(' ')[0];
    const config = / --config (\S+)$/.exec(execStart)?.[1];
    assert.equal(pre, `ExecStartPre=-+${node} /opt/mtproxy/bin/mtproxy.js firewall apply --config ${config}`);
    assert.equal(
      post,
      `ExecStopPost=-+${node} /opt/mtproxy/bin/mtproxy.js firewall remove --config ${config}`,
    );
    assert.match(unit, /install\.sh --firewall/, 'says how the installer adds them');
  });

  const analyze = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;
  it('with the firewall lines uncommented, systemd accepts the unit', {
    skip: !analyze && 'no systemd-analyze',
  }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'mtproxy-unit-'));
    try {
      // Commands that exist everywhere stand in for node, so verify checks the syntax, not this machine.
      const text = unit
        .replace(/^#(Exec(StartPre|StopPost)=)/gm, '$1')
        .replace(/\/usr\/bin\/node /g, '/bin/true ');
      const file = join(dir, 'mtproxy.service');
      writeFileSync(file, text);
      const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
      const complaints = (r.stderr + r.stdout)
        .split('\n')
        .filter((l) => /mtproxy\.service/.test(l) && !/User=|Group=|mtproxy.*not found|Failed to/.test(l));
      assert.deepEqual(complaints, []);
      assert.match(text, /^ExecStartPre=-\+\/bin\/true .* firewall apply /m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
