import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
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
  const { child, next, nextWithin } = spawnWithFdLimit(FIXTURE, 70, [sink.port, secret, join(dir, 'state')]);
  const sessions: ClientSession[] = [];
  const bare: Socket[] = [];
  try {
    const { port } = await next();
    // Each direct session holds two descriptors: the limit runs out at about 30 sessions.
    for (let i = 0; i < 60; i++) {
      try {
        const session = await openSession({ host: '127.0.0.1', port, wire: 'o2', secret, dcId: 2 });
        session.socket.on('error', () => {});
        session.send(buildFrames(12, 12));
        sessions.push(session);
      } catch {
        // Closed by the proxy: expected once it is out of descriptors.
      }
    }
    // Which allocation meets the limit depends on how many descriptors the process already holds: when it
    // is an accept, libuv drops that client quietly and no DC connect fails. An accepted connection that
    // sends nothing shifts the count by one, so the next session's DC connect is the one that fails.
    let warning: { code?: string; where?: string; msg?: string } | undefined;
    for (let shift = 0; shift < 4 && warning?.code === undefined; shift++) {
      warning = await nextWithin(5000);
      while (warning !== undefined && warning.code === undefined) warning = await nextWithin(5000);
      if (warning !== undefined) break;
      sessions.shift()?.socket.destroy();
      const idle = connect(port, '127.0.0.1');
      idle.on('error', () => {});
      bare.push(idle);
      await new Promise((r) => setTimeout(r, 200));
      try {
        const session = await openSession({ host: '127.0.0.1', port, wire: 'o2', secret, dcId: 2 });
        session.socket.on('error', () => {});
        session.send(buildFrames(12, 12));
        sessions.push(session);
      } catch {
        // Closed by the proxy: still out of descriptors.
      }
    }
    assert.ok(warning !== undefined, 'the proxy logged running out of descriptors');
    assert.equal(warning.code, 'EMFILE');
    assert.equal(warning.where, 'dc-connect');
    assert.match(warning.msg ?? '', /out of file descriptors: accepting slowed down/);

    for (const s of sessions) s.socket.destroy();
    for (const b of bare) b.destroy();
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
    for (const b of bare) b.destroy();
    child.kill('SIGKILL');
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
