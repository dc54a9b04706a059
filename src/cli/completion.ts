/**
 * Shell completion scripts for bash and zsh, generated from the command list and each command's options (the
 * same source as `--help`), so a new command or option completes without touching this file.
 */
import type { CliCommand, OptionSpec } from './command.ts';

interface Flag {
  long: string;
  short: string | null;
  takesValue: boolean;
  description: string;
}

function flags(options: Record<string, OptionSpec>): Flag[] {
  return Object.entries(options).map(([name, spec]) => ({
    long: `--${name}`,
    short: spec.short ? `-${spec.short}` : null,
    takesValue: spec.type === 'string',
    description: spec.description,
  }));
}

/** A command's own options and the global ones, each once (a command's own spec wins, as in parsing). */
function optionsOf(c: CliCommand, global: Record<string, OptionSpec>): Flag[] {
  return flags({ ...global, ...(c.options ?? {}) });
}

function words(list: Flag[]): string {
  return list.flatMap((f) => (f.short ? [f.long, f.short] : [f.long])).join(' ');
}

/** Names are [a-z0-9-] (commands) or option names: safe inside double quotes in bash. */
export function bashCompletion(commands: CliCommand[], global: Record<string, OptionSpec>): string {
  const globalFlags = flags(global);
  const valued = new Set<string>();
  for (const f of [...globalFlags, ...commands.flatMap((c) => optionsOf(c, global))]) {
    if (!f.takesValue) continue;
    valued.add(f.long);
    if (f.short) valued.add(f.short);
  }
  const cases = commands.map((c) => `    ${c.name}) opts="${words(optionsOf(c, global))}" ;;`);
  return [
    '# bash completion for mtproxy; load it with: source <(mtproxy completion bash)',
    '_mtproxy() {',
    '  local cur=${COMP_WORDS[COMP_CWORD]} cmd="" i opts',
    `  local valued=" ${[...valued].sort().join(' ')} "`,
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    '    case ${COMP_WORDS[i]} in',
    '      -*) [[ $valued == *" ${COMP_WORDS[i]} "* ]] && ((i++)) ;;',
    '      *) cmd=${COMP_WORDS[i]}; break ;;',
    '    esac',
    '  done',
    '  case $cmd in',
    ...cases,
    `    *) opts="${words(globalFlags)}" ;;`,
    '  esac',
    '  if [[ -z $cmd && $cur != -* ]]; then',
    `    COMPREPLY=($(compgen -W "${commands.map((c) => c.name).join(' ')}" -- "$cur"))`,
    '  elif [[ $cur == -* ]]; then',
    '    COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
    '  else',
    '    COMPREPLY=()',
    '  fi',
    '}',
    'complete -o default -F _mtproxy mtproxy',
    '',
  ].join('\n');
}

/** Text inside a single-quoted zsh word. */
function zshQuoted(text: string): string {
  return text.replace(/'/g, "'\\''");
}

/** An _arguments description: brackets and colons escaped, then quoted. */
function zshText(text: string): string {
  return zshQuoted(text.replace(/([[\]:\\])/g, '\\$1'));
}

function zshSpecs(list: Flag[]): string[] {
  return list.map((f) => {
    const names = f.short ? `{${f.short},${f.long}}` : f.long;
    const value = f.takesValue ? `:${f.long.slice(2)}:_files` : '';
    const spec = `'[${zshText(f.description)}]${value}'`;
    return f.short ? `${names}${spec}` : `'${f.long}${spec.slice(1)}`;
  });
}

export function zshCompletion(commands: CliCommand[], global: Record<string, OptionSpec>): string {
  const globalSpecs = zshSpecs(flags(global));
  const described = commands.map(
    (c) => `    '${c.name}:${zshQuoted(c.summary.replace(/([:\\])/g, '\\$1'))}'`,
  );
  const cases = commands.map(
    (c) => `        ${c.name}) _arguments ${zshSpecs(optionsOf(c, global)).join(' ')} '*:file:_files' ;;`,
  );
  return [
    '#compdef mtproxy',
    '# zsh completion for mtproxy; load it with: source <(mtproxy completion zsh)',
    '_mtproxy() {',
    '  local curcontext=$curcontext state line',
    '  local -a commands',
    '  commands=(',
    ...described,
    '  )',
    `  _arguments -C ${globalSpecs.join(' ')} '1: :->command' '*:: :->option'`,
    '  case $state in',
    "    command) _describe -t commands 'mtproxy command' commands ;;",
    '    option)',
    '      case $words[1] in',
    ...cases,
    '      esac',
    '      ;;',
    '  esac',
    '}',
    'if [[ $zsh_eval_context[-1] == loadautofunc ]]; then _mtproxy "$@"; else compdef _mtproxy mtproxy; fi',
    '',
  ].join('\n');
}
