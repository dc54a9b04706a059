/** Messages between the supervisor (main thread) and its worker threads. */
import type { Config } from '../config/types.ts';
import type { StatsSnapshot } from './transfer.ts';

export interface WorkerInit {
  index: number;
  config: Config;
  replay: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  /** How often the worker pushes a stats snapshot unasked (0 = only on request). */
  statsIntervalMs: number;
}

export type ListenerAddress = { name: string; host: string; port: number };

/** Main -> worker. `id` pairs a request with its reply. */
export type ToWorker =
  | { type: 'config'; id: number; config: Config }
  | { type: 'stats'; id: number }
  | { type: 'tables'; id: number }
  | { type: 'stop'; id: number; drainMs: number };

/** Worker -> main. */
export type FromWorker =
  | { type: 'ready'; addresses: ListenerAddress[] }
  | { type: 'failed'; error: string; code?: string }
  | {
      type: 'reply';
      id: number;
      ok: boolean;
      error?: string;
      addresses?: ListenerAddress[];
      stats?: StatsSnapshot;
    }
  | { type: 'stats'; stats: StatsSnapshot };
