/**
 * The help texts, all built from the command specs (`commands/*.ts`) and GLOBAL_OPTIONS: `mtproxy --help`,
 * `mtproxy COMMAND --help`, and the README's CLI reference (scripts/gen-cli-docs.ts writes it), so the
 * manual and the program say the same thing in the same words.
 */
import type { CliCommand, OptionSpec } from './command.ts';
import { ENVIRONMENT_ONLY, GLOBAL_OPTIONS } from './config-source.ts';

/** Help lines are wrapped to this many columns (the option table is not). */
const WIDTH = 100;

/** A paragraph wrapped at word boundaries, each line prefixed with `indent`. */
export function wrap(text: string, width = WIDTH, indent = ''): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(indent + line);
  return lines;
}

function flagText(name: string, spec: OptionSpec): string {
  return `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.valueName ? ` ${spec.valueName}` : ''}`;
}

function optionLines(options: Record<string, OptionSpec>): string[] {
  const rows = Object.entries(options).map(([name, spec]) => {
    const flag = (spec.short ? '' : '    ') + flagText(name, spec);
    return [flag, spec.env ? `${spec.description} (env ${spec.env})` : spec.description] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length));
  return rows.map(([f, d]) => `  ${f.padEnd(width)}  ${d}`);
}

export function generalHelp(commands: CliCommand[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const envWidth = Math.max(...Object.keys(ENVIRONMENT_ONLY).map((k) => k.length));
  return [
    'Usage: mtproxy [command] [options]',
    '',
    'Telegram MTProto proxy. Without a command it runs the proxy.',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Options:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    'Environment:',
    ...Object.entries(ENVIRONMENT_ONLY).map(([k, v]) => `  ${k.padEnd(envWidth)}  ${v}`),
    '',
    'Run `mtproxy COMMAND --help` for the options of one command.',
  ].join('\n');
}

/** What `mtproxy COMMAND --help` prints before the global options (the README shows this part). */
export function commandOwnHelp(c: CliCommand): string {
  return [
    `Usage: mtproxy ${c.usage}`,
    '',
    c.summary,
    ...(c.details ? ['', ...wrap(c.details)] : []),
    ...(c.options && Object.keys(c.options).length > 0 ? ['', 'Options:', ...optionLines(c.options)] : []),
  ].join('\n');
}

export function commandHelp(c: CliCommand): string {
  return [commandOwnHelp(c), '', 'Global options:', ...optionLines(GLOBAL_OPTIONS)].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// The README's CLI reference

export const CLI_BEGIN_MARKER =
  '<!-- BEGIN CLI REFERENCE: generated from src/cli/commands and src/cli/config-source.ts by scripts/gen-cli-docs.ts, do not edit -->';
export const CLI_END_MARKER = '<!-- END CLI REFERENCE -->';

/** A table cell: pipes escaped (also inside code spans, as GitHub's tables need). */
function cell(text: string): string {
  return text.replaceAll('|', '\\|');
}

/** The command's description as one sentence run: the summary, then the details (the same words as --help). */
export function commandDescription(c: CliCommand): string {
  return c.details ? `${c.summary}. ${c.details}` : `${c.summary}.`;
}

export function renderCliReference(commands: CliCommand[]): string {
  const lines = [
    '| Command | What it does |',
    '|---|---|',
    ...commands.map((c) => `| ${cell(`\`mtproxy ${c.usage}\``)} | ${cell(commandDescription(c))} |`),
    '',
    'Options every command takes; for a one-listener proxy they (and the variables) configure the first',
    'listener without a file. A flag wins over a variable, both win over the config file.',
    '',
    '| Flag | Variable | Meaning |',
    '|---|---|---|',
    ...Object.entries(GLOBAL_OPTIONS).map(
      ([name, spec]) =>
        `| ${cell(`\`${flagText(name, spec)}\``)} | ${spec.env ? `\`${spec.env}\`` : ''} | ${cell(spec.description)} |`,
    ),
    ...Object.entries(ENVIRONMENT_ONLY).map(([k, v]) => `| | \`${k}\` | ${cell(v)} |`),
    '',
    '<details><summary>What <code>mtproxy COMMAND --help</code> prints for each command (before the options above)</summary>',
    '',
    '```text',
    commands.map(commandOwnHelp).join('\n\n'),
    '```',
    '',
    '</details>',
  ];
  return lines.join('\n');
}
