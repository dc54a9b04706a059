/**
 * Flow control of one session, in one place: whether the client may send us more (we read its socket) and
 * whether the upstream may send us more for the client (its handle is resumed).
 *
 * Each side has a set of holds, one bit per reason. The contract is the one of a stream's need-drain flag: a
 * write that returns false sets a hold, the matching drain releases it, and a side runs again only when none
 * of its holds is left. The socket or handle is paused on the first hold and resumed on the last release, so
 * each reason is set and cleared without knowing about the others. Direct and middle mode use it the same way.
 */
import type net from 'node:net';
import type { UpstreamHandle } from '../upstream/types.ts';

/** Client reads held: the upstream refused more (writeBytes / writeFrame returned false) until resumeClient. */
export const CLIENT_UPSTREAM_FULL = 1;
/** Client reads held: this turn's read budget is spent (until the next turn). */
export const CLIENT_TURN = 2;
/** Client reads held: the user's upload rate (until its timer). */
export const CLIENT_RATE = 4;
/** Client reads held: too much waits for the upstream that is still opening. */
export const CLIENT_PENDING = 8;
/** Client reads held: the primary has not answered a replay check or an admission yet. */
export const CLIENT_CHECK = 16;
/**
 * Client reads held: its socket is backlogged and the upstream is shared (middle mode), so the upstream cannot
 * stop for this client; its requests wait instead, so that it stops causing answers (until the drain).
 */
export const CLIENT_ANSWERS = 32;

/** Upstream held: the client's socket is backlogged (until its drain). */
export const UPSTREAM_CLIENT_FULL = 1;
/** Upstream held: the user's download rate (until its timer). */
export const UPSTREAM_RATE = 2;

export class SessionFlow {
  readonly #socket: net.Socket;
  #handle: UpstreamHandle | null = null;
  #client = 0;
  #upstream = 0;
  /** Ended or handed over: nothing is paused or resumed any more. */
  #stopped = false;
  /** The upstream carries other clients too (framed): it cannot stop reading for this one. */
  #shared = false;

  constructor(socket: net.Socket) {
    this.#socket = socket;
  }

  /** The client may send more: no hold on its reads. */
  get clientMaySend(): boolean {
    return this.#client === 0;
  }

  /** The upstream may send more for the client: no hold on it. */
  get upstreamMaySend(): boolean {
    return this.#upstream === 0;
  }

  clientHeld(reason: number): boolean {
    return (this.#client & reason) !== 0;
  }

  upstreamHeld(reason: number): boolean {
    return (this.#upstream & reason) !== 0;
  }

  holdClient(reason: number): void {
    const was = this.#client;
    this.#client = was | reason;
    if (was === 0 && !this.#stopped) this.#socket.pause();
  }

  releaseClient(reason: number): void {
    const was = this.#client;
    if ((was & reason) === 0) return;
    this.#client = was & ~reason;
    if (this.#client === 0 && !this.#stopped) this.#socket.resume();
  }

  holdUpstream(reason: number): void {
    const was = this.#upstream;
    this.#upstream = was | reason;
    if (was === 0 && !this.#stopped) this.#handle?.pause();
  }

  releaseUpstream(reason: number): void {
    const was = this.#upstream;
    if ((was & reason) === 0) return;
    this.#upstream = was & ~reason;
    if (this.#upstream === 0 && !this.#stopped) this.#handle?.resume();
  }

  /** The upstream is open: it starts paused if the client is already backlogged. */
  attach(handle: UpstreamHandle): void {
    this.#handle = handle;
    this.#shared = handle.framed;
    if (this.#upstream !== 0 && !this.#stopped) handle.pause();
  }

  /**
   * A write to the client returned false (its need-drain). The upstream is held; a shared one cannot stop
   * reading for one client, so this client's requests are held too. Both are released by clientDrained alone:
   * the upstream is not asked to say when the client may send again.
   */
  clientFull(): void {
    this.holdUpstream(UPSTREAM_CLIENT_FULL);
    if (this.#shared) this.holdClient(CLIENT_ANSWERS);
  }

  /** The client's socket drained. */
  clientDrained(): void {
    this.releaseClient(CLIENT_ANSWERS);
    this.releaseUpstream(UPSTREAM_CLIENT_FULL);
  }

  /** The session ended or gave its socket away: leave both sides as they are from now on. */
  stop(): void {
    this.#stopped = true;
    this.#handle = null;
  }
}
