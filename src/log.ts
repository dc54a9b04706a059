/**
 * Structured JSON logs (pino). Secrets, keys and raw client bytes are never passed to a logger; log the
 * listener name, addresses and error codes instead.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export const logger: Logger = pino({
  level: process.env.MTP_LOG_LEVEL ?? 'info',
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label) => ({ level: label }) },
});

export function setLogLevel(level: string): void {
  logger.level = level;
}
