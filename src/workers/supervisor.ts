/**
 * Runs `workers` Proxy instances and keeps the state that must be global in one place. Two kinds of worker,
 * driven the same way (src/workers/transport.ts):
 * - threads (`worker_mode = "threads"`, and "auto" where SO_REUSEPORT works): every thread binds every
 *   listener port with SO_REUSEPORT and the kernel spreads new connections over them; the replay set and the
 *   max_connections counters live in SharedArrayBuffers every thread writes to;
 * - processes ("processes", and "auto" elsewhere: macOS, Windows, old kernels): node:cluster worker
 *   processes; this (primary) process owns the listening sockets, accepts every connection and hands it to
 *   the next process in turn (round robin, so the spread is even on any OS). It keeps the replay set and the
 *   counters itself and answers the workers' questions over IPC: one round trip per handshake for the
 *   replay check, plus one per max_connections rule that applies, none on the data path.
 * Either way:
 * - policy tables are re-read by every worker when they change (`tablesChanged()`);
 * - stats: each worker pushes a snapshot every second (and on request); `statsSources()` hands them, plus the
 *   totals of workers that died, to the metrics registry, which sums them;
 * - reload: this process loads and validates the file, then every worker applies the same Config;
 * - a worker that exits is replaced (with a growing delay if it keeps dying); the others' sessions are not
 *   touched, and the counters its sessions held are given back first.
 * It offers the parts of the Proxy API the CLI and the admin API use, so `run` can hold either.
 */
import { availableParallelism } from 'node:os';
import net from 'node:net';
import { Operations } from '../admin/operations.ts';
import { configFileLoader, reloadConfig } from '../server/reload.ts';
import type { ReloadOutcome } from '../admin/server.ts';
import type { Config, WorkerMode } from '../config/types.ts';
import { type Logger, logger as defaultLogger } from '../log.ts';
import { type Stats, Stats as StatsClass, stats as defaultStats } from '../metrics/stats.ts';
import {
  type FromWorker,
  type ListenerAddress,
  readFromWorker,
  refusalFor,
  type ToWorker,
  type WorkerInit,
  type WorkerUsage,
} from './protocol.ts';
import { SharedCounterStore } from './shared-counters.ts';
import { SharedReplayGuard } from './shared-replay.ts';
import { addSnapshot, type StatsSnapshot, statsFromSnapshot, zeroGauges } from './transfer.ts';
import { collectStartupGarbage, tuneGarbageCollector } from '../runtime/gc-tuning.ts';
import { startProcess, startThread, type WorkerKind, type WorkerTransport } from './transport.ts';
import { formatHostPort } from '../config/addresses.ts';
import { describeBindError, probeExclusive, StartupError } from '../runtime/bind-errors.ts';
import { claimPort } from '../runtime/port-owner.ts';
import { MtpError } from '../runtime/errors.ts';
import { SerialQueue } from '../runtime/serial.ts';
const RESTART_MIN_MS = 200;
const RESTART_MAX_MS = 10_000;
/** A worker that ran this long before dying is restarted at once (the backoff only tames crash loops). */
const STABLE_AFTER_MS = 30_000;
const REQUEST_TIMEOUT_MS = 30_000;

export interface SupervisorOptions {
  log?: Logger;
  /** Main-thread stats (reload counters); worker stats are separate and summed at scrape time. */
  stats?: Stats;
  /** How `reloadFromFile()` obtains the next config; default: re-read config.file. */
  loadConfig?: () => Promise<Config>;
  statsIntervalMs?: number;
  /** Whether SO_REUSEPORT works here (tests replace the probe to play another OS). */
  reusePortSupported?: () => Promise<boolean>;
  /** Tests: the workers' users clock starts stopped at this time; `setUserClock` moves it. */
  userClock?: number;
}

interface Slot {
  index: number;
  worker: WorkerTransport | null;
  /** This worker's column of the shared counters (worker processes ask the primary, which uses it for them). */
  counters: SharedCounterStore;
  ready: boolean;
  startedAt: number;
  restartDelayMs: number;
  restartTimer: NodeJS.Timeout | null;
  /** Last snapshot pushed by this worker. */
  stats: Stats;
  lastSnapshot: StatsSnapshot | null;
  pending: Map<number, { resolve: (m: FromWorker & { type: 'reply' }) => void; reject: (e: Error) => void }>;
  /** Resolves when the current worker is ready (or rejects if it failed to start). */
  started: Promise<void> | null;
  /** Port of each listener in the config this worker runs (0 = it picked one itself). */
  ports: Map<string, number>;
  /** The config this worker was last given (at its start or by a reload): a reload it missed is caught up on. */
  given: Config | null;
}

/** True when this platform lets several sockets bind one port (SO_REUSEPORT through Node's `reusePort`). */
export async function reusePortSupported(): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    try {
      server.listen({ host: '127.0.0.1', port: 0, reusePort: true }, () => server.close(() => resolve(true)));
    } catch {
      resolve(false);
    }
  });
}

/**
 * How the workers run. auto: threads where SO_REUSEPORT works, else processes. threads where it does not
 * work: one thread (the kernel could not share the port), as before worker processes existed.
 */
export function chooseWorkerKind(
  configured: WorkerMode,
  workers: number,
  reusePortWorks: boolean,
): { kind: WorkerKind; workers: number } {
  if (configured === 'processes') return { kind: 'processes', workers };
  if (workers <= 1 || reusePortWorks) return { kind: 'threads', workers };
  if (configured === 'auto') return { kind: 'processes', workers };
  return { kind: 'threads', workers: 1 };
}

/** A free port on `host` right now (worker processes must all ask the primary for the same port). */
function reservePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export class Supervisor {
  #config: Config;
  readonly #log: Logger;
  readonly #stats: Stats;
  readonly #options: SupervisorOptions;
  /** Tests: the users' stopped clock the workers run on (null: the system clock). */
  #userClock: number | null;
  readonly #replay: SharedReplayGuard;
  readonly #counters: SharedCounterStore;
  #slots: Slot[] = [];
  /** Totals of workers that died (their gauges zeroed). */
  readonly #retired = new StatsClass();
  /** Ports the listeners actually got (resolves `port = 0`), by listener name. */
  readonly #boundPorts = new Map<string, number>();
  #addresses: ListenerAddress[] = [];
  #nextRequestId = 1;
  #stopping = false;
  #started = false;
  readonly #reloads = new SerialQueue();
  #kind: WorkerKind = 'threads';
  /** Worker processes: the port each `port = 0` listener was given (by name), the same for every process. */
  readonly #reservedPorts = new Map<string, { host: string; port: number }>();
  /** Claims on the listener addresses worker threads share (see #refuseSharedPorts), by "host:port". */
  readonly #portClaims = new Map<string, () => void>();
  /** Worker restarts since start (tests and status). */
  restarts = 0;
  /** Admin API, /metrics and the table store, served from the main thread over every worker's numbers. */
  readonly #ops: Operations;

  constructor(config: Config, opts: SupervisorOptions = {}) {
    this.#config = config;
    this.#options = opts;
    this.#userClock = opts.userClock ?? null;
    this.#log = opts.log ?? defaultLogger;
    this.#stats = opts.stats ?? defaultStats;
    const workers = Math.max(1, config.workers || availableParallelism());
    this.#replay = SharedReplayGuard.create({
      enabled: config.replay.enabled,
      maxEntries: config.replay.maxEntries,
      maxAgeMs: config.replay.maxAgeMs,
    });
    // Enough distinct keys for every connection a worker can hold (bounded by its descriptors anyway).
    this.#counters = SharedCounterStore.create({ maxKeys: 65_536, workers });
    this.#ops = new Operations({
      config,
      stats: this.#stats,
      log: this.#log,
      counters: this.#counters,
      metricsSources: () => this.statsSources(),
      refreshStats: () => this.refreshStats(),
      tablesChanged: () => this.tablesChanged(),
      // Tests: the admin API's users run on the workers' stopped clock too.
      userClock: this.#userClock === null ? undefined : { now: () => this.#userClock ?? Date.now() },
    });
    for (let index = 0; index < workers; index++) {
      this.#slots.push({
        index,
        worker: null,
        ready: false,
        startedAt: 0,
        restartDelayMs: 0,
        restartTimer: null,
        counters: SharedCounterStore.attach(this.#counters.buffer, index),
        stats: new StatsClass(),
        lastSnapshot: null,
        pending: new Map(),
        started: null,
        ports: new Map(),
        given: null,
      });
    }
  }

  get config(): Config {
    return this.#config;
  }

  get workerCount(): number {
    return this.#slots.length;
  }

  /** Threads or processes (known once started). */
  get workerKind(): WorkerKind {
    return this.#kind;
  }

  /** The shared counters (tests and status read them from the main thread). */
  get counters(): SharedCounterStore {
    return this.#counters;
  }

  /** Admin API, metrics endpoint and policy tables of this process. */
  get operations(): Operations {
    return this.#ops;
  }

  get replay(): SharedReplayGuard {
    return this.#replay;
  }

  listenerNames(): string[] {
    return this.#addresses.map((a) => a.name);
  }

  address(listenerName: string): { host: string; port: number } {
    const a = this.#addresses.find((x) => x.name === listenerName);
    if (!a) throw new Error(`listener "${listenerName}" is not listening`);
    return { host: a.host, port: a.port };
  }

  /** Stats of every worker (last snapshots) and of the ones that died, for the metrics registry. */
  statsSources(): Stats[] {
    return [this.#stats, this.#retired, ...this.#slots.map((s) => s.stats)];
  }

  /** Open client connections over all workers, as of the last snapshots. */
  sessionCount(listener?: string): number {
    let n = 0;
    for (const s of this.#slots)
      for (const [name, l] of s.stats.listeners) if (!listener || name === listener) n += l.connectionsActive;
    return n;
  }

  async start(): Promise<void> {
    tuneGarbageCollector();
    const configured = this.#config.workerMode;
    const probe = this.#options.reusePortSupported ?? reusePortSupported;
    // Only threads need SO_REUSEPORT, and only when there are several of them.
    const probeNeeded = configured !== 'processes' && this.#slots.length > 1;
    const reusePortWorks = probeNeeded ? await probe() : true;
    const { kind, workers } = chooseWorkerKind(configured, this.#slots.length, reusePortWorks);
    this.#kind = kind;
    if (workers < this.#slots.length) {
      this.#log.warn(
        { workers: this.#slots.length },
        'SO_REUSEPORT is not available here and worker_mode is "threads": running one worker',
      );
      this.#slots.length = workers;
    } else if (kind === 'processes' && configured === 'auto') {
      this.#log.info(
        { workers },
        'SO_REUSEPORT is not available here: worker processes, this process hands out the connections',
      );
    }
    try {
      // Processes: ports are settled here. Threads: the first one resolves `port = 0` listeners, the others
      // then bind the same ports. Either way the first worker starts alone, so it is the one that creates the
      // state folder's tables database (two processes creating it at once can fail with "database is locked").
      if (kind === 'processes') await this.#reservePorts(this.#config);
      await this.#refuseSharedPorts(this.#config);
      await this.#spawn(this.#slots[0]);
      await Promise.all(this.#slots.slice(1).map((s) => this.#spawn(s)));
    } catch (e) {
      await this.stop(0);
      throw e;
    }
    try {
      await this.#ops.start(this);
    } catch (e) {
      await this.stop(0);
      throw e;
    }
    this.#started = true;
    this.#log.info({ workers: this.#slots.length, kind, listeners: this.#addresses }, 'workers listening');
    collectStartupGarbage();
  }

  async stop(drainMs: number = this.#config.timeouts.drainMs): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    await Promise.all(
      this.#slots.map(async (slot) => {
        if (slot.restartTimer) clearTimeout(slot.restartTimer);
        const worker = slot.worker;
        if (!worker) return;
        const exited = new Promise<void>((r) => worker.onExit(() => r()));
        try {
          const reply = await this.#request(slot, { type: 'stop', id: 0, drainMs }, drainMs + 5000);
          if (reply.stats) this.#absorb(slot, reply.stats);
        } catch {
          // Unresponsive: terminate below.
        }
        const timer = setTimeout(() => worker.kill(), 2000);
        await exited;
        clearTimeout(timer);
      }),
    );
    this.#releaseClaims(null);
    await this.#ops.stop();
  }

  /** Apply an already validated config on every worker (worker 0 first, so new `port = 0` listeners resolve). */
  applyConfig(next: Config): Promise<void> {
    return this.#reloads.run(() => this.#applyConfig(next).finally(() => this.#releaseClaims(this.#config)));
  }

  async #applyConfig(next: Config): Promise<void> {
    if (next.workers !== this.#config.workers) {
      this.#log.warn(
        { running: this.#slots.length, configured: next.workers },
        'a new worker count applies after a restart',
      );
    }
    if (next.workerMode !== this.#config.workerMode) {
      this.#log.warn(
        { running: this.#kind, configured: next.workerMode },
        'a new worker_mode applies after a restart',
      );
    }
    if (next.replay.maxEntries !== this.#config.replay.maxEntries) {
      this.#log.warn(
        { running: this.#config.replay.maxEntries, configured: next.replay.maxEntries },
        'with several workers, a new replay.max_entries applies after a restart (the shared cache is sized at start)',
      );
    }
    this.#replay.configure(next.replay.enabled, next.replay.maxAgeMs);
    if (this.#kind === 'processes') await this.#reservePorts(next);
    await this.#refuseSharedPorts(next);
    const live = this.#slots.filter((s) => s.worker && s.ready);
    const [first, ...rest] = live;
    const errors: string[] = [];
    if (first) {
      const r = await this.#request(first, { type: 'config', id: 0, config: this.#configFor(first, next) });
      if (!r.ok) throw new Error(r.error ?? 'worker refused the config');
      first.given = next;
      this.#learnAddresses(r.addresses ?? []);
    }
    const replies = await Promise.all(
      rest.map((s) => this.#request(s, { type: 'config', id: 0, config: this.#configFor(s, next) })),
    );
    replies.forEach((r, i) => {
      if (r.ok) rest[i].given = next;
      else errors.push(r.error ?? 'worker refused the config');
    });
    // Workers that are (re)starting right now pick the new config up from #config.
    this.#config = next;
    await this.#ops
      .applyConfig(next)
      .catch((e: Error) => this.#log.error({ err: e.message }, `reload: ${e.message}`));
    if (errors.length > 0) throw new Error(errors[0]);
  }

  async reloadFromFile(): Promise<ReloadOutcome> {
    const load = this.#options.loadConfig ?? configFileLoader(this.#config.file);
    return reloadConfig(load, (next) => this.applyConfig(next), this.#stats, this.#log, {
      workers: this.#slots.length,
    });
  }

  /** Tests: move every worker's stopped users clock (started with `userClock`) to `now`, then tick. */
  async setUserClock(now: number): Promise<void> {
    this.#userClock = now;
    await Promise.all(
      this.#slots
        .filter((s) => s.worker && s.ready)
        .map((s) => this.#request(s, { type: 'clock', id: 0, now })),
    );
  }

  /** Policy tables were edited (admin API): every worker re-reads them. */
  async tablesChanged(): Promise<void> {
    await Promise.all(
      this.#slots.filter((s) => s.worker && s.ready).map((s) => this.#request(s, { type: 'tables', id: 0 })),
    );
  }

  /** Ask every worker for fresh stats now (before a scrape or a status answer). */
  async refreshStats(): Promise<void> {
    await Promise.all(
      this.#slots
        .filter((s) => s.worker && s.ready)
        .map(async (s) => {
          try {
            const r = await this.#request(s, { type: 'stats', id: 0 }, 2000);
            if (r.stats) this.#absorb(s, r.stats);
          } catch {
            // A worker that does not answer keeps its last snapshot.
          }
        }),
    );
  }

  /** Fresh per-worker totals (bench and tests: how evenly connections spread). */
  async workerStats(): Promise<
    Array<{ index: number; connectionsTotal: number; connectionsActive: number }>
  > {
    await this.refreshStats();
    return this.#slots.map((s) => {
      let total = 0;
      let active = 0;
      for (const l of s.stats.listeners.values()) {
        total += l.connectionsTotal;
        active += l.connectionsActive;
      }
      return { index: s.index, connectionsTotal: total, connectionsActive: active };
    });
  }

  /** Thread ids or process ids, by worker index (tests kill one to watch the restart). */
  workerIds(): Array<number | null> {
    return this.#slots.map((s) => s.worker?.id ?? null);
  }

  /**
   * CPU time and memory of this process and, with worker processes, of each of them (worker threads are
   * part of this process already). For the bench's per-GB and per-session figures.
   */
  async usage(): Promise<WorkerUsage> {
    const cpu = process.cpuUsage();
    const total: WorkerUsage = {
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      rss: process.memoryUsage.rss(),
    };
    if (this.#kind !== 'processes') return total;
    const replies = await Promise.all(
      this.#slots
        .filter((s) => s.worker && s.ready)
        .map((s) => this.#request(s, { type: 'usage', id: 0 }, 2000).catch(() => null)),
    );
    for (const r of replies) {
      if (!r?.usage) continue;
      total.cpuUserUs += r.usage.cpuUserUs;
      total.cpuSystemUs += r.usage.cpuSystemUs;
      total.rss += r.usage.rss;
    }
    return total;
  }

  /** Workers currently listening. */
  readyCount(): number {
    return this.#slots.filter((s) => s.worker && s.ready).length;
  }

  /** End one worker as if it crashed (tests; the supervisor restarts it). Resolves once it is gone. */
  killWorker(index: number): Promise<void> {
    const worker = this.#slots[index]?.worker;
    if (!worker) return Promise.resolve();
    const exited = new Promise<void>((r) => worker.onExit(() => r()));
    worker.kill();
    return exited;
  }

  // ---------------------------------------------------------------------------------------------------------

  /**
   * The config as one worker must see it. A `port = 0` listener already bound gets the real port, except that a
   * worker keeps the port its own config already says for that listener: the server compares addresses to
   * decide what to rebind, and a worker started with port 0 must not see its own listener "move".
   */
  #configFor(slot: Slot, config: Config): Config {
    if (this.#kind === 'processes') {
      // Every process must ask the primary for the same address, so `port = 0` is settled here first.
      const listeners = config.listeners.map((l) => {
        const reserved = l.port === 0 ? this.#reservedPorts.get(l.name) : undefined;
        return reserved ? { ...l, port: reserved.port } : l;
      });
      return { ...config, listeners };
    }
    const listeners = config.listeners.map((l) => {
      if (l.port !== 0) return l;
      const own = slot.ports.get(l.name);
      const port = own ?? this.#boundPorts.get(l.name);
      return port === undefined || port === 0 ? l : { ...l, port };
    });
    slot.ports = new Map(listeners.map((l) => [l.name, l.port]));
    return { ...config, listeners };
  }

  /**
   * Worker processes: give each new `port = 0` listener a free port now. (Node's cluster would give every
   * process the same random port only while they bind their listeners in the same order, which reloads and
   * restarts do not keep.) Another program could take the port before the first process binds it; `port = 0`
   * is for tests, where that does not happen.
   */
  async #reservePorts(config: Config): Promise<void> {
    for (const l of config.listeners) {
      if (l.port !== 0) continue;
      const known = this.#reservedPorts.get(l.name);
      if (known && known.host === l.host) continue;
      this.#reservedPorts.set(l.name, { host: l.host, port: await reservePort(l.host) });
    }
  }

  /**
   * Worker threads share each port through SO_REUSEPORT, which the kernel grants a second instance of the proxy
   * just as well: before they bind a port this process does not serve yet, make sure nobody else holds it.
   */
  async #refuseSharedPorts(config: Config): Promise<void> {
    if (this.#kind !== 'threads') return;
    const ours = new Set(this.#addresses.map((a) => a.port));
    for (const [i, l] of config.listeners.entries()) {
      if (l.port === 0 || ours.has(l.port)) continue;
      const key = formatHostPort(l);
      // The claim first (two instances starting at once both see a free port), then the port itself.
      let claimed = false;
      if (!this.#portClaims.has(key)) {
        const release = await claimPort(l.host, l.port);
        if (release !== null) {
          this.#portClaims.set(key, release);
          claimed = true;
        }
      } else claimed = true;
      const ipv6Only =
        l.host === '::' && config.listeners.some((o) => o.host === '0.0.0.0' && o.port === l.port);
      const err = await probeExclusive(l.host, l.port, ipv6Only);
      if (err || !claimed) {
        this.#portClaims.get(key)?.();
        this.#portClaims.delete(key);
        const why = err
          ? describeBindError(err, l.host, l.port)
          : `${key} is being taken by another mtproxy starting at the same time`;
        throw new StartupError(err?.code ?? 'EADDRINUSE', `listeners[${i}].port: ${why}`);
      }
    }
  }

  /** Let go of the claims on addresses the running config no longer has (after a reload, at stop: all). */
  #releaseClaims(keep: Config | null): void {
    const wanted = new Set(keep ? keep.listeners.map((l) => formatHostPort(l)) : []);
    for (const [key, release] of this.#portClaims) {
      if (wanted.has(key)) continue;
      release();
      this.#portClaims.delete(key);
    }
  }

  #learnAddresses(addresses: ListenerAddress[]): void {
    this.#addresses = addresses;
    for (const a of addresses) this.#boundPorts.set(a.name, a.port);
  }

  #absorb(slot: Slot, snapshot: StatsSnapshot): void {
    // Read first: a snapshot that cannot be read must not be kept (it is summed again when the worker exits).
    const stats = statsFromSnapshot(snapshot);
    slot.lastSnapshot = snapshot;
    slot.stats = stats;
  }

  #spawn(slot: Slot): Promise<void> {
    // A fresh worker: it takes every already bound port as it is now.
    slot.ports = new Map();
    slot.given = this.#config;
    const threads = this.#kind === 'threads';
    const init: WorkerInit = {
      index: slot.index,
      config: this.#configFor(slot, this.#config),
      replay: threads ? this.#replay.buffer : null,
      counters: threads ? this.#counters.buffer : null,
      statsIntervalMs: this.#options.statsIntervalMs ?? 1000,
      userClock: this.#userClock,
    };
    const worker = threads ? startThread(`mtproxy-worker-${slot.index}`, init) : startProcess(init);
    slot.worker = worker;
    slot.ready = false;
    slot.startedAt = Date.now();
    slot.stats = new StatsClass();
    slot.lastSnapshot = null;
    const started = new Promise<void>((resolve, reject) => {
      worker.onMessage((raw: unknown) => {
        // A late message from a worker that was already replaced must not touch the new one's state.
        if (slot.worker !== worker) return;
        const msg = readFromWorker(raw);
        if (msg === null) {
          this.#dropUnreadable(slot, worker, raw);
          return;
        }
        try {
          this.#onMessage(slot, worker, msg, resolve, reject);
        } catch (e) {
          // Whatever a worker sends, this process (which serves every other worker) carries on, and a
          // question still gets its (refusing) answer.
          const refusal = refusalFor(msg);
          if (refusal) worker.send(refusal);
          this.#log.warn(
            { worker: slot.index, type: msg.type, err: (e as Error).message },
            'bad worker message',
          );
        }
      });
      // An uncaught error inside the worker ends that worker only; 'exit' follows and handles the restart.
      worker.onError((err) => {
        this.#log.error({ worker: slot.index, err }, 'worker crashed');
        reject(err);
      });
      worker.onExit((code) => {
        // A process that dies while starting sends no 'failed' (a thread would raise 'error').
        reject(new Error(`worker ${slot.index} exited with code ${code} before it was ready`));
        this.#onExit(slot, worker, code);
      });
    });
    slot.started = started;
    return started;
  }

  /**
   * A worker that becomes ready missed what was sent only to ready workers meanwhile: a reload (it was forked
   * with the config of before) and table edits made after it read the tables. Give it the current config, in
   * turn with reloads, and have it re-read the tables.
   */
  #catchUp(slot: Slot, worker: WorkerTransport): void {
    const run = this.#reloads.run(async () => {
      const config = this.#config;
      if (this.#stopping || slot.worker !== worker || !slot.ready) return;
      if (slot.given !== config) {
        const r = await this.#request(slot, { type: 'config', id: 0, config: this.#configFor(slot, config) });
        if (!r.ok) throw new Error(r.error ?? 'worker refused the config');
        slot.given = config;
        this.#learnAddresses(r.addresses ?? []);
      }
      await this.#request(slot, { type: 'tables', id: 0 });
    });
    run.catch((e: Error) =>
      this.#log.error({ worker: slot.index, err: e.message }, 'a restarted worker could not catch up'),
    );
  }

  #dropUnreadable(slot: Slot, worker: WorkerTransport, raw: unknown): void {
    const refusal = refusalFor(raw);
    if (refusal) worker.send(refusal);
    const type =
      typeof raw === 'object' && raw !== null ? String((raw as { type?: unknown }).type) : typeof raw;
    this.#log.warn({ worker: slot.index, type }, 'unreadable message from a worker dropped');
  }

  #onMessage(
    slot: Slot,
    worker: WorkerTransport,
    msg: FromWorker,
    resolve: () => void,
    reject: (e: Error) => void,
  ): void {
    switch (msg.type) {
      case 'replay':
        worker.send({ type: 'answer', id: msg.id, value: this.#replay.seen(msg.key as Buffer) });
        break;
      case 'acquire':
        worker.send({ type: 'answer', id: msg.id, value: slot.counters.tryAcquire(msg.key, msg.limit) });
        break;
      case 'release':
        slot.counters.release(msg.key);
        break;
      case 'ready':
        slot.ready = true;
        // The first worker of all tells the ports; a restarted one may run an older config (see below).
        if (this.#addresses.length === 0) this.#learnAddresses(msg.addresses);
        if (this.#started) this.#catchUp(slot, worker);
        resolve();
        break;
      case 'failed':
        reject(new MtpError('server', msg.code ?? 'MTP_ERR_WORKER_START', msg.error));
        break;
      case 'stats':
        this.#absorb(slot, msg.stats);
        break;
      case 'reply': {
        const p = slot.pending.get(msg.id);
        if (p) {
          slot.pending.delete(msg.id);
          p.resolve(msg);
        }
        break;
      }
    }
  }

  #onExit(slot: Slot, worker: WorkerTransport, code: number): void {
    if (slot.worker !== worker) return;
    slot.worker = null;
    slot.ready = false;
    for (const p of slot.pending.values()) p.reject(new Error(`worker ${slot.index} exited`));
    slot.pending.clear();
    // Keep its totals, give back the counters its sessions held, and free the shared locks if it died in one.
    if (slot.lastSnapshot) {
      addSnapshot(this.#retired, slot.lastSnapshot);
      zeroGauges(this.#retired);
    }
    slot.stats = new StatsClass();
    slot.lastSnapshot = null;
    const released = this.#counters.releaseAllOf(slot.index);
    this.#replay.recoverLock(slot.index + 1);
    // A worker that could not start (a port in use...) fails start() instead of looping.
    if (this.#stopping || !this.#started) return;
    const ranMs = Date.now() - slot.startedAt;
    slot.restartDelayMs =
      ranMs >= STABLE_AFTER_MS
        ? 0
        : Math.min(RESTART_MAX_MS, Math.max(RESTART_MIN_MS, slot.restartDelayMs * 2));
    this.#log.error(
      { worker: slot.index, code, ranMs, releasedCounters: released, restartInMs: slot.restartDelayMs },
      'worker exited; restarting it',
    );
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      if (this.#stopping) return;
      this.restarts++;
      this.#spawn(slot).catch((e: Error) =>
        this.#log.error({ worker: slot.index, err: e.message }, 'worker failed to restart'),
      );
    }, slot.restartDelayMs);
  }

  #request(
    slot: Slot,
    msg: ToWorker,
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<FromWorker & { type: 'reply' }> {
    const worker = slot.worker;
    if (!worker) return Promise.reject(new Error(`worker ${slot.index} is not running`));
    const id = this.#nextRequestId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        slot.pending.delete(id);
        reject(new Error(`worker ${slot.index} did not answer ${msg.type}`));
      }, timeoutMs);
      slot.pending.set(id, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      worker.send({ ...msg, id } as ToWorker);
    });
  }
}
