/** Start mtproxy inside the bench's proxy process: one in-process Proxy, or the worker supervisor. */
import { parseConfig } from '../../src/config/load.ts';
import { logger } from '../../src/log.ts';
import { Proxy as MtProxy } from '../../src/server/proxy.ts';

export interface ProxyUnderTest {
  port: number;
  /** A back's link listener port (role = "back"). */
  linkPort?: number;
  close(): Promise<void>;
  /** Per-worker accepted connections (supervisor only). */
  workerConnections?(): Promise<number[]>;
  /** CPU and memory including worker processes (supervisor only; worker threads count in this process). */
  usage?(): Promise<{ cpuUserUs: number; cpuSystemUs: number; rss: number }>;
}

export async function startProxyUnderTest(object: Record<string, unknown>): Promise<ProxyUnderTest> {
  const config = parseConfig(object);
  logger.level = config.log.level;
  const listener = config.listeners[0].name;
  if (config.workers > 1 || config.workerMode === 'processes') {
    const { Supervisor } = await import('../../src/workers/supervisor.ts');
    const supervisor = new Supervisor(config, { log: logger });
    await supervisor.start();
    return {
      port: supervisor.address(listener).port,
      close: () => supervisor.stop(0),
      workerConnections: async () => (await supervisor.workerStats()).map((s) => s.connectionsTotal),
      usage: () => supervisor.usage(),
    };
  }
  const proxy = new MtProxy(config, { log: logger });
  await proxy.start();
  const back = proxy.cluster.back;
  return {
    port: proxy.address(listener).port,
    ...(back ? { linkPort: back.address().port } : {}),
    close: () => proxy.stop(0),
  };
}
