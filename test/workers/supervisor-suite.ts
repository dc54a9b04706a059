/**
 * The supervisor's behaviour, run once per kind of worker (supervisor.test.ts: threads, process-mode.test.ts:
 * processes): spread, replay refused across workers, max_connections across workers, restart of a killed
 * worker, reload reaching every worker.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RawSink, startRawSink } from '../../bench/lib/raw-sink.ts';
import { buildFrames, type ClientSession, openSession } from '../../bench/lib/wire.ts';
import { loadConfigFile, parseConfig } from '../../src/config/load.ts';
import type { WorkerMode } from '../../src/config/types.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { createInitiatorHeader } from '../../src/protocol/obfuscated2.ts';
import { Supervisor, type SupervisorOptions } from '../../src/workers/supervisor.ts';
import type { WorkerKind } from '../../src/workers/transport.ts';

export const SECRET = randomBytes(16).toString('hex');
export const log = logger.child({ test: 'workers' });
log.level = 'silent';

export interface SuiteOptions {
  title: string;
  workerMode: WorkerMode;
  /** The kind the supervisor must have chosen. */
  expectKind: WorkerKind;
  supervisorOptions?: SupervisorOptions;
}

export function supervisorToml(dcPort: number, workerMode: WorkerMode, extra = ''): string {
  const dcs = [1, 2, 3, 4, 5].map((id) => `${id} = ["127.0.0.1:${dcPort}"]`).join('\n');
  return `workers = 2
worker_mode = "${workerMode}"
${extra}
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${SECRET}"

[upstream]
mode = "direct"
[upstream.dc]
${dcs}

[log]
level = "silent"
`;
}

export const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 8000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await wait(25);
  }
}

/** One echo round trip through the proxy (direct mode relays raw bytes, so lengths are all we check). */
export function roundTrip(s: ClientSession, size = 32): Promise<boolean> {
  const goal = s.received + size;
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(false), 3000);
    const onClose = () => done(false);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.onReceived = null;
      s.socket.off('close', onClose);
      resolve(ok);
    };
    s.onReceived = (n) => n >= goal && done(true);
    s.socket.once('close', onClose);
    if (s.socket.destroyed) done(false);
    // One whole frame of `size` bytes on the wire: the proxy closes sessions whose frames cannot be MTProto.
    else s.send(buildFrames(size - 4, size - 4));
  });
}

export async function openMany(port: number, n: number): Promise<ClientSession[]> {
  const out: ClientSession[] = [];
  for (let i = 0; i < n; i++)
    out.push(await openSession({ host: '127.0.0.1', port, wire: 'o2', secret: SECRET }));
  return out;
}

export function workerListenerStats(sup: Supervisor, listener = 'main') {
  // statsSources() = [main thread, retired workers, worker 0, worker 1, ...]
  return sup
    .statsSources()
    .slice(2)
    .map((s) => s.listener(listener));
}

/** An echoing fake DC and a scratch folder for the enclosing describe block (made in before(), gone in after()). */
export function echoDcAndFolder(prefix: string): { readonly sink: RawSink; readonly dir: string } {
  const fixture = { sink: null as unknown as RawSink, dir: '' };
  before(async () => {
    fixture.sink = await startRawSink({ skip: 64, mode: 'echo' });
    fixture.dir = mkdtempSync(join(tmpdir(), prefix));
  });
  after(async () => {
    await fixture.sink.close();
    rmSync(fixture.dir, { recursive: true, force: true });
  });
  return fixture;
}

export function describeSupervisor(suite: SuiteOptions): void {
  describe(suite.title, () => {
    const fx = echoDcAndFolder('mtproxy-workers-');
    const toml = (dcPort: number, extra = '') => supervisorToml(dcPort, suite.workerMode, extra);
    const opts = () => ({ log, stats: new Stats(), ...suite.supervisorOptions });

    function config(extra = '') {
      return parseConfig(toml(fx.sink.port, extra), { file: join(fx.dir, 'mtproxy.toml') });
    }

    it('spreads connections from many clients over both workers', async () => {
      const sup = new Supervisor(config(), opts());
      await sup.start();
      try {
        assert.equal(sup.workerKind, suite.expectKind);
        const { port } = sup.address('main');
        const sessions = await openMany(port, 40);
        assert.deepEqual(
          await Promise.all(sessions.map((s) => roundTrip(s))),
          sessions.map(() => true),
        );
        const perWorker = (await sup.workerStats()).map((w) => w.connectionsTotal);
        assert.equal(perWorker.length, 2);
        assert.equal(perWorker[0] + perWorker[1], 40);
        assert.ok(perWorker[0] > 0 && perWorker[1] > 0, `both workers accept: ${perWorker}`);
        for (const s of sessions) s.socket.destroy();
      } finally {
        await sup.stop(0);
      }
    });

    it('refuses a handshake replayed on the other worker', async () => {
      const sup = new Supervisor(config(), opts());
      await sup.start();
      try {
        const { port } = sup.address('main');
        const header = createInitiatorHeader('intermediate', 2, Buffer.from(SECRET, 'hex')).header;
        const upstreamBefore = fx.sink.connections();
        const attempts = 24;
        const sockets: net.Socket[] = [];
        for (let i = 0; i < attempts; i++) {
          const s = net.connect({ host: '127.0.0.1', port });
          s.on('error', () => {});
          s.write(header);
          sockets.push(s);
          // The first copy must be recorded before the replays race it.
          if (i === 0)
            await until('the first session reaches the DC', () => fx.sink.connections() > upstreamBefore);
        }
        await sup.refreshStats();
        await until('every replay counted', async () => {
          await sup.refreshStats();
          return workerListenerStats(sup).reduce((n, l) => n + l.replays, 0) === attempts - 1;
        });
        const perWorker = workerListenerStats(sup);
        assert.equal(fx.sink.connections() - upstreamBefore, 1, 'only the first copy reached the DC');
        assert.ok(
          perWorker.every((l) => l.connectionsTotal > 0),
          'both workers saw the header, so the worker without the original refused it from shared memory',
        );
        for (const s of sockets) s.destroy();
      } finally {
        await sup.stop(0);
      }
    });

    it('holds max_connections across workers and gives the slots back', async () => {
      const policy = '[[policies]]\nrule = "max_connections"\nkeys = ["listener"]\nlimit = 5\n';
      // [[policies]] must come before the other tables in TOML order, so it goes with the top-level keys.
      const sup = new Supervisor(config(policy), opts());
      await sup.start();
      try {
        const { port } = sup.address('main');
        const sessions = await openMany(port, 16);
        const answered = await Promise.all(sessions.map((s) => roundTrip(s)));
        assert.equal(answered.filter(Boolean).length, 5);
        assert.equal(sup.counters.total(), 5);
        const perWorker = (await sup.workerStats()).map((w) => w.connectionsTotal);
        assert.ok(perWorker[0] > 0 && perWorker[1] > 0, `both workers took connections: ${perWorker}`);
        for (const s of sessions) s.socket.destroy();
        await until('counters back to zero', () => sup.counters.total() === 0);
        const again = await openMany(port, 3);
        assert.deepEqual(await Promise.all(again.map((s) => roundTrip(s))), [true, true, true]);
        for (const s of again) s.socket.destroy();
      } finally {
        await sup.stop(0);
      }
    });

    it('restarts a killed worker while the other worker’s sessions carry on', async () => {
      const sup = new Supervisor(config(), opts());
      await sup.start();
      try {
        const { port } = sup.address('main');
        const sessions = await openMany(port, 24);
        assert.ok((await Promise.all(sessions.map((s) => roundTrip(s)))).every(Boolean));
        const [killedWorker] = sup.workerIds();
        await sup.killWorker(0);
        await until('the killed worker’s sessions close', () => sessions.some((s) => s.socket.destroyed));
        await wait(100);
        const survivors = sessions.filter((s) => !s.socket.destroyed);
        assert.ok(
          survivors.length > 0 && survivors.length < sessions.length,
          `survivors: ${survivors.length}`,
        );
        assert.ok(
          (await Promise.all(survivors.map((s) => roundTrip(s)))).every(Boolean),
          'worker 1 sessions still relay',
        );
        await until('worker 0 restarted', () => sup.restarts === 1 && sup.readyCount() === 2);
        assert.notEqual(sup.workerIds()[0], killedWorker);
        const fresh = await openMany(port, 16);
        assert.ok((await Promise.all(fresh.map((s) => roundTrip(s)))).every(Boolean));
        const perWorker = (await sup.workerStats()).map((w) => w.connectionsTotal);
        assert.ok(perWorker[0] > 0, `the restarted worker takes new connections: ${perWorker}`);
        for (const s of [...survivors, ...fresh]) s.socket.destroy();
      } finally {
        await sup.stop(0);
      }
    });

    it('a reload reaches every worker', async () => {
      const file = join(fx.dir, 'reload.toml');
      writeFileSync(file, toml(fx.sink.port));
      const sup = new Supervisor(await loadConfigFile(file), opts());
      await sup.start();
      try {
        const second = `\n[[listeners]]\nname = "second"\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\n`;
        writeFileSync(file, toml(fx.sink.port).replace('[upstream]', `${second}\n[upstream]`));
        assert.deepEqual(await sup.reloadFromFile(), { ok: true });
        const { port } = sup.address('second');
        assert.notEqual(port, sup.address('main').port);
        const sessions = await openMany(port, 24);
        assert.ok((await Promise.all(sessions.map((s) => roundTrip(s)))).every(Boolean));
        await sup.refreshStats();
        const perWorker = workerListenerStats(sup, 'second').map((l) => l.connectionsTotal);
        assert.ok(perWorker[0] > 0 && perWorker[1] > 0, `both workers serve the new listener: ${perWorker}`);
        for (const s of sessions) s.socket.destroy();
        writeFileSync(file, 'workers = "many"\n');
        const bad = await sup.reloadFromFile();
        assert.equal(bad.ok, false);
        assert.match(bad.error ?? '', /workers/);
      } finally {
        await sup.stop(0);
      }
    });
  });
}
