/**
 * `mtproxy cluster certs`: a CA and one certificate per node, private files, each node's certificate signed
 * by the CA and named after the node; run again on the same folder it keeps the CA and signs the new nodes,
 * so a node added later links with the ones made before. Bad input is refused with the usage.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../../helpers/cli.ts';

describe('mtproxy cluster certs', () => {
  let dir: string;
  const out = () => path.join(dir, 'certs');
  const cert = async (name: string) => new X509Certificate(await readFile(path.join(out(), `${name}.crt`)));

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mtp-certs-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a CA and a certificate per node, readable by the owner only', async () => {
    const r = await runCli(
      ['cluster', 'certs', '--out', out(), '--nodes', 'front-1,back-1', '--days', '30'],
      dir,
    );
    assert.equal(r.code, 0, r.err.join('\n'));
    for (const f of ['ca.crt', 'ca.key', 'front-1.crt', 'front-1.key', 'back-1.crt', 'back-1.key']) {
      assert.ok(r.out.includes(`wrote ${out()}/${f}`), f);
      assert.equal((await stat(path.join(out(), f))).mode & 0o777, 0o600, f);
    }
    const ca = await cert('ca');
    for (const node of ['front-1', 'back-1']) {
      const c = await cert(node);
      assert.ok(c.verify(ca.publicKey), `${node} signed by the CA`);
      assert.match(c.subject, new RegExp(`CN=${node}`));
      assert.ok(Date.parse(c.validTo) - Date.now() < 31 * 86_400_000);
    }
  });

  it('run again on the same folder: the CA stays and signs the new node', async () => {
    const caBefore = await readFile(path.join(out(), 'ca.crt'), 'utf8');
    const r = await runCli(['cluster', 'certs', '--out', out(), '--nodes', 'back-2'], dir);
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.match(r.out[0], /signed with the fleet's CA already in/);
    assert.ok(!r.out.some((l) => l.endsWith('/ca.crt') || l.endsWith('/ca.key')));
    assert.equal(await readFile(path.join(out(), 'ca.crt'), 'utf8'), caBefore);
    const c = await cert('back-2');
    assert.ok(c.verify((await cert('ca')).publicKey));
    // Never longer than the CA itself.
    assert.ok(Date.parse(c.validTo) <= Date.parse((await cert('ca')).validTo));
  });

  it('refuses bad input with a message, and a broken CA without a stack trace', async () => {
    for (const args of [
      ['cluster', 'certs', '--nodes', 'a'],
      ['cluster', 'certs', '--out', out()],
      ['cluster', 'certs', '--out', out(), '--nodes', 'ca'],
      ['cluster', 'certs', '--out', out(), '--nodes', 'a,a'],
      ['cluster', 'certs', '--out', out(), '--nodes', 'bad name'],
      ['cluster', 'certs', '--out', out(), '--nodes', 'a', '--days', '0'],
      ['cluster', 'keys', '--out', out(), '--nodes', 'a'],
    ]) {
      const r = await runCli(args, dir);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.err.join('\n'), /^mtproxy cluster: /, args.join(' '));
    }
    const broken = path.join(dir, 'broken');
    await runCli(['cluster', 'certs', '--out', broken, '--nodes', 'a'], dir);
    await writeFile(path.join(broken, 'ca.key'), 'not a key\n');
    const r = await runCli(['cluster', 'certs', '--out', broken, '--nodes', 'b'], dir);
    assert.equal(r.code, 1);
    assert.match(r.err.join('\n'), /^mtproxy cluster: /);
  });
});
