/**
 * The process under test: either the ceiling relay or mtproxy itself (one in-process Proxy, or the worker
 * supervisor). Reports its own CPU time and memory so figures can be per-GB and per-session.
 */
import { type CeilingRelay, startCeilingRelay } from '../ceiling-relay.ts';
import { serveActor } from './ipc.ts';
import { type ProxyUnderTest, startProxyUnderTest } from './start-proxy.ts';

let running: ProxyUnderTest | null = null;

serveActor({
  async start(req) {
    if (req.kind === 'ceiling') {
      const relay: CeilingRelay = await startCeilingRelay({
        targetHost: '127.0.0.1',
        targetPort: req.targetPort as number,
      });
      running = relay;
    } else {
      running = await startProxyUnderTest(req.config as Record<string, unknown>);
    }
    return { port: running.port, linkPort: (running as ProxyUnderTest).linkPort };
  },
  async usage() {
    const mem = process.memoryUsage();
    // Worker processes spend their CPU outside this process: the supervisor sums it.
    const all = running?.usage ? await running.usage() : null;
    if (all) return { ...all, heapUsed: mem.heapUsed };
    const cpu = process.cpuUsage();
    return { cpuUserUs: cpu.user, cpuSystemUs: cpu.system, rss: mem.rss, heapUsed: mem.heapUsed };
  },
  /** Connections accepted by each worker so far (empty for a single in-process proxy). */
  async spread() {
    return { perWorker: (await running?.workerConnections?.()) ?? [] };
  },
  gc() {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc) {
      gc();
      gc();
    }
    return {};
  },
  async stop() {
    await running?.close();
    running = null;
    return {};
  },
});
