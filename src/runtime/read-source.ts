/**
 * Documents the config points at by "a URL or a file": Telegram's proxy secret and proxy lists, the public
 * address lookup. A URL is fetched (HTTP 200 only, redirects followed), a file is read relative to the config
 * file's folder (or the working directory); at most MAX_FETCH_BYTES either way.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** Largest document we accept from a config URL. */
const MAX_FETCH_BYTES = 1024 * 1024;

export function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

export interface SourceOptions {
  /** The config file a relative file source is resolved against; null: the working directory. */
  configFile: string | null;
  timeoutMs: number;
}

/** Resolve a file source against the config file's folder (or the working directory). */
function resolveSource(configFile: string | null, source: string): string {
  return path.resolve(configFile ? path.dirname(configFile) : process.cwd(), source);
}

async function fetchBytes(url: string, timeoutMs: number): Promise<Buffer> {
  const res = await fetch(url, {
    signal: AbortSignal.timeout(timeoutMs),
    redirect: 'follow',
    headers: { 'user-agent': 'mtproxy' },
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > MAX_FETCH_BYTES) {
    await res.body?.cancel();
    throw new Error('document too large');
  }
  const body = Buffer.from(await res.arrayBuffer());
  if (body.length > MAX_FETCH_BYTES) throw new Error('document too large');
  return body;
}

/** A URL (fetched) or a file (relative to the config file's folder); at most MAX_FETCH_BYTES either way. */
export async function readSource(source: string, options: SourceOptions): Promise<Buffer> {
  if (isUrl(source)) return fetchBytes(source, options.timeoutMs);
  const data = await readFile(resolveSource(options.configFile, source));
  if (data.length > MAX_FETCH_BYTES) throw new Error('document too large');
  return data;
}
