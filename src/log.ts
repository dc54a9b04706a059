/**
 * Structured JSON logs (pino). Secrets, keys and raw client bytes are never passed to a logger; log the
 * listener name, addresses and error codes instead.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

const KNOWN_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);
const envLevel = process.env.MTP_LOG_LEVEL;

export type LogFormat = 'json' | 'pretty';

const STANDARD_KEYS = new Set(['level', 'time', 'pid', 'msg']);

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** One JSON log line as a person reads it: `HH:MM:SS LEVEL message key=value ...` (the same fields). */
export function prettyLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof entry.time === 'string' ? new Date(entry.time) : new Date();
  const clock = `${pad2(time.getHours())}:${pad2(time.getMinutes())}:${pad2(time.getSeconds())}`;
  const level = String(entry.level ?? 'info')
    .toUpperCase()
    .padEnd(5);
  let line = `${clock} ${level} ${typeof entry.msg === 'string' ? entry.msg : ''}`;
  for (const [key, value] of Object.entries(entry)) {
    if (STANDARD_KEYS.has(key)) continue;
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    line += ` ${key}=${/\s/.test(text) && typeof value === 'string' ? JSON.stringify(text) : text}`;
  }
  return `${line}\n`;
}

// The destination pino would pick itself (asynchronous, flushed at exit, quiet on EPIPE).
const sink = pino.destination({ dest: process.stdout.fd || 1, minLength: 0 });
let format: LogFormat = 'json';

/** JSON lines go to stdout as pino writes them; "pretty" reformats each line first. */
const stream = {
  write(line: string): void {
    sink.write(format === 'json' ? line : prettyLine(line));
  },
  flush(cb?: (err?: Error) => void): void {
    sink.flush(cb);
  },
  flushSync(): void {
    sink.flushSync();
  },
};

export const logger: Logger = pino(
  {
    // A bad MTP_LOG_LEVEL must not crash at import; the config check reports it as one line instead.
    level: envLevel && KNOWN_LEVELS.has(envLevel) ? envLevel : 'info',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  },
  stream,
);

/** `log.format`: JSON lines (the default, for collectors) or one readable line per entry. */
export function setLogFormat(next: LogFormat): void {
  format = next;
}

export function setLogLevel(level: string): void {
  logger.level = level;
}
