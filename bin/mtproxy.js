#!/usr/bin/env node
// Launcher for the TypeScript sources. Node >= 22.18 strips types by default; 22.6-22.17 need a flag, so we
// re-run ourselves with it instead of asking operators to remember it. An older Node (a distribution's) uses
// the Node 24 that `npm ci` puts into node_modules when there is one, or says clearly what is missing.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

// glibc gives every thread that allocates its own malloc arena (up to 8 per core) and returns little of it:
// after a burst of sessions, the worker threads' freed socket and cipher buffers stay in the arenas as RSS.
// Two arenas give part of it back; the rest stays until a malloc_trim(), for which Node has no binding.
// jemalloc gives freed pages back by itself (its background thread purges them within seconds), so when the
// system has it (Debian/Ubuntu: libjemalloc2) the launcher preloads it; MTPROXY_MALLOC=system keeps glibc's,
// and an operator's own LD_PRELOAD, MALLOC_CONF or MALLOC_ARENA_MAX is kept (bench/README.md, memory at rest).
// Both are read when the process starts, so the launcher replaces itself (same pid, signals and descriptors)
// once with them set.
const JEMALLOC_PATHS = [
  '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
  '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2',
  '/usr/lib64/libjemalloc.so.2',
  '/usr/lib/libjemalloc.so.2',
  '/usr/local/lib/libjemalloc.so.2',
];

const JEMALLOC_CONF = 'background_thread:true,narenas:2,dirty_decay_ms:2000,muzzy_decay_ms:0';

/** What the environment gains before the proxy runs (empty: nothing to re-exec for). */
function allocatorEnv(env) {
  const add = {};
  if (env.MALLOC_ARENA_MAX === undefined) add.MALLOC_ARENA_MAX = '2';
  const jemalloc =
    env.MTPROXY_MALLOC !== 'system' && !env.LD_PRELOAD
      ? JEMALLOC_PATHS.find((p) => existsSync(p))
      : undefined;
  if (jemalloc) {
    add.LD_PRELOAD = jemalloc;
    // Two arenas as with glibc's above (jemalloc's default of four per core costs ~10 MB at rest); unused pages
    // go back after 2 s, with MADV_DONTNEED rather than the lazy MADV_FREE that RSS keeps counting.
    if (env.MALLOC_CONF === undefined) add.MALLOC_CONF = JEMALLOC_CONF;
  }
  return add;
}

if (process.platform === 'linux' && typeof process.execve === 'function') {
  const add = allocatorEnv(process.env);
  if (Object.keys(add).length > 0) {
    try {
      process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
        ...process.env,
        ...add,
      });
    } catch {
      // Carry on with the default allocator settings.
    }
  }
}
const pinnedNode = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
const [major, minor] = process.versions.node.split('.').map(Number);
const canStripTypes = major > 22 || (major === 22 && minor >= 6);

/** Run the CLI in a child Node, passing signals on (SIGHUP reloads, SIGTERM drains) and its exit code back. */
function runWith(nodePath, flags) {
  const child = spawn(nodePath, [...flags, entry, ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  child.on('error', (err) => {
    console.error(`mtproxy: cannot start ${nodePath}: ${err.message}`);
    process.exit(1);
  });
}

if (process.features.typescript) {
  // Node's compile cache keeps the type-stripped sources: with it warm, no thread loads the type stripper
  // (13-27 MB of RSS each). Worker threads read the same cache through the environment.
  try {
    const cache = module.enableCompileCache?.(process.env.NODE_COMPILE_CACHE || undefined);
    if (cache?.directory && !process.env.NODE_COMPILE_CACHE) process.env.NODE_COMPILE_CACHE = cache.directory;
  } catch {}
  await import(entry);
} else if (canStripTypes) {
  runWith(process.execPath, ['--experimental-strip-types', '--no-warnings']);
} else if (existsSync(pinnedNode)) {
  runWith(pinnedNode, []);
} else {
  console.error(
    `mtproxy: Node.js 22.12 or newer is needed (this is ${process.version}); install Node.js 24, or run \`npm ci\` in the checkout and use \`npm start\` / \`npx mtproxy\``,
  );
  process.exit(1);
}
