/**
 * Start a proxy for a test, on loopback and port 0, from TOML text or a config object (validated by the
 * real config loader). Every DC id a test may use can be pointed at fake DCs with `dcOverridesToml()`.
 */
import { parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { ProxyServer } from '../../src/server/proxy.ts';
import type { PolicyGate, ReplayGuard } from '../../src/session/types.ts';
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
  /** Replaces the direct upstream (scripted upstreams in session tests). */
  upstream?: Upstream;
}

export interface TestProxy {
  proxy: ProxyServer;
  config: Config;
  stats: Stats;
  host: string;
  port(listenerName?: string): number;
  stop(): Promise<void>;
}

/**
 * The real server (`Proxy`) with a quiet logger, its own stats, an allow-all policy unless one is given (no
 * state files), and no admin/metrics endpoints.
 */
export async function startTestProxy(
  input: string | Record<string, unknown>,
  opts: TestProxyOptions = {},
): Promise<TestProxy> {
  const config = parseConfig(input);
  const stats = opts.stats ?? new Stats();
  const log = logger.child({ test: true });
  log.level = process.env.MTP_TEST_LOG ?? 'silent';
  const upstream = opts.upstream ?? new DirectUpstream(() => proxy.config, log, stats);
  const proxy: ProxyServer = new ProxyServer(config, {
    log,
    stats,
    replay: opts.replay,
    policy: opts.policy ?? allowAllPolicy,
    operations: false,
    upstreams: opts.upstream ? { direct: upstream, middle: upstream } : { direct: upstream },
  });
  await proxy.start();
  const first = config.listeners[0].name;
  return {
    proxy,
    config,
    stats,
    host: config.listeners[0].host,
    port: (name = first) => proxy.address(name).port,
    stop: () => proxy.stop(0),
  };
}

/** A started proxy from TOML whose users' clock is `now` (quota periods, expiry and rates run on it). */
export async function startClockedProxy(toml: string, now: () => number): Promise<ProxyServer> {
  const log = logger.child({ test: true });
  log.level = 'silent';
  const proxy = new ProxyServer(parseConfig(toml), {
    log,
    stats: new Stats(),
    policy: allowAllPolicy,
    operations: false,
    userClock: { now },
  });
  await proxy.start();
  return proxy;
}
