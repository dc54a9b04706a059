/**
 * One base for every error the proxy raises on purpose. Each carries a stable `code` (what metrics count and
 * logs print as the reason) and the `layer` that raised it; messages never contain key material or secrets.
 *
 * The brand is a registered symbol rather than `instanceof` so an error still counts as ours when it crossed
 * a module instance boundary (a worker that loaded the sources twice, a test importing through another path).
 */
const BRAND: unique symbol = Symbol.for('mtproxy.error') as never;

export type ErrorLayer =
  | 'protocol'
  | 'session'
  | 'upstream'
  | 'config'
  | 'policy'
  | 'server'
  | 'admin'
  | 'client'
  | 'cover';

export class MtpError<C extends string = string> extends Error {
  readonly [BRAND] = true;
  readonly code: C;
  readonly layer: ErrorLayer;
  constructor(layer: ErrorLayer, code: C, message: string) {
    super(message);
    this.name = 'MtpError';
    this.layer = layer;
    this.code = code;
  }
}

export function isMtpError(e: unknown): e is MtpError {
  return typeof e === 'object' && e !== null && (e as { [BRAND]?: unknown })[BRAND] === true;
}

/**
 * The stable reason for any thrown value: our own code, a system errno code (ECONNREFUSED, EMFILE, ...) when
 * Node raised it, else `fallback`. The one place that reads `.code` off an unknown value.
 */
export function errorCode(e: unknown, fallback = 'MTP_ERR_INTERNAL'): string {
  if (typeof e !== 'object' || e === null) return fallback;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && code !== '' ? code : fallback;
}
