/**
 * Middle-mode test setup: a fake middle proxy, Telegram's config as local files (loopback only), the real
 * session stack over a MiddleUpstream, and our own obfuscated2 client.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connectObfuscated, type ObfuscatedConnection } from '../../src/client/obfuscated-client.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { Config, ListenerConfig } from '../../src/config/types.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import type { TransportTag } from '../../src/protocol/obfuscated2.ts';
import { MiddleUpstream } from '../../src/upstream/middle/middle-upstream.ts';
import type { ClientInfo, ClientSink } from '../../src/upstream/types.ts';
import { type FakeMiddleOptions, FakeMiddleProxy, fakeProxyConfigText } from './fake-middle-proxy.ts';
import { startTestProxy, TEST_SECRET_HEX, type TestProxy } from './proxy.ts';

export const TEST_AD_TAG = 'dcbe8f1493fa4cd9ab300891c0b5b326';

export interface MiddleSetupOptions {
  fake?: Partial<FakeMiddleOptions>;
  minConnections?: number;
  clientsPerConnection?: number;
  adTag?: string | null;
  /** Extra TOML lines for [telegram]. */
  telegram?: string;
  /** Extra TOML lines for the listener. */
  listener?: string;
  /** Extra TOML lines for [upstream]. */
  upstream?: string;
  /** Extra TOML lines for [buffers]. */
  buffers?: string;
}

export interface MiddleSetup {
  fake: FakeMiddleProxy;
  proxy: TestProxy;
  upstream: MiddleUpstream;
  config: Config;
  stats: Stats;
  dir: string;
  proxySecret: Buffer;
  toml: string;
  connect(transport?: TransportTag, dcId?: number): Promise<ObfuscatedConnection>;
  stop(): Promise<void>;
}

export function testLog() {
  const log = logger.child({ test: 'middle' });
  log.level = process.env.MTP_TEST_LOG ?? 'silent';
  return log;
}

export async function writeTelegramFiles(dir: string, secret: Buffer, port: number): Promise<void> {
  await writeFile(path.join(dir, 'proxy-secret'), secret);
  await writeFile(path.join(dir, 'proxy-config.txt'), fakeProxyConfigText(port));
}

export function middleToml(dir: string, o: MiddleSetupOptions = {}): string {
  const tag = o.adTag === undefined ? TEST_AD_TAG : o.adTag;
  return `state_dir = ${JSON.stringify(path.join(dir, 'state'))}

[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"
${tag ? `ad_tag = "${tag}"` : ''}
${o.listener ?? ''}

[upstream]
mode = "middle"
connect_timeout = "2s"
min_connections_per_dc = ${o.minConnections ?? 1}
clients_per_connection = ${o.clientsPerConnection ?? 300}
${o.upstream ?? ''}

[telegram]
proxy_secret = ${JSON.stringify(path.join(dir, 'proxy-secret'))}
proxy_config = ${JSON.stringify(path.join(dir, 'proxy-config.txt'))}
ip_lookup_url = ""
${o.telegram ?? ''}

[buffers]
${o.buffers ?? ''}
`;
}

export async function startMiddleSetup(o: MiddleSetupOptions = {}): Promise<MiddleSetup> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-middle-'));
  const proxySecret = randomBytes(128);
  const fake = await new FakeMiddleProxy({ secret: proxySecret, ...o.fake }).start();
  await writeTelegramFiles(dir, proxySecret, fake.port);
  const toml = middleToml(dir, o);
  const config = parseConfig(toml);
  const stats = new Stats();
  const upstream = new MiddleUpstream(() => config, testLog(), stats);
  await upstream.start();
  const proxy = await startTestProxy(toml, { upstream, stats });
  return {
    fake,
    proxy,
    upstream,
    config,
    stats,
    dir,
    proxySecret,
    toml,
    connect: (transport: TransportTag = 'intermediate', dcId = 2) =>
      connectObfuscated({ host: '127.0.0.1', port: proxy.port(), secret: TEST_SECRET_HEX, transport, dcId }),
    stop: async () => {
      await proxy.stop();
      await fake.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `body` against a fresh middle setup and stops the setup afterwards, whether `body` passed or failed. */
export async function withMiddleSetup(
  o: MiddleSetupOptions,
  body: (setup: MiddleSetup) => Promise<void>,
): Promise<void> {
  const setup = await startMiddleSetup(o);
  try {
    await body(setup);
  } finally {
    await setup.stop();
  }
}

/** What a session tells the upstream about its client, for tests that open clients on the upstream directly. */
export function upstreamClientInfo(listener: ListenerConfig, fields: Partial<ClientInfo> = {}): ClientInfo {
  return {
    listener,
    transport: 'intermediate',
    dcId: 2,
    remoteAddress: '127.0.0.1',
    remotePort: 1,
    localAddress: '127.0.0.1',
    localPort: 2,
    tlsDomain: null,
    ...fields,
  };
}

/** A payload that looks like an encrypted MTProto message: non-zero auth key id, aligned, tagged with `n`. */
export function encryptedPayload(n: number, size = 64): Buffer {
  const b = randomBytes(size);
  b.writeUInt32LE(0x11111111, 0);
  b.writeUInt32LE(n >>> 0, 8);
  return b;
}

/** Polls `cond` every 20 ms (10 s at most), failing with `what` if it never holds. */
export async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** A ClientSink recording what the upstream delivers. */
export function recordingSink(): { sink: ClientSink; frames: Buffer[]; closes: string[] } {
  const frames: Buffer[] = [];
  const closes: string[] = [];
  const sink: ClientSink = {
    sendBytes: () => true,
    sendFrame: (p) => {
      frames.push(Buffer.from(p));
      return true;
    },
    sendQuickAck: () => {},
    resumeClient: () => {},
    close: (reason) => closes.push(reason),
  };
  return { sink, frames, closes };
}
