/**
 * The shape of a CLI command. Each command lives in its own file under `commands/` and exports `command`;
 * the file name is the command name, so adding a command is adding one file.
 */
import type { ParseArgsOptionDescriptor } from 'node:util';
import type { PublicAddress } from '../config/public-address.ts';
import type { Config, ListenerConfig } from '../config/types.ts';
import type { CheckResult } from '../tools/doctor.ts';

export type OptionSpec = ParseArgsOptionDescriptor & {
  description: string;
  /** Placeholder shown in help for options that take a value. */
  valueName?: string;
  /** The environment variable that sets the same thing (shown in help after the description). */
  env?: string;
};

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export interface LoadedConfig {
  config: Config;
  /** The file it came from (null when built from flags alone). */
  file: string | null;
  /** Set when this call created a config file (first start without one). */
  created: string | null;
}

export interface CliContext {
  /** Arguments after the command name that are not options. */
  positionals: string[];
  /** Global and command options, already validated by parseArgs. */
  values: OptionValues;
  env: NodeJS.ProcessEnv;
  cwd: string;
  version: string;
  /** Whether `out` writes to a terminal (a person reads it: QR codes, colours). */
  outIsTTY: boolean;
  out(line: string): void;
  err(line: string): void;
  /** The config file the command should use (`--config`, `MTP_CONFIG`, or `./mtproxy.toml` if present). */
  configFile(): string | null;
  /**
   * The effective config: the file plus flag/environment overrides. With `createIfMissing` and no file and no
   * secret given, a new secret is generated and `mtproxy.toml` is written so the links stay the same next time.
   * Throws ConfigError (one line).
   */
  loadConfig(opts?: { createIfMissing?: boolean }): Promise<LoadedConfig>;
  /** The public address for links without public_host (config/public-address.ts; injectable in tests). */
  publicAddress(config: Config): Promise<PublicAddress>;
  /** Asks a person at the terminal (the answer, or `fallback` when empty); null when stdin is not a terminal. */
  ask: ((question: string, fallback: string) => Promise<string>) | null;
  /** The cover-domain check of `doctor` (injectable in tests). */
  checkCover(config: Config, listener: ListenerConfig, domain: string): Promise<CheckResult[]>;
}

export interface CliCommand {
  name: string;
  /** One line for `mtproxy --help`. */
  summary: string;
  /** More about it, one paragraph: printed by `mtproxy COMMAND --help` and in the README's command table. */
  details?: string;
  /** Usage line(s) after `mtproxy`, e.g. `link [--domain D]`. */
  usage: string;
  options?: Record<string, OptionSpec>;
  /** Resolves to the process exit code. */
  run(ctx: CliContext): Promise<number> | number;
}
