/**
 * Global state as a worker process sees it: the primary holds the replay set and the max_connections
 * counters (the same shared-memory structures worker threads use, here used by one thread), and a worker
 * process asks it over IPC. Asking costs a round trip per handshake (plus one per max_connections rule that
 * applies), so these answer with Promises, which the session awaits; giving a slot back is a one-way message.
 */
import type { RemoteCounterStore } from '../policy/counters.ts';
import type { ReplayGuard } from '../session/types.ts';
import type { FromWorker } from './protocol.ts';

type Question = { type: 'replay'; key: Uint8Array } | { type: 'acquire'; key: string; limit: number };

export class PrimaryStateClient {
  readonly #send: (msg: FromWorker) => void;
  readonly #pending = new Map<number, { resolve: (v: boolean) => void; reject: (e: Error) => void }>();
  #nextId = 1;

  constructor(send: (msg: FromWorker) => void) {
    this.#send = send;
  }

  ask(question: Question): Promise<boolean> {
    const id = this.#nextId++;
    return new Promise<boolean>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#send({ ...question, id });
    });
  }

  tell(msg: FromWorker): void {
    this.#send(msg);
  }

  answer(id: number, value: boolean): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    p.resolve(value);
  }

  /** The primary is gone: every waiting session fails (and this process is about to exit). */
  failAll(err: Error): void {
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  get waiting(): number {
    return this.#pending.size;
  }
}

export class PrimaryReplayGuard implements ReplayGuard {
  readonly #client: PrimaryStateClient;
  /** Follows `[replay] enabled`: switched off, no question is asked at all. */
  enabled: boolean;

  constructor(client: PrimaryStateClient, enabled: boolean) {
    this.#client = client;
    this.enabled = enabled;
  }

  seen(key: Buffer): boolean | Promise<boolean> {
    if (!this.enabled) return false;
    return this.#client.ask({ type: 'replay', key });
  }
}

export class PrimaryCounterStore implements RemoteCounterStore {
  readonly #client: PrimaryStateClient;
  /** Slots this process holds, by key (the primary keeps the totals over every worker). */
  readonly #held = new Map<string, number>();

  constructor(client: PrimaryStateClient) {
    this.#client = client;
  }

  async tryAcquire(key: string, limit: number): Promise<boolean> {
    const ok = await this.#client.ask({ type: 'acquire', key, limit });
    if (ok) this.#held.set(key, (this.#held.get(key) ?? 0) + 1);
    return ok;
  }

  release(key: string): void {
    const n = this.#held.get(key);
    if (n === undefined) return;
    if (n <= 1) this.#held.delete(key);
    else this.#held.set(key, n - 1);
    this.#client.tell({ type: 'release', key });
  }

  /** This process's share of `key` (the total lives in the primary). */
  get(key: string): number {
    return this.#held.get(key) ?? 0;
  }
}
