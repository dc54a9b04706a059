/**
 * Child process holding the fake upstream: a raw sink (ceiling and direct mode) or the strict fake middle proxy
 * from the test helpers, with Telegram's config written to local files for the proxy under test to load.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeMiddleProxy, fakeProxyConfigText } from '../../test/helpers/fake-middle-proxy.ts';
import { serveActor } from './ipc.ts';
import { type RawSink, type RawSinkOptions, startRawSink } from './raw-sink.ts';

let raw: RawSink | null = null;
let middle: FakeMiddleProxy | null = null;
let dir: string | null = null;

async function stop(): Promise<void> {
  await raw?.close();
  await middle?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  raw = null;
  middle = null;
  dir = null;
}

serveActor({
  async start(req) {
    await stop();
    if (req.kind === 'middle') {
      const secret = randomBytes(128);
      middle = await new FakeMiddleProxy({ secret }).start();
      // The fake keeps a record of every request for tests; a bench must not grow it for minutes.
      middle.requests.push = () => 0;
      dir = mkdtempSync(join(tmpdir(), 'mtproxy-bench-middle-'));
      const secretFile = join(dir, 'proxy-secret');
      const configFile = join(dir, 'proxy-config.txt');
      writeFileSync(secretFile, secret);
      writeFileSync(configFile, fakeProxyConfigText(middle.port));
      return { port: middle.port, secretFile, configFile };
    }
    raw = await startRawSink(req.options as RawSinkOptions);
    return { port: raw.port };
  },
  stats() {
    return {
      bytesIn: raw?.bytesIn() ?? 0,
      connections: raw?.connections() ?? middle?.accepted ?? 0,
      violations: middle?.violations.slice(0, 5) ?? [],
    };
  },
  usage() {
    const cpu = process.cpuUsage();
    return { cpuUserUs: cpu.user, cpuSystemUs: cpu.system, rss: process.memoryUsage().rss, heapUsed: 0 };
  },
  async stop() {
    await stop();
    return {};
  },
});
