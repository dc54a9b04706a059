/**
 * The README's generated parts (the CLI and the configuration reference) sit between a begin and an end marker
 * each; both generators replace their part, or with `--check` only report that it is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** `text` with what lies between the two markers replaced by `body` (on lines of its own); throws without them. */
export function replaceMarkedBlock(text: string, begin: string, end: string, body: string): string {
  const start = text.indexOf(begin);
  const stop = text.indexOf(end);
  if (start < 0 || stop < start) throw new Error(`README.md: the markers ${begin} ... ${end} are not found`);
  return `${text.slice(0, start + begin.length)}\n${body}\n${text.slice(stop)}`;
}

/**
 * Rewrites README.md with `update` (or, with --check in argv, sets exit code 1 when it would change it).
 * `what` names the part in the messages, `script` the command that regenerates it.
 */
export function regenerateReadme(what: string, script: string, update: (readme: string) => string): void {
  const path = fileURLToPath(new URL('../README.md', import.meta.url));
  const current = readFileSync(path, 'utf8');
  const next = update(current);
  if (process.argv.includes('--check')) {
    if (next !== current) {
      console.error(`README.md: the ${what} is out of date; run node ${script}`);
      process.exitCode = 1;
    }
    return;
  }
  if (next !== current) {
    writeFileSync(path, next);
    console.log(`README.md: ${what} updated`);
  } else {
    console.log(`README.md: ${what} already up to date`);
  }
}
