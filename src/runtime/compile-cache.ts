/**
 * Node's module compile cache, which also keeps the type-stripped form of each .ts file. Without it, every
 * thread that loads a .ts file instantiates the type stripper (a WebAssembly module whose memory never shrinks),
 * about 13-27 MB of RSS per thread: with the cache warm, neither the primary nor a worker loads it.
 *
 * The directory is NODE_COMPILE_CACHE when set (the systemd unit points it at its CacheDirectory), otherwise
 * Node's default under the temporary directory. It is exported in the environment so that worker threads and
 * worker processes use the same cache; an unwritable directory only means no cache.
 */
import module from 'node:module';

export function enableCompileCache(): void {
  if (typeof module.enableCompileCache !== 'function') return;
  try {
    const result = module.enableCompileCache(process.env.NODE_COMPILE_CACHE || undefined);
    if (result.directory && !process.env.NODE_COMPILE_CACHE)
      process.env.NODE_COMPILE_CACHE = result.directory;
  } catch {
    // No cache: everything still works, each thread strips types itself.
  }
}

/** Write what this thread compiled so far, so that workers started next find it (the cache is written at exit otherwise). */
export function flushCompileCache(): void {
  try {
    module.flushCompileCache?.();
  } catch {
    // As above.
  }
}
