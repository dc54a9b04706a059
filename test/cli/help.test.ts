/**
 * `--help` and the README's CLI reference come from the same specs: the README block is what the generator
 * writes from them today, and `mtproxy COMMAND --help` prints the very text the README shows for it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, test } from 'node:test';
import { loadCommands } from '../../src/cli/cli.ts';
import { CLI_BEGIN_MARKER, CLI_END_MARKER, commandDescription, wrap } from '../../src/cli/help.ts';
import { updateCliReference } from '../../scripts/gen-cli-docs.ts';
import { runCli } from '../helpers/cli.ts';
import { run as spawnCli } from './spawn-cli.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const block = readme.slice(readme.indexOf(CLI_BEGIN_MARKER), readme.indexOf(CLI_END_MARKER));
const words = (text: string) => text.replace(/\s+/g, ' ').trim();

describe('--help and the README', () => {
  test('the README has the current CLI reference (run: node scripts/gen-cli-docs.ts)', async () => {
    assert.ok(readme.includes(CLI_BEGIN_MARKER) && readme.includes(CLI_END_MARKER));
    assert.equal(updateCliReference(readme, await loadCommands()), readme);
  });

  test('mtproxy COMMAND --help prints, before the global options, the text the README shows', async () => {
    const commands = await loadCommands();
    assert.ok(commands.length >= 10);
    for (const c of commands) {
      const { code, out } = await runCli([c.name, '--help'], tmpdir());
      assert.equal(code, 0, c.name);
      const help = out.join('\n');
      const own = help.slice(0, help.indexOf('\n\nGlobal options:\n'));
      assert.ok(own.startsWith(`Usage: mtproxy ${c.usage}\n`), c.name);
      assert.ok(block.includes(`${own}\n`), `README shows the help of ${c.name}`);
      // The table row says the same, word for word: the summary, then the details.
      const row = block.split('\n').find((line) => line.startsWith(`| \`mtproxy ${c.name}`));
      assert.ok(row, c.name);
      const description = row.split(' | ').at(-1)!.replace(/ \|$/, '');
      assert.equal(words(description.replaceAll('\\|', '|')), words(commandDescription(c)));
      assert.ok(words(help).includes(words(c.summary)) && words(help).includes(words(c.details ?? '')));
    }
  });

  test('the global flags of --help are the README table, word for word', async () => {
    const { out } = await runCli(['--help'], tmpdir());
    const help = out.join('\n');
    for (const line of block.split('\n').filter((l) => /^\| `-/.test(l))) {
      const [flag, variable, meaning] = line.split(' | ').map((cell) => cell.replace(/^\| |`| \|$/g, ''));
      const helpLine = help.split('\n').find((l) => l.trim().startsWith(`${flag!.replaceAll('\\|', '|')} `));
      assert.ok(helpLine, flag);
      assert.ok(helpLine.includes(meaning!.trim()), flag);
      if (variable!.trim()) assert.ok(helpLine.endsWith(`(env ${variable!.trim()})`), flag);
    }
    for (const c of await loadCommands())
      assert.match(help, new RegExp(`\\n  ${c.name} +${c.summary.slice(0, 20).replace(/[()[\]]/g, '\\$&')}`));
  });

  test('the installed program prints the same (a real process)', async () => {
    const commands = await loadCommands();
    const doctor = commands.find((c) => c.name === 'doctor')!;
    const r = await spawnCli(['doctor', '--help'], tmpdir());
    assert.equal(r.code, 0);
    const own = r.stdout.slice(0, r.stdout.indexOf('\n\nGlobal options:\n'));
    assert.ok(block.includes(`${own}\n`));
    assert.ok(r.stdout.includes(wrap(doctor.details ?? '')[0]!));
  });
});
