/**
 * Garbage-collector pacing for the relay.
 *
 * Every relayed chunk goes through `cipher.update`, which always returns a fresh buffer: a busy proxy makes
 * hundreds of MB/s of short-lived external (ArrayBuffer) memory while its JS heap barely grows, so young
 * collections, which would free those buffers, hardly ever run. V8 then starts a full mark-compact for
 * every 64 MB of external growth, i.e. every few tens of milliseconds under load (10–13 % of the relay's
 * CPU in the bench). A young collection every RELAY_BYTES_PER_MINOR_GC bytes of cipher output frees the
 * dead chunk buffers for a fraction of that (~0.3 ms each), and the full collections stop.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Cipher output between two young collections. Chosen by measurement, not derived: with longer intervals
 * full collections come back under many streams. Bench, direct, 32 streams, CPU-s per GB relayed:
 * 4 MB 1.5, 8 MB 1.35-1.5, 16 MB 1.7-1.8, 32 MB 1.6-2.5, 64 MB 2.6-2.7 (no young collections: 2.5-2.9).
 */
const RELAY_BYTES_PER_MINOR_GC = 8 * 1024 * 1024;

/**
 * Whether V8 counts external (ArrayBuffer) memory in its global allocation limit instead of adding it to
 * the old generation's. Without it, the forced young collections above keep landing while incremental
 * marking started for external growth is running, and each of those ends in a full mark-compact; with it,
 * far fewer full collections run. Measured (middle mode, 32 streams, medians of 7 runs, CPU-s per GB):
 * 1 worker 3.30 -> 3.22, 2 workers 3.64 -> 3.17. Flags are process-wide and read when limits are computed,
 * so setting it here (in the main thread or a worker) also covers isolates that already exist. Only on V8
 * 13 (Node 24), where it is known and off by default; V8 reports an unknown flag on stderr.
 */
function accountExternalMemoryInGlobalLimit(): void {
  const major = Number(process.versions.v8.split('.')[0]);
  if (major === 13) setFlagsFromString('--external-memory-accounted-in-global-limit');
}

let tuned = false;

/**
 * The process-wide V8 settings above, once per thread: called by whatever starts serving (the proxy, the
 * worker supervisor) before the first connection. Importing this module changes nothing by itself.
 */
export function tuneGarbageCollector(): void {
  if (tuned) return;
  tuned = true;
  accountExternalMemoryInGlobalLimit();
}

/**
 * Young generation of a worker thread, in MB: V8 then keeps each semi-space at 8 MB (it is 32 MB in Node 24
 * once grown, 64 MB of new space without pointer compression). A proxy opening sessions fast has many
 * survivors, so V8 grows the young generation to its maximum and keeps it, which at 5,000 idle direct
 * sessions is about 10 KiB of RSS each. Capped, idle RSS per session (bench, --max-semi-space-size=8):
 * direct at 5,000 16 -> 10 KiB, middle at 15,000 12 -> 6.3 KiB; relay CPU-s per GB unchanged (the relay's
 * garbage is mostly external memory, collected by the forced young collections above).
 */
const WORKER_YOUNG_GENERATION_MB = 24;

/**
 * Resource limits for a worker thread's isolate; none when the operator sized the young generation with a
 * node flag (NODE_OPTIONS or the command line), which then applies to the workers too.
 */
export function workerHeapLimits(): { maxYoungGenerationSizeMb: number } | undefined {
  const flags = `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
  if (/semi[-_]space|young[-_]generation/.test(flags)) return undefined;
  return { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB };
}

type GcFunction = (options: {
  type: 'minor' | 'major';
  execution?: 'sync' | 'async';
  flavor?: 'regular' | 'last-resort';
}) => void;

let collect: GcFunction | null | undefined;
let allocated = 0;

function gcFunction(): GcFunction | null {
  // Started with --expose-gc: use it and leave the flag alone.
  const exposed = (globalThis as { gc?: GcFunction }).gc;
  if (typeof exposed === 'function') return exposed;
  try {
    // The gc() extension is installed in contexts created while the flag is set: one context for us, then
    // the flag goes back so that later contexts and worker threads do not get a global gc().
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as GcFunction;
  } catch {
    return null;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

/** Count `bytes` of fresh cipher output; runs a young collection when enough has accumulated. */
export function relayAllocated(bytes: number): void {
  allocated += bytes;
  if (allocated < RELAY_BYTES_PER_MINOR_GC) return;
  allocated = 0;
  if (collect === undefined) collect = gcFunction();
  collect?.({ type: 'minor' });
}

/** How often a thread looks whether a burst of sessions has ended. */
const SHRINK_CHECK_MS = 10_000;
/** Sessions since the last shrink that make one worth it (a full collection of an idle heap is ~10 ms). */
const SHRINK_AFTER_CONNECTIONS = 1000;
/** At most this many new connections in one check interval count as quiet. */
const QUIET_CONNECTIONS = 50;

/**
 * Give back the memory of a burst once it is over. During a burst of new sessions V8 grows the young
 * generation to its cap and the old generation with it; when the burst ends, no allocation triggers another
 * collection, so the heap keeps its peak size (tens of MB per thread) for as long as the proxy stays quiet.
 * A check every SHRINK_CHECK_MS: once SHRINK_AFTER_CONNECTIONS connections came in since the last shrink and
 * the last interval was quiet, one full collection runs, which also shrinks the young generation and frees
 * the ArrayBuffers (socket and cipher buffers) that only a full collection finds dead.
 */
export function startHeapShrinker(connectionsTotal: () => number): { stop(): void } {
  collectStartupGarbage();
  let last = connectionsTotal();
  let pending = 0;
  const timer = setInterval(() => {
    const now = connectionsTotal();
    const delta = now - last;
    last = now;
    pending += delta;
    if (delta > QUIET_CONNECTIONS || pending < SHRINK_AFTER_CONNECTIONS) return;
    pending = 0;
    collectFull();
  }, SHRINK_CHECK_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** Delay of the collection after start-up (workers bind one after the other; the config was just parsed). */
const STARTUP_COLLECT_MS = 1000;

/**
 * One full collection shortly after start-up: loading and compiling the modules, parsing the config and
 * starting the workers leave garbage (a few MB per thread) and a grown young generation that nothing
 * collects while the proxy waits for its first client.
 */
export function collectStartupGarbage(): void {
  setTimeout(collectFull, STARTUP_COLLECT_MS).unref();
}

/**
 * A memory-reducing full collection (V8's "last resort": it collects until nothing more is freed, shrinks the
 * young generation and hands the pooled pages back to the system). A regular full collection frees the
 * objects but keeps the grown young generation and the pooled pages, so RSS stayed where the burst left it
 * (2 workers at start: 168 MB with regular collections, 122 MB with these; measured in bench/README.md).
 */
function collectFull(): void {
  if (collect === undefined) collect = gcFunction();
  collect?.({ type: 'major', flavor: 'last-resort' });
}
