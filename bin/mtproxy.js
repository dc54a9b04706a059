#!/usr/bin/env node
// Launcher for the TypeScript sources. Node >= 22.18 strips types by default; older 22.x needs the flag,
// so re-run ourselves with it instead of asking operators to remember it.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
if (process.features.typescript) {
  await import(entry);
} else {
  const r = spawnSync(process.execPath, ['--experimental-strip-types', '--no-warnings', entry, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}
