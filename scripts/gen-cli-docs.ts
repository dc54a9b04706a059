/**
 * Writes the README's CLI reference (the command table, the global flags and each command's --help) from the
 * command specs, the same source `mtproxy --help` prints from. `node scripts/gen-cli-docs.ts` rewrites the part
 * of README.md between the markers; `--check` only reports (exit 1) when it is out of date.
 * test/cli/help.test.ts runs the same check.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadCommands } from '../src/cli/cli.ts';
import { updateCliReference } from '../src/cli/help.ts';

async function main(): Promise<void> {
  const path = fileURLToPath(new URL('../README.md', import.meta.url));
  const current = readFileSync(path, 'utf8');
  const next = updateCliReference(current, await loadCommands());
  if (process.argv.includes('--check')) {
    if (next !== current) {
      console.error('README.md: the CLI reference is out of date; run node scripts/gen-cli-docs.ts');
      process.exitCode = 1;
    }
    return;
  }
  if (next !== current) {
    writeFileSync(path, next);
    console.log('README.md: CLI reference updated');
  } else {
    console.log('README.md: CLI reference already up to date');
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
