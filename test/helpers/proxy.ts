/**
 * Start a proxy for a test, on loopback and port 0, from TOML text or a config object (validated by the
 * real config loader). Every DC id a test may use can be pointed at fake DCs with `dcOverridesToml()`.
 */
import net from 'node:net';
import { parseConfig } from '../../src/config/load.ts';
import type { Config, ListenerConfig } from '../../src/config/types.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { startSession } from '../../src/session/client-session.ts';
import { createReplayGuard } from '../../src/session/replay-cache.ts';
import type { PolicyGate, ReplayGuard, SessionEnv } from '../../src/session/types.ts';
import { DirectUpstream } from '../../src/upstream/direct/direct-upstream.ts';
import type { Upstream } from '../../src/upstream/types.ts';

export const TEST_SECRET_HEX = '0123456789abcdef0123456789abcdef';
export const TEST_SECRET = Buffer.from(TEST_SECRET_HEX, 'hex');

/** `[upstream.dc]` entries sending DC ids 1..5, their media twins and 203 to `host:port`. */
export function dcOverridesToml(
  dcPort: number,
  ids: number[] = [1, 2, 3, 4, 5, -1, -2, -3, -4, -5, 203],
): string {
  return ids.map((id) => `${id} = ["127.0.0.1:${dcPort}"]`).join('\n');
}

/** A minimal config: one listener "main" on 127.0.0.1:0 and all DCs at the fake DC. */
export function basicToml(dcPort: number, extra: { listener?: string; top?: string } = {}): string {
  return `${extra.top ?? ''}
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"
${extra.listener ?? ''}

[upstream]
mode = "direct"
connect_timeout = "2s"

[upstream.dc]
${dcOverridesToml(dcPort)}
`;
}

export const allowAllPolicy: PolicyGate = {
  admit: () => ({ ok: true, ticket: { release() {} } }),
  allowFronting: () => true,
};

export interface TestProxyOptions {
  policy?: PolicyGate;
  replay?: ReplayGuard;
  stats?: Stats;
  upstream?: Upstream;
}

export interface TestProxy {
  config: Config;
  stats: Stats;
  host: string;
  port(listenerName?: string): number;
  stop(): Promise<void>;
}

/**
 * The session stack exactly as the server wires it: one net.Server per listener calling startSession with
 * a SessionEnv over a direct upstream.
 */
export async function startTestProxy(
  input: string | Record<string, unknown>,
  opts: TestProxyOptions = {},
): Promise<TestProxy> {
  const config = parseConfig(input);
  const stats = opts.stats ?? new Stats();
  const log = logger.child({ test: true });
  log.level = process.env.MTP_TEST_LOG ?? 'silent';
  const upstream = opts.upstream ?? new DirectUpstream(() => config, log, stats);
  const replay = opts.replay ?? createReplayGuard(config.replay);
  const policy = opts.policy ?? allowAllPolicy;
  const servers = new Map<string, net.Server>();
  const sockets = new Set<net.Socket>();
  for (const listener of config.listeners) {
    const env: SessionEnv = {
      config: () => config,
      listener: (): ListenerConfig => listener,
      upstream: () => upstream,
      replay,
      policy,
      stats,
      log,
    };
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      startSession(socket, env);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listener.port, listener.host, () => resolve());
    });
    servers.set(listener.name, server);
  }
  const first = config.listeners[0].name;
  return {
    config,
    stats,
    host: config.listeners[0].host,
    port: (name = first) => (servers.get(name)!.address() as net.AddressInfo).port,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await upstream.close();
      await Promise.all(
        [...servers.values()].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
      );
    },
  };
}
