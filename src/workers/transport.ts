/**
 * The two kinds of worker the supervisor drives, behind one small interface: a worker thread (shares ports
 * through SO_REUSEPORT, shared memory for global state) or a worker process started with node:cluster (the
 * primary accepts every connection and hands them out in turn; global state is asked for over IPC).
 */
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { flushCompileCache } from '../runtime/compile-cache.ts';
import { workerHeapLimits } from '../runtime/gc-tuning.ts';
import type { ToWorker, WorkerInit } from './protocol.ts';

export type WorkerKind = 'threads' | 'processes';

export interface WorkerTransport {
  readonly kind: WorkerKind;
  /** Thread id or process id. */
  readonly id: number;
  send(msg: ToWorker): void;
  /** Unchecked: what arrives is whatever the worker sent (see readFromWorker). */
  onMessage(handler: (msg: unknown) => void): void;
  /** Uncaught failure reported by the runtime ('exit' follows). */
  onError(handler: (err: Error) => void): void;
  onExit(handler: (code: number) => void): void;
  /** End it now, as a crash would (no draining). */
  kill(): void;
}

const THREAD_URL = new URL('./worker-main.ts', import.meta.url);
// A file path, not a URL's pathname (which reads "/C:/..." on Windows).
const PROCESS_MAIN = fileURLToPath(new URL('./process-main.ts', import.meta.url));

export function startThread(name: string, init: WorkerInit): WorkerTransport {
  // The worker then finds the modules this thread already compiled (and type-stripped) in the cache.
  flushCompileCache();
  const worker = new Worker(THREAD_URL, { workerData: init, name, resourceLimits: workerHeapLimits() });
  return {
    kind: 'threads',
    id: worker.threadId,
    send: (msg) => worker.postMessage(msg),
    onMessage: (handler) => worker.on('message', handler),
    onError: (handler) => worker.on('error', handler),
    onExit: (handler) => worker.on('exit', handler),
    kill: () => void worker.terminate(),
  };
}

/**
 * Node flags for worker processes: the parent's (minus the test runner's and watch mode's own), plus the
 * young-generation cap worker threads get through resourceLimits (3 semi-spaces of 8 MB = 24 MB).
 */
export function processExecArgv(parent: readonly string[] = process.execArgv): string[] {
  const args = parent.filter((a) => !/^--(test|watch)\b/.test(a));
  if (workerHeapLimits()) args.push('--max-semi-space-size=8');
  return args;
}

let primaryReady = false;

/**
 * Round-robin hand-out by the primary, set before the first fork (it is frozen then): even on Windows, where
 * Node's default leaves the choice to the OS, and whatever NODE_CLUSTER_SCHED_POLICY says. The structured
 * ('advanced') serialization keeps Maps and Buffers across IPC, as postMessage does for threads.
 * Known limit of Node's hand-out: the one connection a worker has been sent but not yet acknowledged when it
 * dies is never closed by the primary (no session, so no deadline; its descriptor stays): one per crash.
 */
function setupPrimary(): void {
  if (primaryReady) return;
  primaryReady = true;
  cluster.schedulingPolicy = cluster.SCHED_RR;
  cluster.setupPrimary({
    exec: PROCESS_MAIN,
    args: [],
    execArgv: processExecArgv(),
    serialization: 'advanced',
    silent: false,
  });
}

/** Fork a worker process; it waits for `init` before doing anything. */
export function startProcess(init: WorkerInit): WorkerTransport {
  setupPrimary();
  flushCompileCache();
  const worker = cluster.fork({ MTPROXY_WORKER_INDEX: String(init.index) });
  const child = worker.process;
  const transport: WorkerTransport = {
    kind: 'processes',
    id: child.pid ?? -1,
    send: (msg) => {
      // A message to a process that is going away is dropped; its exit is handled separately.
      if (worker.isConnected()) worker.send(msg, undefined, undefined, ignoreSendError);
    },
    onMessage: (handler) => worker.on('message', handler),
    onError: (handler) => worker.on('error', handler),
    onExit: (handler) => worker.on('exit', (code, signal) => handler(code ?? (signal ? 128 : 1))),
    kill: () => void child.kill('SIGKILL'),
  };
  transport.send({ type: 'init', init });
  return transport;
}

function ignoreSendError(): void {}
