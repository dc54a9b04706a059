/**
 * Structured JSON logs (pino). Secrets, keys and raw client bytes are never passed to a logger; log the
 * listener name, addresses and error codes instead.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

const KNOWN_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);
const envLevel = process.env.MTP_LOG_LEVEL;

export const logger: Logger = pino({
  // A bad MTP_LOG_LEVEL must not crash at import; the config check reports it as one line instead.
  level: envLevel && KNOWN_LEVELS.has(envLevel) ? envLevel : 'info',
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label) => ({ level: label }) },
});

export function setLogLevel(level: string): void {
  logger.level = level;
}
