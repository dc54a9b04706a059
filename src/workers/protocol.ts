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
  /** Tests: the users' clock starts stopped at this time and moves only by `clock` messages. */
  userClock?: number | null;
}

export type ListenerAddress = { name: string; host: string; port: number };

/** Supervisor -> worker. `id` pairs a request with its reply. */
export type ToWorker =
  | { type: 'config'; id: number; config: Config }
  | { type: 'stats'; id: number }
  | { type: 'tables'; id: number }
  | { type: 'stop'; id: number; drainMs: number }
  | { type: 'usage'; id: number }
  /** Tests: set the users' stopped clock (see WorkerInit.userClock). */
  | { type: 'clock'; id: number; now: number }
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

const isId = (v: unknown): v is number => Number.isSafeInteger(v);
const isAddress = (a: unknown): a is ListenerAddress =>
  typeof a === 'object' &&
  a !== null &&
  typeof (a as ListenerAddress).name === 'string' &&
  typeof (a as ListenerAddress).host === 'string' &&
  Number.isSafeInteger((a as ListenerAddress).port);

/**
 * A worker's message as the supervisor may act on it, or null. The primary serves every worker process from one
 * thread: a message it cannot read (a bug or a corrupted worker) must be dropped there, never thrown on.
 * Stats snapshots are checked only at the top; the caller reads them inside a try.
 */
export function readFromWorker(msg: unknown): FromWorker | null {
  if (typeof msg !== 'object' || msg === null) return null;
  const m = msg as Record<string, unknown>;
  switch (m.type) {
    case 'replay':
      return isId(m.id) && m.key instanceof Uint8Array ? (m as FromWorker) : null;
    case 'acquire':
      return isId(m.id) && typeof m.key === 'string' && typeof m.limit === 'number' && !Number.isNaN(m.limit)
        ? (m as FromWorker)
        : null;
    case 'release':
      return typeof m.key === 'string' ? (m as FromWorker) : null;
    case 'ready':
      return Array.isArray(m.addresses) && m.addresses.every(isAddress) ? (m as FromWorker) : null;
    case 'failed':
      return typeof m.error === 'string' ? (m as FromWorker) : null;
    case 'stats':
      return typeof m.stats === 'object' && m.stats !== null ? (m as FromWorker) : null;
    case 'reply':
      return isId(m.id) && typeof m.ok === 'boolean' ? (m as FromWorker) : null;
    default:
      return null;
  }
}

/**
 * The refusal for a question that could not be read, so the session asking does not wait for nothing: "seen
 * before" for a replay check, "no slot" for an acquire. Null when there is no question id to answer.
 */
export function refusalFor(msg: unknown): (ToWorker & { type: 'answer' }) | null {
  if (typeof msg !== 'object' || msg === null) return null;
  const m = msg as Record<string, unknown>;
  if (!isId(m.id)) return null;
  if (m.type === 'replay') return { type: 'answer', id: m.id, value: true };
  if (m.type === 'acquire') return { type: 'answer', id: m.id, value: false };
  return null;
}
