import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startRawSink } from '../../bench/lib/raw-sink.ts';
import { buildFrames, type ClientSession, openSession } from '../../bench/lib/wire.ts';
import { echoes, spawnWithFdLimit } from '../helpers/low-fd.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/low-fd-proxy.ts', import.meta.url));

// libuv hides accept() EMFILE from Node; what the proxy sees is the connect to Telegram failing. That must be
// logged, counted, and must not stop the proxy from serving once descriptors are free again.
test('a direct-mode proxy out of descriptors logs it, counts it and serves again afterwards', async () => {
  const sink = await startRawSink({ skip: 64, mode: 'echo' });
  const secret = randomBytes(16).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'mtproxy-lowfd-'));
  const { child, next } = spawnWithFdLimit(FIXTURE, 128, [sink.port, secret, join(dir, 'state')]);
  const sessions: ClientSession[] = [];
  try {
    const { port } = await next();
    // A few sessions relaying first, so that running out meets a proxy that is busy.
    for (let i = 0; i < 5; i++) {
      const session = await openSession({ host: '127.0.0.1', port, wire: 'o2', secret, dcId: 2 });
      session.socket.on('error', () => {});
      session.send(buildFrames(12, 12));
      sessions.push(session);
    }
    // Every descriptor but one taken: the next client's accept gets the last one, so its connect to Telegram is
    // the allocation that fails (when accept() itself fails, libuv drops the client quietly).
    child.stdin!.write('fill\n');
    let filled: { filled?: number } = {};
    while (filled.filled === undefined) filled = await next();
    const first = await openSession({ host: '127.0.0.1', port, wire: 'o2', secret, dcId: 2 }).catch(() => undefined);
    first?.socket.on('error', () => {});
    let warning: { code?: string; where?: string; msg?: string } = {};
    while (warning.code === undefined) warning = await next();
    first?.socket.destroy();
    assert.equal(warning.code, 'EMFILE');
    assert.equal(warning.where, 'dc-connect');
    assert.match(warning.msg ?? '', /out of file descriptors: accepting slowed down/);

    child.stdin!.write('release\n');
    let released: { released?: boolean } = {};
    while (released.released === undefined) released = await next();
    for (const s of sessions) s.socket.destroy();
    let answered = false;
    for (let attempt = 0; attempt < 40 && !answered; attempt++) {
      await new Promise((r) => setTimeout(r, 250));
      try {
        const session = await openSession({ host: '127.0.0.1', port, wire: 'o2', secret, dcId: 2 });
        session.socket.on('error', () => {});
        answered = await echoes(session);
        session.socket.destroy();
      } catch {
        // Still slowed down: try again.
      }
    }
    assert.ok(answered, 'a session works once descriptors are free');
    child.stdin!.write('stats\n');
    let counted: { dcErrors?: Record<string, number> } = {};
    while (counted.dcErrors === undefined) counted = await next();
    assert.ok((counted.dcErrors.EMFILE ?? 0) >= 1, JSON.stringify(counted));
    assert.equal(child.exitCode, null, 'the proxy is still running');
  } finally {
    for (const s of sessions) s.socket.destroy();
    child.kill('SIGKILL');
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
