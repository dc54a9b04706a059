/**
 * What every worker runs, thread or process: a full Proxy on the shared ports, its own Stats (snapshots go to
 * the supervisor) and its own view of the policy tables (re-read when the supervisor says they changed). The
 * caller supplies how messages travel and where the global state lives (shared memory or the primary).
 */
import type { Config } from '../config/types.ts';
import { type Logger, setLogFormat } from '../log.ts';
import { Stats } from '../metrics/stats.ts';
import type { RemoteCounterStore } from '../policy/counters.ts';
import { PolicyEngine } from '../policy/engine.ts';
import { PolicyTables } from '../policy/tables.ts';
import { isFdExhaustion, reportFdExhaustion } from '../runtime/fd-pressure.ts';
import { Proxy as MtProxy } from '../server/proxy.ts';
import type { ReplayGuard } from '../session/types.ts';
import type { FromWorker, ListenerAddress, ToWorker, WorkerInit } from './protocol.ts';
import { reviveConfig, snapshotStats } from './transfer.ts';

export interface WorkerHost {
  init: WorkerInit;
  log: Logger;
  send(msg: FromWorker): void;
  /** Send a last message, then let this worker end (it has stopped, or failed to start). */
  sendAndEnd(msg: FromWorker, exitCode: number): void;
  replay: ReplayGuard;
  counters: RemoteCounterStore;
  /** Threads bind every port themselves (SO_REUSEPORT); processes share the primary's socket. */
  reusePort: boolean;
  /** A new config was applied (the process variant follows `replay.enabled`). */
  configApplied?(config: Config): void;
}

/** Start the proxy; returns the handler for the supervisor's messages. */
export function runWorker(host: WorkerHost): (msg: ToWorker) => void {
  const { init, log, send } = host;
  // Out of descriptors somewhere off the accept path (an upstream connect, a file): log and keep serving.
  // Anything else is a bug: exit, and the supervisor starts a fresh worker while the others carry on.
  process.on('uncaughtException', (err: NodeJS.ErrnoException) => {
    if (isFdExhaustion(err.code)) {
      log.warn({ code: err.code }, 'out of file descriptors');
      reportFdExhaustion(err.code, 'uncaught');
      return;
    }
    log.error({ err }, 'worker failed; it will be restarted');
    process.exit(1);
  });

  let config: Config = reviveConfig(init.config);
  log.level = config.log.level;
  setLogFormat(config.log.format);
  const stats = new Stats();
  const tables = new PolicyTables(config.stateDir);
  const engine = new PolicyEngine({ rules: config.policies, tables, counters: host.counters, stats });
  const policy = Object.assign(engine, {
    applyConfig(next: Config): void {
      engine.setRules(next.policies);
    },
  });
  // Tests stop the users' clock (quota periods, expiry, rate) and move it by messages.
  let clockAt = init.userClock ?? null;
  const userClock = clockAt === null ? undefined : { now: () => clockAt as number };
  const proxy = new MtProxy(config, {
    log,
    stats,
    replay: host.replay,
    policy,
    reusePort: host.reusePort,
    userClock,
  });
  let statsTimer: NodeJS.Timeout | null = null;

  const addresses = (): ListenerAddress[] =>
    proxy.listenerNames().map((name) => ({ name, ...proxy.address(name) }));

  async function handle(msg: ToWorker): Promise<void> {
    try {
      switch (msg.type) {
        case 'config':
          config = reviveConfig(msg.config);
          await proxy.applyConfig(config);
          host.configApplied?.(config);
          send({ type: 'reply', id: msg.id, ok: true, addresses: addresses() });
          break;
        case 'stats':
          send({ type: 'reply', id: msg.id, ok: true, stats: snapshotStats(stats) });
          break;
        case 'usage': {
          const cpu = process.cpuUsage();
          const usage = { cpuUserUs: cpu.user, cpuSystemUs: cpu.system, rss: process.memoryUsage.rss() };
          send({ type: 'reply', id: msg.id, ok: true, usage });
          break;
        }
        case 'tables':
          tables.refresh();
          // Users live in the same database: created, changed or reset through the admin API.
          proxy.users.reload();
          proxy.users.refreshUsage();
          send({ type: 'reply', id: msg.id, ok: true });
          break;
        case 'clock':
          if (clockAt !== null) clockAt = msg.now;
          proxy.users.tick();
          send({ type: 'reply', id: msg.id, ok: true });
          break;
        case 'stop':
          if (statsTimer) clearInterval(statsTimer);
          await proxy.stop(msg.drainMs);
          tables.close();
          host.sendAndEnd({ type: 'reply', id: msg.id, ok: true, stats: snapshotStats(stats) }, 0);
          break;
        default:
          break;
      }
    } catch (e) {
      if ('id' in msg)
        send({ type: 'reply', id: msg.id, ok: false, error: (e as Error).message.split('\n')[0] });
    }
  }

  proxy.start().then(
    () => {
      if (init.statsIntervalMs > 0) {
        statsTimer = setInterval(
          () => send({ type: 'stats', stats: snapshotStats(stats) }),
          init.statsIntervalMs,
        );
        statsTimer.unref();
      }
      send({ type: 'ready', addresses: addresses() });
    },
    (e: NodeJS.ErrnoException) => host.sendAndEnd({ type: 'failed', error: e.message, code: e.code }, 2),
  );
  return (msg) => void handle(msg);
}
