/**
 * Body of one worker thread: the common worker runtime on ports bound with SO_REUSEPORT, with the replay set
 * and the max_connections counters in the supervisor's shared memory.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { logger } from '../log.ts';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.ts';
import { SharedCounterStore } from './shared-counters.ts';
import { SharedReplayGuard } from './shared-replay.ts';
import { runWorker } from './worker-runtime.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
if (!init.replay || !init.counters) throw new Error('a worker thread needs the shared state buffers');

const handle = runWorker({
  init,
  log: logger.child({ worker: init.index, thread: threadId }),
  send: (msg: FromWorker) => port.postMessage(msg),
  sendAndEnd(msg: FromWorker, exitCode: number) {
    port.postMessage(msg);
    if (exitCode === 0) port.close();
    else process.exit(exitCode);
  },
  replay: SharedReplayGuard.attach(init.replay, init.index + 1),
  counters: SharedCounterStore.attach(init.counters, init.index),
  reusePort: true,
});
port.on('message', (msg: ToWorker) => handle(msg));
