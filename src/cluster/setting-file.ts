import { readFileSync } from 'node:fs';
import { MtpError } from '../runtime/errors.ts';

/** Reads a file a `[cluster]` setting names; a missing or unreadable one is one config error naming the setting. */
export function readSettingFile(setting: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new MtpError(
      'config',
      'MTP_ERR_CONFIG',
      `cluster.${setting}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}
