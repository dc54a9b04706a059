/**
 * Small helpers on the normalised config that the relay needs at run time. They live apart from schema.ts so
 * that a worker, which receives an already-checked config, never loads the schema and its validator.
 */
import type { Config, ListenerConfig } from './types.ts';

export { formatHostPort } from '../runtime/host-port.ts';

/** How a listener's clients reach Telegram under `upstream.mode` (auto: middle proxies when it has an ad tag). */
export function upstreamKind(config: Config, l: ListenerConfig): 'direct' | 'middle' {
  const mode = config.upstream.mode;
  if (mode === 'auto') return l.adTag ? 'middle' : 'direct';
  return mode;
}
