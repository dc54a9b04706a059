import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { commandNames, loadCommand } from '../../src/cli/cli.ts';
import type { CliCommand } from '../../src/cli/command.ts';
import { GLOBAL_OPTIONS } from '../../src/cli/config-source.ts';
import { runCli } from '../helpers/cli.ts';

async function script(shell: string): Promise<string> {
  const r = await runCli(['completion', shell], process.cwd());
  assert.equal(r.code, 0, r.err.join('\n'));
  return r.out.join('\n');
}

/** What bash completes for the words typed so far (the last one being completed). */
function complete(bash: string, typed: string[]): string[] {
  const words = ['mtproxy', ...typed].map((w) => `'${w}'`).join(' ');
  const program = `${bash}\nCOMP_WORDS=(${words}); COMP_CWORD=${typed.length}; _mtproxy; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['--norc', '--noprofile', '-c', program], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
}

describe('mtproxy completion', () => {
  test('bash: commands, then the options of the command typed, skipping option values', async () => {
    const bash = await script('bash');
    execFileSync('bash', ['-n', '-c', bash]);
    assert.deepEqual(complete(bash, ['']), commandNames());
    assert.ok(commandNames().includes('init') && commandNames().includes('completion'));
    assert.deepEqual(complete(bash, ['li']), ['link', 'links']);
    assert.deepEqual(
      complete(bash, ['-c', 'mtproxy.toml', 'li']),
      ['link', 'links'],
      'the value of -c is skipped',
    );
    assert.deepEqual(complete(bash, ['link', '--p']).sort(), ['--png', '--port']);
    assert.ok(complete(bash, ['init', '--no-']).includes('--no-check'));
    assert.deepEqual(complete(bash, ['--ver']), ['--version']);
    assert.deepEqual(complete(bash, ['link', 'some-fi']), [], 'file names are left to the shell');
  });

  test('zsh: every command with its summary and every option with its description', async () => {
    const zsh = await script('zsh');
    assert.match(zsh, /^#compdef mtproxy\n/);
    const commands = (await Promise.all(commandNames().map(loadCommand))) as CliCommand[];
    for (const c of commands) {
      assert.ok(zsh.includes(`\n    '${c.name}:`), c.name);
      assert.ok(zsh.includes(`\n        ${c.name}) _arguments `), c.name);
      for (const name of Object.keys({ ...GLOBAL_OPTIONS, ...(c.options ?? {}) }))
        assert.match(zsh, new RegExp(`--${name}\\}?'?\\[`), `${c.name} --${name}`);
    }
    // Quotes balance on every line (an apostrophe in a description is written '\'').
    for (const line of zsh.split('\n')) {
      const quotes = line.replaceAll("'\\''", '').split("'").length - 1;
      assert.equal(quotes % 2, 0, line);
    }
  });

  test('a missing or unknown shell is a usage error', async () => {
    for (const args of [['completion'], ['completion', 'fish'], ['completion', 'bash', 'zsh']]) {
      const r = await runCli(args, process.cwd());
      assert.equal(r.code, 2);
      assert.deepEqual(r.err, ['mtproxy completion: usage: mtproxy completion bash|zsh']);
    }
  });
});
