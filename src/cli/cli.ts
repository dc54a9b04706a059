/**
 * The CLI behind `mtproxy [command] [options]` (entry point: main.ts). Commands are the files in ./commands (file name = command name, each exports
 * `command`); `run` is the default. Errors an operator can fix (config, busy port) print one line, no stack.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pkg from '../../package.json' with { type: 'json' };
import { ConfigError } from '../config/load.ts';
import { discoverPublicAddress, type PublicAddress } from '../config/public-address.ts';
import type { Config } from '../config/types.ts';
import type { CliCommand, CliContext, OptionValues } from './command.ts';
import { commandHelp, generalHelp } from './help.ts';
import { STARTUP_ERROR_CODES } from '../runtime/bind-errors.ts';
import { errorCode } from '../runtime/errors.ts';
import { GLOBAL_OPTIONS, loadCliConfig, resolveConfigFile } from './config-source.ts';

const COMMANDS_DIR = new URL('./commands/', import.meta.url);
const DEFAULT_COMMAND = 'run';

export function commandNames(): string[] {
  return readdirSync(fileURLToPath(COMMANDS_DIR))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.endsWith('.test.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
}

export async function loadCommand(name: string): Promise<CliCommand | null> {
  if (!/^[a-z][a-z0-9-]*$/.test(name) || !commandNames().includes(name)) return null;
  const mod = (await import(new URL(`${name}.ts`, COMMANDS_DIR).href)) as { command?: CliCommand };
  return mod.command ?? null;
}

/** Every command, in name order. */
export async function loadCommands(): Promise<CliCommand[]> {
  return (await Promise.all(commandNames().map(loadCommand))).filter((c): c is CliCommand => c !== null);
}

/** Problems the operator fixes in the config or environment: one line, no stack. */
function isOperatorError(e: unknown): boolean {
  if (e instanceof ConfigError) return true;
  if (!(e instanceof Error)) return false;
  // Bind failures may arrive re-wrapped (from a worker), so they are recognised by their code too.
  return e.name === 'ListenError' || STARTUP_ERROR_CODES.has(errorCode(e, ''));
}

export interface MainIo {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  out?: (line: string) => void;
  err?: (line: string) => void;
  /** Whether `out` is a terminal; default: stdout's, when `out` is the default. */
  outIsTTY?: boolean;
  /** Finds the public address for links (default: interfaces, then the middle mode's IP lookup). */
  publicAddress?: (config: Config) => Promise<PublicAddress>;
  /** Questions for a person; default: on stdin when it is a terminal, else none. */
  ask?: ((question: string, fallback: string) => Promise<string>) | null;
  checkCover?: CliContext['checkCover'];
}

/** Reads one answer from the terminal. */
async function terminalAsk(question: string, fallback: string): Promise<string> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = (await rl.question(fallback ? `${question} [${fallback}]: ` : `${question}: `)).trim();
    return answer === '' ? fallback : answer;
  } finally {
    rl.close();
  }
}

/** Runs the CLI and resolves to the exit code (the process entry point below exits with it). */
export async function main(argv: string[], io: MainIo = {}): Promise<number> {
  const env = io.env ?? process.env;
  const cwd = io.cwd ?? process.cwd();
  const out = io.out ?? ((line: string) => process.stdout.write(line + '\n'));
  const err = io.err ?? ((line: string) => process.stderr.write(line + '\n'));
  const version = pkg.version;

  try {
    // First pass only finds the command name; the second validates everything against its options.
    const first = parseArgs({ args: argv, options: GLOBAL_OPTIONS, strict: false, allowPositionals: true });
    const name = first.positionals[0] ?? DEFAULT_COMMAND;
    const command = await loadCommand(name);
    if (!command) {
      if (first.values.help) {
        out(generalHelp(await loadCommands()));
        return 0;
      }
      err(`mtproxy: unknown command "${name}" (see mtproxy --help)`);
      return 2;
    }
    const options = { ...GLOBAL_OPTIONS, ...(command.options ?? {}) };
    let parsed: { values: OptionValues; positionals: string[] };
    try {
      parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true }) as typeof parsed;
    } catch (e) {
      err(`mtproxy ${command.name}: ${(e as Error).message.split('\n')[0]}`);
      return 2;
    }
    const { values } = parsed;
    if (values.version) {
      out(version);
      return 0;
    }
    if (values.help) {
      out(first.positionals.length === 0 ? generalHelp(await loadCommands()) : commandHelp(command));
      return 0;
    }
    const positionals =
      parsed.positionals[0] === command.name ? parsed.positionals.slice(1) : parsed.positionals;
    const ctx: CliContext = {
      positionals,
      values,
      env,
      cwd,
      version,
      outIsTTY: io.outIsTTY ?? (io.out === undefined && process.stdout.isTTY === true),
      out,
      err,
      configFile: () => resolveConfigFile(values, env, cwd),
      loadConfig: (opts) => loadCliConfig(values, env, cwd, opts),
      publicAddress: io.publicAddress ?? ((config) => discoverPublicAddress(config)),
      ask: io.ask !== undefined ? io.ask : io.out === undefined && process.stdin.isTTY ? terminalAsk : null,
      checkCover:
        io.checkCover ??
        (async (config, listener, domain) => {
          const { checkCoverDomain } = await import('../tools/doctor.ts');
          return checkCoverDomain(config, listener, domain, {});
        }),
    };
    return await command.run(ctx);
  } catch (e) {
    if (isOperatorError(e)) {
      err(`mtproxy: ${(e as Error).message}`);
      return 1;
    }
    err(`mtproxy: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
}
