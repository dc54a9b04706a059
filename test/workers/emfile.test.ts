import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startRawSink } from '../../bench/lib/raw-sink.ts';
import { openSession } from '../../bench/lib/wire.ts';
import { echoes, spawnWithFdLimit } from '../helpers/low-fd.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/low-fd-supervisor.ts', import.meta.url));

describe('running out of file descriptors', () => {
  for (const mode of ['threads', 'processes'] as const)
    it(`slows accepting but never crashes or restarts a worker, and serves again afterwards (${mode})`, async () => {
      const sink = await startRawSink({ skip: 64, mode: 'echo' });
      const secret = randomBytes(16).toString('hex');
      const dir = mkdtempSync(join(tmpdir(), 'mtproxy-emfile-'));
      // Both worker threads share the process limit; 160 leaves room to start but not for the flood below.
      // Worker processes each have that limit; the main process holds each connection only until it is handed over.
      const { child, next } = spawnWithFdLimit(FIXTURE, 160, [sink.port, secret, join(dir, 'state'), mode]);
      const flood: net.Socket[] = [];
      try {
        const { port } = await next();
        for (let i = 0; i < 400; i++) {
          const s = net.connect({ host: '127.0.0.1', port });
          s.on('error', () => {});
          flood.push(s);
        }
        await new Promise((r) => setTimeout(r, 1500));
        child.stdin!.write('status\n');
        const during = await next();
        // libuv sheds what it cannot accept (its reserve-descriptor trick) or reports EMFILE to the server.
        const accepted = during.workers.reduce(
          (n: number, w: { connectionsTotal: number }) => n + w.connectionsTotal,
          0,
        );
        assert.ok(
          accepted < flood.length,
          `the flood ran into the descriptor limit: ${JSON.stringify(during)}`,
        );
        assert.equal(during.restarts, 0);
        assert.equal(during.ready, 2);
        for (const s of flood) s.destroy();
        // Accepting resumes after the backoff once descriptors are free again.
        let answered = false;
        for (let attempt = 0; attempt < 40 && !answered; attempt++) {
          await new Promise((r) => setTimeout(r, 250));
          try {
            const session = await openSession({ host: '127.0.0.1', port, wire: 'o2', secret });
            answered = await echoes(session);
            session.socket.destroy();
          } catch {
            // Still refused: try again.
          }
        }
        assert.ok(answered, 'a session works once descriptors are free');
        child.stdin!.write('status\n');
        const after = await next();
        assert.equal(after.restarts, 0);
        assert.equal(after.ready, 2);
        child.stdin!.write('stop\n');
        assert.deepEqual(await next(), { stopped: true });
      } finally {
        for (const s of flood) s.destroy();
        child.kill('SIGKILL');
        await sink.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
});
