/**
 * Body of one worker process (node:cluster): the common worker runtime on listeners the primary owns (it
 * accepts and hands each connection to the next process in turn), asking the primary for the replay set
 * and the max_connections counters. It waits for its `init` message first.
 */
import { logger } from '../log.ts';
import type { FromWorker, ToWorker } from './protocol.ts';
import { PrimaryCounterStore, PrimaryReplayGuard, PrimaryStateClient } from './primary-state.ts';
import { runWorker } from './worker-runtime.ts';

if (typeof process.send !== 'function') throw new Error('a worker process runs under the supervisor');

const send = (msg: FromWorker) => {
  if (process.connected) process.send!(msg);
};
const state = new PrimaryStateClient(send);
// The supervisor stops workers by message: signals sent to the whole process group (Ctrl-C, a service
// manager) must not cut sessions short before it asks. If the primary dies, cluster ends this process.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});
process.on('disconnect', () => state.failAll(new Error('the primary process is gone')));

let handle: ((msg: ToWorker) => void) | null = null;

process.on('message', (msg: ToWorker) => {
  if (msg.type === 'answer') {
    state.answer(msg.id, msg.value);
    return;
  }
  if (msg.type === 'init') {
    if (handle) return;
    const { init } = msg;
    const replay = new PrimaryReplayGuard(state, init.config.replay.enabled);
    handle = runWorker({
      init,
      log: logger.child({ worker: init.index }),
      send,
      sendAndEnd(last: FromWorker, exitCode: number) {
        if (!process.connected) process.exit(exitCode);
        process.send!(last, undefined, undefined, () => process.exit(exitCode));
      },
      replay,
      counters: new PrimaryCounterStore(state),
      reusePort: false,
      configApplied(config) {
        replay.enabled = config.replay.enabled;
      },
    });
    return;
  }
  handle?.(msg);
});
