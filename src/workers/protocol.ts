/**
 * Messages between the supervisor and its workers (threads: postMessage; processes: cluster IPC with the
 * structured serialization, so both carry Maps and Buffers alike).
 */
import type { Config } from '../config/types.ts';
import type { StatsSnapshot } from './transfer.ts';

export interface WorkerInit {
  index: number;
  config: Config;
  /** Shared replay set and counters (threads); worker processes ask the primary instead. */
  replay: SharedArrayBuffer | null;
  counters: SharedArrayBuffer | null;
  /** How often the worker pushes a stats snapshot unasked (0 = only on request). */
  statsIntervalMs: number;
}

export type ListenerAddress = { name: string; host: string; port: number };

/** Supervisor -> worker. `id` pairs a request with its reply. */
export type ToWorker =
  | { type: 'config'; id: number; config: Config }
  | { type: 'stats'; id: number }
  | { type: 'tables'; id: number }
  | { type: 'stop'; id: number; drainMs: number }
  | { type: 'usage'; id: number }
  /** Worker processes: their start-up data (threads get it as workerData). */
  | { type: 'init'; init: WorkerInit }
  /** Worker processes: the answer to a `replay` or `acquire` question. */
  | { type: 'answer'; id: number; value: boolean };

/** What a process spent, for the bench's CPU figures (threads are counted in the main process already). */
export type WorkerUsage = { cpuUserUs: number; cpuSystemUs: number; rss: number };

/** Worker -> supervisor. */
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
      usage?: WorkerUsage;
    }
  | { type: 'stats'; stats: StatsSnapshot }
  /** Worker processes: was this handshake seen before (and remember it)? Answered with `answer`. */
  | { type: 'replay'; id: number; key: Uint8Array }
  /** Worker processes: take one `max_connections` slot. Answered with `answer`. */
  | { type: 'acquire'; id: number; key: string; limit: number }
  /** Worker processes: give a slot back (no answer). */
  | { type: 'release'; key: string };
