/**
 * Body of one worker thread: a full Proxy on the shared ports (SO_REUSEPORT), with the replay set and the
 * max_connections counters in shared memory, its own Stats (snapshots go to the main thread) and its own view
 * of the policy tables (re-read when the main thread says they changed).
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import type { Config } from '../config/types.ts';
import { logger } from '../log.ts';
import { Stats } from '../metrics/stats.ts';
import { PolicyEngine } from '../policy/engine.ts';
import { PolicyTables } from '../policy/tables.ts';
import { reportFdExhaustion } from '../server/fd-pressure.ts';
import { Proxy as MtProxy } from '../server/proxy.ts';
import type { FromWorker, ListenerAddress, ToWorker, WorkerInit } from './protocol.ts';
import { SharedCounterStore } from './shared-counters.ts';
import { SharedReplayGuard } from './shared-replay.ts';
import { reviveConfig, snapshotStats } from './transfer.ts';

const FD_EXHAUSTION = new Set(['EMFILE', 'ENFILE']);

const init = workerData as WorkerInit;
const port = parentPort!;
const log = logger.child({ worker: init.index, thread: threadId });
const send = (msg: FromWorker) => port.postMessage(msg);

// Out of descriptors somewhere off the accept path (an upstream connect, a file): log and keep serving.
// Anything else is a bug: exit, and the supervisor starts a fresh worker while the others carry on.
process.on('uncaughtException', (err: NodeJS.ErrnoException) => {
  if (err.code && FD_EXHAUSTION.has(err.code)) {
    log.warn({ code: err.code }, 'out of file descriptors');
    reportFdExhaustion(err.code, 'uncaught');
    return;
  }
  log.error({ err }, 'worker failed; it will be restarted');
  process.exit(1);
});

let config: Config = reviveConfig(init.config);
log.level = config.log.level;
const stats = new Stats();
const replay = SharedReplayGuard.attach(init.replay, init.index + 1);
const counters = SharedCounterStore.attach(init.counters, init.index);
const tables = new PolicyTables(config.stateDir);
const engine = new PolicyEngine({ rules: config.policies, tables, counters, stats });
const policy = Object.assign(engine, {
  applyConfig(next: Config): void {
    engine.setRules(next.policies);
  },
});
const proxy = new MtProxy(config, { log, stats, replay, policy, reusePort: true });

function addresses(): ListenerAddress[] {
  return proxy.listenerNames().map((name) => ({ name, ...proxy.address(name) }));
}

async function handle(msg: ToWorker): Promise<void> {
  try {
    switch (msg.type) {
      case 'config':
        config = reviveConfig(msg.config);
        await proxy.applyConfig(config);
        send({ type: 'reply', id: msg.id, ok: true, addresses: addresses() });
        break;
      case 'stats':
        send({ type: 'reply', id: msg.id, ok: true, stats: snapshotStats(stats) });
        break;
      case 'tables':
        tables.refresh();
        send({ type: 'reply', id: msg.id, ok: true });
        break;
      case 'stop':
        if (statsTimer) clearInterval(statsTimer);
        await proxy.stop(msg.drainMs);
        tables.close();
        send({ type: 'reply', id: msg.id, ok: true, stats: snapshotStats(stats) });
        port.close();
        break;
    }
  } catch (e) {
    send({ type: 'reply', id: msg.id, ok: false, error: (e as Error).message.split('\n')[0] });
  }
}

port.on('message', (msg: ToWorker) => void handle(msg));

let statsTimer: NodeJS.Timeout | null = null;
try {
  await proxy.start();
  if (init.statsIntervalMs > 0) {
    statsTimer = setInterval(
      () => send({ type: 'stats', stats: snapshotStats(stats) }),
      init.statsIntervalMs,
    );
    statsTimer.unref();
  }
  send({ type: 'ready', addresses: addresses() });
} catch (e) {
  send({ type: 'failed', error: (e as Error).message, code: (e as NodeJS.ErrnoException).code });
  process.exit(2);
}
