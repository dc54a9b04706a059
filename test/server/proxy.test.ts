import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { reportFdExhaustion } from '../../src/runtime/fd-pressure.ts';
import { type ProxyOptions, ProxyServer, type SessionHandler } from '../../src/server/proxy.ts';
import type { SessionEnv } from '../../src/session/types.ts';
import type { Upstream } from '../../src/upstream/types.ts';
import { freePort } from '../helpers/ports.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';

const SECRET_A = '0123456789abcdef0123456789abcdef';
const SECRET_B = 'fedcba9876543210fedcba9876543210';

function listenerToml(name: string, secret = SECRET_A, port = 0): string {
  return `[[listeners]]\nname = "${name}"\nhost = "127.0.0.1"\nport = ${port}\nsecret = "${secret}"\n`;
}

function configOf(body: string, drain = '200ms'): Config {
  return parseConfig(`${body}\n[timeouts]\ndrain = "${drain}"\n[log]\nlevel = "silent"\n`);
}

/** Echoes every byte and records which listener config each session saw at accept time. */
function echoHandler(seen: string[] = []): SessionHandler {
  return (socket: net.Socket, env: SessionEnv) => {
    seen.push(`${env.listener().name}:${env.listener().secret.toString('hex')}`);
    socket.on('data', (chunk) => socket.write(chunk));
    // Listening sockets allow half-open connections: close our side when the client ends.
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
  };
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  return socket;
}

async function roundTrip(socket: net.Socket, text: string): Promise<string> {
  socket.write(text);
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  return chunk.toString();
}

async function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

const silent = pino({ level: 'silent' });

/** A proxy whose sessions echo (quiet log, own stats), unless `opts` says otherwise. */
function echoProxy(config: Config, opts: ProxyOptions = {}): ProxyServer {
  return new ProxyServer(config, { log: silent, stats: new Stats(), sessionHandler: echoHandler(), ...opts });
}

describe('ProxyServer', () => {
  const dir = suiteTempDir('mtproxy-server-');

  test('listens on every listener and reports the bound port', async () => {
    const proxy = echoProxy(configOf(listenerToml('a') + listenerToml('b')));
    await proxy.start();
    try {
      assert.deepEqual(proxy.listenerNames(), ['a', 'b']);
      const a = proxy.address('a');
      const b = proxy.address('b');
      assert.notEqual(a.port, 0);
      assert.notEqual(a.port, b.port);
      const socket = await connect(b.port);
      assert.equal(await roundTrip(socket, 'ping'), 'ping');
      socket.destroy();
    } finally {
      await proxy.stop(100);
    }
  });

  test('reload adds and removes listeners without touching the others', async () => {
    const seen: string[] = [];
    const proxy = echoProxy(configOf(listenerToml('a') + listenerToml('b')), {
      sessionHandler: echoHandler(seen),
    });
    await proxy.start();
    try {
      const portA = proxy.address('a').port;
      const portB = proxy.address('b').port;
      const onA = await connect(portA);
      const onB = await connect(portB);
      assert.equal(await roundTrip(onA, 'x'), 'x');
      assert.equal(await roundTrip(onB, 'y'), 'y');

      // a keeps its address (port 0 stays the bound port) but gets a new secret; b goes; c arrives.
      const next = configOf(listenerToml('a', SECRET_B) + listenerToml('c'));
      await proxy.applyConfig(next);

      assert.deepEqual(proxy.listenerNames(), ['a', 'c']);
      assert.equal(proxy.address('a').port, portA, 'an unchanged listener is not restarted');
      assert.equal(await roundTrip(onA, 'still here'), 'still here');
      assert.ok(await refused(portB), 'the removed listener no longer accepts');
      // b's open session drains, then is closed at the drain deadline.
      await once(onB, 'close');
      assert.equal(onA.destroyed, false);

      const onC = await connect(proxy.address('c').port);
      assert.equal(await roundTrip(onC, 'c'), 'c');
      const onA2 = await connect(portA);
      assert.equal(await roundTrip(onA2, 'a2'), 'a2');
      assert.equal(seen.at(-1), `a:${SECRET_B}`, 'new sessions see the new secret');
      assert.equal(seen[0], `a:${SECRET_A}`);
      for (const s of [onA, onC, onA2]) s.destroy();
    } finally {
      await proxy.stop(100);
    }
  });

  test('reloaded buffer and connection limits reach new connections of a running listener', async () => {
    const marks: number[] = [];
    const handler: SessionHandler = (socket, env) => {
      marks.push(socket.readableHighWaterMark);
      echoHandler()(socket, env);
    };
    const proxy = echoProxy(configOf(listenerToml('a')), { sessionHandler: handler });
    await proxy.start();
    try {
      const port = proxy.address('a').port;
      const first = await connect(port);
      assert.equal(await roundTrip(first, '1'), '1');
      const next = parseConfig(
        `${listenerToml('a')}max_connections = 7\n[buffers]\nclient_high_water_mark = 4096\n[log]\nlevel = "silent"\n`,
      );
      await proxy.applyConfig(next);
      assert.equal(proxy.address('a').port, port);
      assert.equal(proxy.listeningServer('a').maxConnections, 7);
      const second = await connect(port);
      assert.equal(await roundTrip(second, '2'), '2');
      assert.deepEqual(marks, [65536, 4096]);
      first.destroy();
      second.destroy();
    } finally {
      await proxy.stop(100);
    }
  });

  test('upstream per listener: auto = middle with an ad tag, else direct; a forced mode wins', async () => {
    const followed: string[] = [];
    const fake = (kind: 'direct' | 'middle'): Upstream => ({
      kind,
      open: () => Promise.reject(new Error('not used')),
      close: () => Promise.resolve(),
      configChanged: () => followed.push(kind),
    });
    const upstreams = { direct: fake('direct'), middle: fake('middle') };
    const tagged = `${listenerToml('tagged')}ad_tag = "dcbe8f1493fa4cd9ab300891c0b5b326"\n`;
    const seen: string[] = [];
    const proxy = new ProxyServer(configOf(tagged + listenerToml('plain')), {
      log: silent,
      stats: new Stats(),
      upstreams,
      sessionHandler: (socket, env) => {
        seen.push(`${env.listener().name}:${env.upstream(env.listener()).kind}`);
        echoHandler()(socket, env);
      },
    });
    await proxy.start();
    try {
      const kinds = async () => {
        seen.length = 0;
        for (const name of ['tagged', 'plain']) {
          const socket = await connect(proxy.address(name).port);
          await roundTrip(socket, name);
          socket.destroy();
        }
        return [...seen];
      };
      assert.deepEqual(await kinds(), ['tagged:middle', 'plain:direct']);
      await proxy.applyConfig(configOf(`[upstream]\nmode = "direct"\n${tagged}${listenerToml('plain')}`));
      assert.deepEqual(await kinds(), ['tagged:direct', 'plain:direct']);
      await proxy.applyConfig(configOf(`[upstream]\nmode = "middle"\n${tagged}${listenerToml('plain')}`));
      assert.deepEqual(await kinds(), ['tagged:middle', 'plain:middle']);
      // Each reload tells the upstreams, so timers such as the Telegram config refresh follow it.
      assert.deepEqual(followed, ['direct', 'middle', 'direct', 'middle']);
    } finally {
      await proxy.stop(100);
    }
  });

  test('a listener whose port changes is restarted alone', async () => {
    const blockedPort = await freePort();

    const proxy = echoProxy(configOf(listenerToml('a') + listenerToml('b')));
    await proxy.start();
    try {
      const portA = proxy.address('a').port;
      await proxy.applyConfig(configOf(listenerToml('a') + listenerToml('b', SECRET_A, blockedPort)));
      assert.equal(proxy.address('a').port, portA);
      assert.equal(proxy.address('b').port, blockedPort);
      const socket = await connect(blockedPort);
      assert.equal(await roundTrip(socket, 'moved'), 'moved');
      socket.destroy();
    } finally {
      await proxy.stop(100);
    }
  });

  test('a reload whose new listener cannot bind changes nothing', async () => {
    const blocker = net.createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const busyPort = (blocker.address() as net.AddressInfo).port;
    const proxy = echoProxy(configOf(listenerToml('a') + listenerToml('b')));
    await proxy.start();
    try {
      const before = proxy.config;
      const portB = proxy.address('b').port;
      await assert.rejects(
        proxy.applyConfig(configOf(listenerToml('a') + listenerToml('b', SECRET_A, busyPort))),
        /listeners\[1\]\.port: 127\.0\.0\.1:\d+ is already in use/,
      );
      assert.equal(proxy.config, before);
      assert.equal(proxy.address('b').port, portB, 'the old listener is back on its port');
      const socket = await connect(portB);
      assert.equal(await roundTrip(socket, 'ok'), 'ok');
      socket.destroy();
    } finally {
      await proxy.stop(100);
      blocker.close();
    }
  });

  test('reloadFromFile refuses an invalid config and keeps the running one', async () => {
    const file = path.join(dir(), 'reload.toml');
    await writeFile(file, listenerToml('a') + '[log]\nlevel = "silent"\n');
    const stats = new Stats();
    const config = parseConfig(listenerToml('a') + '[log]\nlevel = "silent"\n', { file });
    const proxy = echoProxy(config, { stats });
    await proxy.start();
    try {
      await writeFile(file, listenerToml('a') + 'bogus_key = 1\n');
      const bad = await proxy.reloadFromFile();
      assert.equal(bad.ok, false);
      assert.match(bad.error!, /^listeners\[0\]\.bogus_key: unknown key/);
      assert.ok(!bad.error!.includes('\n'));
      assert.equal(proxy.config, config);
      assert.equal(stats.reloadFailures, 1);
      assert.equal(stats.lastReloadOk, false);

      await writeFile(file, listenerToml('a') + listenerToml('b') + '[log]\nlevel = "silent"\n');
      const good = await proxy.reloadFromFile();
      assert.deepEqual(good, { ok: true });
      assert.deepEqual(proxy.listenerNames(), ['a', 'b']);
      assert.equal(stats.lastReloadOk, true);
      assert.equal(stats.reloadsTotal, 2);
    } finally {
      await proxy.stop(100);
    }
  });

  test('a reload is counted when it finishes, together with its result', async () => {
    const stats = new Stats();
    let release: () => void = () => {};
    const config = configOf(listenerToml('a'));
    const loadConfig = () =>
      new Promise<Config>((resolve) => {
        release = () => resolve(config);
      });
    const proxy = echoProxy(config, { stats, loadConfig });
    await proxy.start();
    try {
      const pending = proxy.reloadFromFile();
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(stats.reloadsTotal, 0, 'not counted while the new config is still loading');
      assert.equal(stats.lastReloadAt, 0);
      release();
      assert.deepEqual(await pending, { ok: true });
      assert.equal(stats.reloadsTotal, 1);
      assert.equal(stats.lastReloadOk, true);
      assert.ok(stats.lastReloadAt > 0);
    } finally {
      await proxy.stop(100);
    }
  });

  test('a reload that changes a setting fixed at start says so in the log', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const proxy = echoProxy(configOf(`workers = 1\nstate_dir = "${dir()}/a"\n${listenerToml('a')}`), { log });
    await proxy.start();
    try {
      await proxy.applyConfig(configOf(`workers = 4\nstate_dir = "${dir()}/b"\n${listenerToml('a')}`));
      const messages = lines.map((l) => JSON.parse(l).msg);
      assert.ok(messages.includes('a new worker count applies after a restart'), messages.join('; '));
      assert.ok(messages.includes('a new state_dir applies after a restart'), messages.join('; '));
    } finally {
      await proxy.stop(100);
    }
  });

  test('a busy port fails start with one line naming the listener', async () => {
    const blocker = net.createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const busyPort = (blocker.address() as net.AddressInfo).port;
    const proxy = echoProxy(configOf(listenerToml('a') + listenerToml('b', SECRET_A, busyPort)));
    try {
      await assert.rejects(proxy.start(), (e: Error) => {
        assert.equal(e.message, `listeners[1].port: 127.0.0.1:${busyPort} is already in use`);
        return true;
      });
    } finally {
      blocker.close();
    }
  });

  test('running out of file descriptors on accept is survived', async () => {
    const stats = new Stats();
    const proxy = echoProxy(configOf(listenerToml('a')), { stats });
    await proxy.start();
    try {
      // What libuv reports when accept() fails with EMFILE.
      const emfile = Object.assign(new Error('accept EMFILE'), {
        code: 'EMFILE',
        errno: -24,
        syscall: 'accept',
      });
      proxy.listeningServer('a').emit('error', emfile);
      assert.equal(stats.listener('a').handshakeFailures.get('MTP_ERR_ACCEPT_EMFILE'), 1);
      // Accepting resumes after the backoff.
      let answered = false;
      for (let i = 0; i < 50 && !answered; i++) {
        const socket = await connect(proxy.address('a').port);
        socket.write('hi');
        answered = await new Promise<boolean>((resolve) => {
          socket.once('data', () => resolve(true));
          socket.once('close', () => resolve(false));
        });
        socket.destroy();
        if (!answered) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(answered);
    } finally {
      await proxy.stop(100);
    }
  });

  test('an upstream out of file descriptors is logged and slows accepting on every listener', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const proxy = echoProxy(configOf(listenerToml('a') + listenerToml('b')), { log });
    await proxy.start();
    try {
      // What the direct and middle upstreams report when a connect to Telegram fails with EMFILE.
      reportFdExhaustion('EMFILE', 'dc-connect');
      for (const name of ['a', 'b'])
        assert.ok(Number.isFinite(proxy.listeningServer(name).maxConnections), `${name} slowed`);
      const warning = lines.map((l) => JSON.parse(l)).find((l) => l.code === 'EMFILE');
      assert.equal(warning?.where, 'dc-connect');
      assert.match(warning?.msg, /out of file descriptors/);
      // Accepting is back to normal after the backoff.
      for (let i = 0; i < 50 && Number.isFinite(proxy.listeningServer('a').maxConnections); i++)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal(proxy.listeningServer('a').maxConnections, Number.POSITIVE_INFINITY);
    } finally {
      await proxy.stop(100);
    }
    // A stopped proxy no longer listens for reports.
    lines.length = 0;
    reportFdExhaustion('EMFILE', 'dc-connect');
    assert.deepEqual(lines, []);
  });

  test('stop lets open sessions finish within the drain time', async () => {
    const proxy = echoProxy(configOf(listenerToml('a')));
    await proxy.start();
    const port = proxy.address('a').port;
    const socket = await connect(port);
    const stopped = proxy.stop(10_000);
    // Still served while draining, but no new connections.
    assert.equal(await roundTrip(socket, 'draining'), 'draining');
    assert.ok(await refused(port));
    socket.end();
    await stopped;
    assert.equal(proxy.sessionCount(), 0);
  });
});
