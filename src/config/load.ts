/**
 * Reading the TOML config: text or file -> validated `Config`. Every failure is a ConfigError whose message is
 * one line naming the key (or the file position for TOML syntax errors).
 */
import { readFile } from 'node:fs/promises';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { Config } from './types.ts';
import { ConfigError, type ParseOptions, parseConfigObject } from './schema.ts';

export { ConfigError, type ParseOptions } from './schema.ts';

/** TOML text -> the plain object the schema validates. */
function parseTomlText(text: string, source = 'config'): Record<string, unknown> {
  try {
    return parseToml(text) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof TomlError) {
      const firstLine = e.message.split('\n')[0]!.replace(/^Invalid TOML document:\s*/, '');
      throw new ConfigError(`${source}:${e.line}:${e.column}`, `invalid TOML: ${firstLine}`);
    }
    throw new ConfigError(source, `invalid TOML: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** TOML text, or an already parsed TOML-shaped object (snake_case keys), -> Config. */
export function parseConfig(input: string | Record<string, unknown>, options: ParseOptions = {}): Config {
  const object = typeof input === 'string' ? parseTomlText(input, options.file ?? 'config') : input;
  return parseConfigObject(object, options);
}

export async function readConfigObject(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'file not found'
        : code === 'EACCES'
          ? 'permission denied'
          : `cannot read (${code})`;
    throw new ConfigError(file, `expected a readable config file: ${why}`);
  }
  return parseTomlText(text, file);
}

export async function loadConfigFile(file: string): Promise<Config> {
  return parseConfigObject(await readConfigObject(file), { file });
}
