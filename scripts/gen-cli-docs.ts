/**
 * Writes the README's CLI reference (the command table, the global flags and each command's --help) from the
 * command specs, the same source `mtproxy --help` prints from. `node scripts/gen-cli-docs.ts` rewrites the part
 * of README.md between the markers; `--check` only reports (exit 1) when it is out of date.
 * test/cli/help.test.ts runs the same check.
 */
import { fileURLToPath } from 'node:url';
import { loadCommands } from '../src/cli/cli.ts';
import type { CliCommand } from '../src/cli/command.ts';
import { CLI_BEGIN_MARKER, CLI_END_MARKER, renderCliReference } from '../src/cli/help.ts';
import { regenerateReadme, replaceMarkedBlock } from './readme-block.ts';

/** The README with its CLI reference replaced; throws when the markers are missing. */
export function updateCliReference(readme: string, commands: CliCommand[]): string {
  return replaceMarkedBlock(readme, CLI_BEGIN_MARKER, CLI_END_MARKER, renderCliReference(commands));
}

async function main(): Promise<void> {
  const commands = await loadCommands();
  regenerateReadme('CLI reference', 'scripts/gen-cli-docs.ts', (readme) =>
    updateCliReference(readme, commands),
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
