/**
 * `mtproxy doctor` on the command line: output lines, exit codes, --health, --json and a broken config.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../helpers/cli.ts';

const secret = '0123456789abcdef0123456789abcdef';
let dir: string;
let listening: net.Server;
let listeningPort: number;
let freePort: number;

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
  );
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mtproxy-doctor-cli-'));
  listening = net.createServer((s) => s.destroy());
  listeningPort = await listen(listening);
  const probe = net.createServer();
  freePort = await listen(probe);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

after(() => {
  listening.close();
  rmSync(dir, { recursive: true, force: true });
});

function configFile(name: string, port: number, extra = ''): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    `workers = 1\n[[listeners]]\nhost = "127.0.0.1"\nport = ${port}\nsecret = "${secret}"\nallowed_protocols = ["secure"]\npublic_host = "proxy.example.net"\n${extra}`,
  );
  return file;
}

const cli = (args: string[]) => runCli(args, dir);

describe('mtproxy doctor', () => {
  it('prints one line per check and a summary', async () => {
    const r = await cli(['doctor', '--config', configFile('a.toml', freePort), '--offline']);
    assert.equal(r.code, 0, r.out.join('\n'));
    assert.match(r.out[0], /^ok +config +valid from .*a\.toml: 1 listener\(s\)/);
    assert.ok(r.out.some((l) => /^ok +bind main +127\.0\.0\.1:\d+ can be bound$/.test(l)));
    assert.ok(r.out.some((l) => /^skip +network/.test(l)));
    assert.match(r.out[r.out.length - 1], /^\d+ ok, \d+ warning\(s\), 0 failure\(s\), \d+ skipped$/);
  });

  it('a broken config is one FAIL line and exit 1', async () => {
    const file = join(dir, 'broken.toml');
    writeFileSync(file, `[[listeners]]\nsecret = "xyz"\n`);
    const r = await cli(['doctor', '--config', file]);
    assert.equal(r.code, 1);
    assert.match(r.out[0], /^FAIL +config +listeners\[0\]\.secret: expected 32 hex characters/);
    assert.match(r.out[0], /\n +-> /);
    const missing = await cli(['doctor', '--config', join(dir, 'nope.toml')]);
    assert.equal(missing.code, 1);
    assert.match(missing.out[0], /file not found/);
  });

  it('--json prints one object per check', async () => {
    const r = await cli(['doctor', '--config', configFile('b.toml', freePort), '--offline', '--json']);
    assert.equal(r.code, 0);
    const checks = r.out.map((l) => JSON.parse(l) as { check: string; status: string });
    assert.equal(checks[0].check, 'config');
    assert.ok(checks.every((c) => ['ok', 'warn', 'fail', 'skip'].includes(c.status)));
  });

  it('--health is quiet when the listeners accept, exit 1 when they do not', async () => {
    const up = await cli(['doctor', '--health', '--config', configFile('up.toml', listeningPort)]);
    assert.deepEqual([up.code, up.out], [0, []]);
    const down = await cli(['doctor', '--health', '--config', configFile('down.toml', freePort)]);
    assert.equal(down.code, 1);
    assert.match(down.out[0], /^FAIL +listen main +127\.0\.0\.1:\d+ does not accept connections/);
  });

  it('flags apply as for run: -p overrides the file', async () => {
    const r = await cli([
      'doctor',
      '--health',
      '--config',
      configFile('c.toml', freePort),
      '-p',
      String(listeningPort),
    ]);
    assert.equal(r.code, 0, r.out.join('\n'));
  });

  it('rejects a bad --timeout', async () => {
    const r = await cli(['doctor', '--config', configFile('d.toml', freePort), '--timeout', 'soon']);
    assert.notEqual(r.code, 0);
    assert.equal(r.err.length, 1);
  });
});
