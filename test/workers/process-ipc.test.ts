// Worker processes: what the primary does with the IPC messages of its workers (junk, late messages of a
// worker that died) and with the counters they hold.
import assert from 'node:assert/strict';
import cluster, { type Worker as ClusterWorker } from 'node:cluster';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfigFile, parseConfig } from '../../src/config/load.ts';
import { Stats } from '../../src/metrics/stats.ts';
import type { ToWorker } from '../../src/workers/protocol.ts';
import { Supervisor } from '../../src/workers/supervisor.ts';
import {
  echoDcAndFolder,
  log,
  openMany,
  roundTrip,
  SECRET,
  supervisorToml,
  until,
  workerListenerStats,
} from './supervisor-suite.ts';

const POLICY = '[[policies]]\nrule = "max_connections"\nkeys = ["listener"]\nlimit = 50\n';

/** The cluster worker behind worker `index` (a message emitted on its process is what its channel delivers). */
function clusterWorker(sup: Supervisor, index: number): ClusterWorker {
  const pid = sup.workerIds()[index];
  const found = Object.values(cluster.workers ?? {}).find((w) => w?.process.pid === pid);
  assert.ok(found, `worker ${index} is a cluster worker`);
  return found;
}

/** Record what the primary sends to this worker. */
function recordSends(worker: ClusterWorker): ToWorker[] {
  const sent: ToWorker[] = [];
  const send = worker.send.bind(worker);
  worker.send = ((msg: ToWorker, ...rest: never[]) => {
    sent.push(msg);
    return send(msg, ...rest);
  }) as ClusterWorker['send'];
  return sent;
}

describe('worker processes: IPC from the workers', () => {
  const fx = echoDcAndFolder('mtproxy-ipc-');

  function start(): Supervisor {
    const text = supervisorToml(fx.sink.port, 'processes', POLICY);
    return new Supervisor(parseConfig(text, { file: join(fx.dir, 'mtproxy.toml') }), {
      log,
      stats: new Stats(),
    });
  }

  it('junk from a worker never throws in the primary; a malformed question is refused', async () => {
    const sup = start();
    await sup.start();
    try {
      const worker = clusterWorker(sup, 0);
      const sent = recordSends(worker);
      const address = sup.address('main');
      const junk: unknown[] = [
        null,
        42,
        'replay',
        [],
        {},
        { type: 7 },
        { type: 'no such type', id: 1 },
        { type: 'replay', id: 901, key: null },
        { type: 'replay', id: 902 },
        { type: 'acquire', id: 903, key: null, limit: 1 },
        { type: 'acquire', id: 904, key: 'main', limit: 'many' },
        { type: 'acquire', id: 'x', key: 'main', limit: 1 },
        { type: 'release', key: null },
        { type: 'release' },
        { type: 'ready', addresses: null },
        { type: 'ready', addresses: [null] },
        { type: 'failed' },
        { type: 'stats', stats: null },
        { type: 'stats', stats: { listeners: 5 } },
        { type: 'reply', id: null },
      ];
      for (const msg of junk)
        assert.doesNotThrow(() => worker.process.emit('message', msg), `junk: ${JSON.stringify(msg)}`);
      // A question the primary cannot read is answered, so nothing waits for it, and answered with a refusal
      // (seen before / no slot), never with an admission.
      const answers = sent.filter((m) => m.type === 'answer');
      assert.deepEqual(answers, [
        { type: 'answer', id: 901, value: true },
        { type: 'answer', id: 902, value: true },
        { type: 'answer', id: 903, value: false },
        { type: 'answer', id: 904, value: false },
      ]);
      assert.equal(sup.counters.total(), 0);
      assert.deepEqual(sup.address('main'), address, 'a junk "ready" does not replace the addresses');
      assert.equal(sup.readyCount(), 2);
      const sessions = await openMany(address.port, 6);
      assert.ok((await Promise.all(sessions.map((s) => roundTrip(s)))).every(Boolean));
      assert.equal(sup.counters.total(), 6);
      for (const s of sessions) s.socket.destroy();
      await until('counters back to zero', () => sup.counters.total() === 0);
    } finally {
      await sup.stop(0);
    }
  });

  it('a worker that dies gives its slots back once; its late messages change nothing', async () => {
    const sup = start();
    await sup.start();
    try {
      const port = sup.address('main').port;
      const sessions = await openMany(port, 8);
      assert.ok((await Promise.all(sessions.map((s) => roundTrip(s)))).every(Boolean));
      const [, second] = (await sup.workerStats()).map((w) => w.connectionsActive);
      assert.equal(sup.counters.total(), 8);
      const dead = clusterWorker(sup, 0);
      // A snapshot that cannot be read is not kept: the dead worker's totals are summed on its exit.
      dead.process.emit('message', { type: 'stats', stats: { listeners: 5, dcs: 5, fields: 5 } });
      await sup.killWorker(0);
      assert.equal(sup.counters.total(), second, 'the dead worker’s slots were given back');
      const late = () => {
        // The key the rule above counts under: its key list, then the listener's name.
        dead.process.emit('message', { type: 'release', key: 'listener=main' });
        dead.process.emit('message', { type: 'acquire', id: 1, key: 'listener=main', limit: 50 });
      };
      late();
      assert.equal(sup.counters.total(), second, 'a late release is not taken twice');
      await until('worker 0 restarted', () => sup.readyCount() === 2);
      const fresh = await openMany(port, 4);
      assert.ok((await Promise.all(fresh.map((s) => roundTrip(s)))).every(Boolean));
      const before = sup.counters.total();
      late();
      assert.equal(sup.counters.total(), before, 'nor taken from the worker now in its place');
      for (const s of [...sessions, ...fresh]) s.socket.destroy();
      await until('counters back to zero', () => sup.counters.total() === 0);
    } finally {
      await sup.stop(0);
    }
  });

  it('a reload while a worker is starting reaches that worker too', async () => {
    const file = join(fx.dir, 'reload-starting.toml');
    writeFileSync(file, supervisorToml(fx.sink.port, 'processes'));
    const sup = new Supervisor(await loadConfigFile(file), { log, stats: new Stats() });
    await sup.start();
    try {
      const [first] = sup.workerIds();
      void sup.killWorker(0);
      // Its replacement is forked but not listening yet: it was started with the config of before the reload.
      await until(
        'worker 0 forked again',
        () => sup.workerIds()[0] !== null && sup.workerIds()[0] !== first,
        8000,
      );
      assert.equal(sup.readyCount(), 1);
      const second = `\n[[listeners]]\nname = "second"\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\n`;
      writeFileSync(
        file,
        supervisorToml(fx.sink.port, 'processes').replace('[upstream]', `${second}\n[upstream]`),
      );
      assert.deepEqual(await sup.reloadFromFile(), { ok: true });
      await until('worker 0 ready', () => sup.readyCount() === 2);
      await until('worker 0 serves the new listener', async () => {
        const sessions = await openMany(sup.address('second').port, 4);
        assert.ok((await Promise.all(sessions.map((s) => roundTrip(s)))).every(Boolean));
        for (const s of sessions) s.socket.destroy();
        await sup.refreshStats();
        return workerListenerStats(sup, 'second')[0].connectionsTotal > 0;
      });
    } finally {
      await sup.stop(0);
    }
  });

  it('a table edited while a worker is starting reaches that worker too', async () => {
    const policy = `state_dir = "${join(fx.dir, 'state-tables')}"
[[policies]]
rule = "not_in_table"
key = "client_ipv4"
table = "blocked"
`;
    const text = supervisorToml(fx.sink.port, 'processes', policy);
    const sup = new Supervisor(parseConfig(text, { file: join(fx.dir, 'mtproxy.toml') }), {
      log,
      stats: new Stats(),
    });
    await sup.start();
    try {
      const port = sup.address('main').port;
      // Hold the replacement's "ready": it has read the tables by then, so an edit now is one it has not seen.
      const held: Array<() => void> = [];
      cluster.once('fork', (w: ClusterWorker) => {
        const emit = w.emit.bind(w);
        w.emit = ((event: string, ...args: unknown[]) => {
          if (event === 'message' && (args[0] as { type?: string })?.type === 'ready') {
            held.push(() => emit(event, ...args));
            return true;
          }
          return emit(event, ...args);
        }) as ClusterWorker['emit'];
      });
      await sup.killWorker(0);
      await until('the replacement started', () => held.length === 1);
      sup.operations.tables().add('blocked', '127.0.0.1');
      await sup.tablesChanged();
      held[0]();
      await until('both workers ready', () => sup.readyCount() === 2);
      const sessions = await openMany(port, 6);
      const answered = await Promise.all(sessions.map((s) => roundTrip(s)));
      assert.deepEqual(
        answered,
        sessions.map(() => false),
        'both workers refuse the blocked address',
      );
      for (const s of sessions) s.socket.destroy();
    } finally {
      await sup.stop(0);
    }
  });
});
