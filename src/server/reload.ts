/**
 * One reload, the same for the single-process proxy and the worker supervisor: load, apply, and record the
 * outcome in the stats only once it is known, so a scrape never sees a reload without its result.
 */
import type { ReloadOutcome } from '../admin/server.ts';
import { loadConfigFile } from '../config/load.ts';
import type { Config } from '../config/types.ts';
import type { Logger } from '../log.ts';
import type { Stats } from '../metrics/stats.ts';

/** Reads the config file the running config came from; fails when it came from no file. */
export function configFileLoader(file: string | null): () => Promise<Config> {
  if (!file) return () => Promise.reject(new Error('no config file to reload from'));
  return () => loadConfigFile(file);
}

export async function reloadConfig(
  load: () => Promise<Config>,
  apply: (next: Config) => Promise<void>,
  stats: Stats,
  log: Logger,
  doneFields: Record<string, unknown> = {},
): Promise<ReloadOutcome> {
  let result: ReloadOutcome;
  try {
    await apply(await load());
    result = { ok: true };
  } catch (e) {
    result = { ok: false, error: (e as Error).message.split('\n')[0] };
  }
  stats.reloadsTotal++;
  stats.lastReloadAt = Date.now();
  stats.lastReloadOk = result.ok;
  if (!result.ok) {
    stats.reloadFailures++;
    log.error({ error: result.error }, 'reload refused; the running configuration stays');
  } else {
    log.info(doneFields, 'reload done');
  }
  return result;
}
