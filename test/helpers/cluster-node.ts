/**
 * A proxy node of a test fleet: the real server with its own state folder, `[cluster] redis` pointing at
 * the test's redis-server, the policy engine and the users as `mtproxy run` has them (no gate injected), a
 * quiet logger and its own stats. Its DCs are the test's fake DC.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { ProxyServer } from '../../src/server/proxy.ts';
import { basicToml } from './proxy.ts';

export interface ClusterNode {
  name: string;
  proxy: ProxyServer;
  stats: Stats;
  stateDir: string;
  /** The node's config text (for a CLI run against it). */
  toml: string;
  port(): number;
  stop(): Promise<void>;
}

export interface ClusterNodeOptions {
  /** Extra TOML before the listener (top-level keys and tables such as [[users]] go after `[cluster]`). */
  top?: string;
  listener?: string;
  cluster?: string;
  /** Start the admin API and metrics endpoint of the config (off by default). */
  operations?: boolean;
}

/** The TOML of a node (exported for the CLI tests, which run it in a process of its own). */
export function clusterNodeToml(
  name: string,
  redisUrl: string,
  dcPort: number,
  stateDir: string,
  opts: ClusterNodeOptions = {},
): string {
  return basicToml(dcPort, {
    top: `state_dir = ${JSON.stringify(stateDir)}
workers = 1

[cluster]
redis = "${redisUrl}"
node_name = "${name}"
timeout = "300ms"
heartbeat = "200ms"
node_timeout = "1s"
${opts.cluster ?? ''}
${opts.top ?? ''}
`,
    listener: opts.listener,
  });
}

export async function startClusterNode(
  name: string,
  redisUrl: string,
  dcPort: number,
  opts: ClusterNodeOptions = {},
): Promise<ClusterNode> {
  const stateDir = mkdtempSync(path.join(tmpdir(), `mtp-node-${name}-`));
  const toml = clusterNodeToml(name, redisUrl, dcPort, stateDir, opts);
  const config = parseConfig(toml);
  const stats = new Stats();
  const log = logger.child({ node: name });
  log.level = process.env.MTP_TEST_LOG ?? 'silent';
  const proxy = new ProxyServer(config, {
    log,
    stats,
    operations: opts.operations ?? false,
    coverProbes: false,
  });
  await proxy.start();
  let stopped = false;
  return {
    name,
    proxy,
    stats,
    stateDir,
    toml,
    port: () => proxy.address('main').port,
    async stop() {
      if (stopped) return;
      stopped = true;
      await proxy.stop(0);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
