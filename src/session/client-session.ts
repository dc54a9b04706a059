/**
 * One accepted client connection, from its first byte to its close.
 *
 *   hello      first bytes: `16 03 01` on a listener that allows fake-TLS -> TLS handshake, else obfuscated2
 *   header     64-byte obfuscated2 header (raw, or inside TLS application-data records)
 *   connecting client identified and admitted; waiting for the upstream (client reads paused)
 *   relay      client -> decrypt -> (frames) -> upstream; upstream -> (frame) -> encrypt -> (TLS) -> client
 *
 * In worker processes the replay check and a `max_connections` admission are answered by the primary: the
 * session then waits for the answer with client reads paused (stage `checking`), and carries on only if it is
 * still alive. Elsewhere both answer synchronously and the session never leaves the current tick.
 *
 * A client that fails before the relay gets no byte from us: on a listener that allows fake-TLS it is
 * handed to the fronting splice with everything it sent, otherwise its input is read and thrown away and
 * the connection is closed after a short random pause (or at the handshake deadline).
 */
import type net from 'node:net';
import type { ListenerConfig } from '../config/types.ts';
import {
  type HandshakeStage,
  handshakeStage,
  type ListenerStats,
  type SessionProtocol,
} from '../metrics/stats.ts';
import { isProtocolError, type ProtocolErrorCode } from '../protocol/errors.ts';
import { errorCode } from '../runtime/errors.ts';
import {
  appDataEncodedLength,
  appDataHeader,
  encodeAppData,
  MAX_RECORD_PAYLOAD,
  TlsRecordDecoder,
} from '../protocol/faketls/records.ts';
import {
  ClientFrameScanner,
  createFrameCodec,
  type FrameCodec,
  MIN_CLIENT_PAYLOAD,
} from '../protocol/framing/codec.ts';
import {
  type ClientHandshake,
  type CtrStream,
  HEADER_LENGTH,
  type TransportTag,
} from '../protocol/obfuscated2.ts';
import type { ClientInfo, ClientSink, UpstreamHandle } from '../upstream/types.ts';
import { PartialInput } from '../protocol/partial-input.ts';
import { LogLimiter } from '../runtime/log-limit.ts';
import {
  admission,
  allowsTls,
  classifyHello,
  fakeTlsHandshake,
  identifyHeader,
  transportAllowed,
} from './handshake.ts';
import { frontConnection, frontingDestination } from '../cover/fronting.ts';
import { relayAllocated } from '../runtime/gc-tuning.ts';
import { overTurnBudget, type TurnBudget } from '../runtime/read-budget.ts';
import { closeAfterFlush } from '../runtime/sockets.ts';
import { badClientCloseDelay, Deadline } from '../runtime/timers.ts';
import type { TlsHandshakeOutcome } from './fake-tls-handshake.ts';
import {
  CLIENT_CHECK,
  CLIENT_PENDING,
  CLIENT_RATE,
  CLIENT_TURN,
  CLIENT_UPSTREAM_FULL,
  SessionFlow,
  UPSTREAM_RATE,
} from './flow.ts';
import type { PolicyDecision, PolicyTicket, SessionEnv } from './types.ts';
import { UserTicket } from '../users/admission.ts';
import type { UserLease, UserState } from '../users/registry.ts';

type TlsAccepted = Extract<TlsHandshakeOutcome, { kind: 'ok' }>;

/** Largest ClientHello we wait for before giving up on it (real ones are under 2 KiB). */
const MAX_HELLO_BYTES = 16 * 1024;
/** Upstream failures at info level: one line per DC and reason every 10 s (per worker). */
const upstreamFailureLog = new LogLimiter(10_000);

/** Client bytes buffered while the upstream opens before we stop reading. */
const MAX_PENDING_BYTES = 256 * 1024;
/**
 * Middle-mode answers from this size on are encrypted where they lie, header and payload apart, instead of
 * being copied into a frame first (the client socket is corked, so the parts still leave in one write).
 */
const SPLIT_FRAME_AT = 1024;
/**
 * Fake-TLS output from this size on is written as record headers and slices of the payload, corked into one
 * writev, instead of being copied into a fresh buffer of records.
 */
const TLS_SLICE_AT = 8 * 1024;

/** The first bytes: which handshake, if any (see classifyHello). */
const STAGE_HELLO = 0;
/** Assembling the obfuscated2 header (raw, or inside TLS records once the fake-TLS handshake is answered). */
const STAGE_HEADER = 1;
/** Identified and admitted; the upstream is opening (client bytes wait in `pending`, bounded). */
const STAGE_CONNECTING = 2;
/** The pipeline carries both directions. */
const STAGE_RELAY = 3;
/** Failed: input is discarded until the close timer fires. */
const STAGE_REJECTED = 4;
/** Ended, or given away to the fronting splice. */
const STAGE_DONE = 5;
/** Waiting for the primary to answer a replay check or an admission (worker processes); reads paused. */
const STAGE_CHECKING = 6;

/** A session's stage. Small integers, compared on every read; the names above say what each means. */
type Stage =
  | typeof STAGE_HELLO
  | typeof STAGE_HEADER
  | typeof STAGE_CONNECTING
  | typeof STAGE_RELAY
  | typeof STAGE_REJECTED
  | typeof STAGE_DONE
  | typeof STAGE_CHECKING;

/** Failure reasons counted in `handshakeFailures` besides the codec's own codes. */
export type SessionFailure =
  | ProtocolErrorCode
  | 'MTP_ERR_HANDSHAKE_TIMEOUT'
  | 'MTP_ERR_POLICY'
  | 'MTP_ERR_UPSTREAM'
  | 'MTP_ERR_CLIENT_BACKLOG'
  | 'MTP_ERR_HELLO_TOO_LARGE'
  | 'MTP_ERR_INTERNAL';

export function startSession(socket: net.Socket, env: SessionEnv): void {
  new ClientSession(socket, env).start();
}

function noop(): void {}

/**
 * What the upstream learns about a client. The socket's addresses cost a syscall each (getpeername,
 * getsockname) and direct mode reads none of them: looked up on first use only (Node caches them then).
 */
class SessionClientInfo implements ClientInfo {
  readonly listener: ListenerConfig;
  readonly transport: TransportTag;
  readonly dcId: number;
  readonly tlsDomain: string | null;
  readonly user: string | null;
  private readonly socket: net.Socket;

  constructor(
    socket: net.Socket,
    listener: ListenerConfig,
    transport: TransportTag,
    dcId: number,
    tlsDomain: string | null,
    user: string | null,
  ) {
    this.socket = socket;
    this.user = user;
    this.listener = listener;
    this.transport = transport;
    this.dcId = dcId;
    this.tlsDomain = tlsDomain;
  }

  get remoteAddress(): string {
    return this.socket.remoteAddress ?? '';
  }

  get remotePort(): number {
    return this.socket.remotePort ?? 0;
  }

  get localAddress(): string {
    return this.socket.localAddress ?? '';
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }
}

/**
 * Socket events reach their session through this property, so one shared handler per event serves every
 * connection (no per-connection closures for the socket listeners).
 */
const SESSION = Symbol('mtproxy.session');
type SessionSocket = net.Socket & { [SESSION]?: ClientSession };

function sessionOf(socket: net.Socket): ClientSession | undefined {
  return (socket as SessionSocket)[SESSION];
}

class ClientSession implements ClientSink, TurnBudget {
  private readonly socket: net.Socket;
  private readonly env: SessionEnv;
  private readonly listener: ListenerConfig;
  private readonly stats: ListenerStats;
  private readonly handshakeMs: number;
  private readonly idleMs: number;
  private readonly maxClientBacklog: number;
  private readonly startedAt = Date.now();
  private readonly deadline = new Deadline();

  private stage: Stage = STAGE_HELLO;
  /** Every raw byte read before the relay (for fronting); null once it can no longer be fronted. */
  private raw: PartialInput | null = new PartialInput(0);
  /**
   * The obfuscated2 header being assembled when a read cut it. Dropped once parsed: a small pooled buffer held
   * for the session's life would pin its whole slab.
   */
  private header: PartialInput | null = new PartialInput(HEADER_LENGTH);
  /** The secret the fake-TLS handshake settled on (the header is then tried with it alone). */
  private tlsSecret: Buffer | null = null;
  private tls: TlsRecordDecoder | null = null;
  /** tls.decode's callback (fake-TLS sessions only). */
  private tlsPayload: ((data: Buffer) => void) | null = null;
  private tlsDomain: string | null = null;
  /** JA4 of the client's hello, for the failure log line. */
  private helloFingerprint: string | null = null;
  /** Bytes that followed the header while its replay check or admission was being answered. */
  private afterHeader: Buffer | null = null;
  /** Obfuscated bytes that followed the header while the upstream was opening. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  private transport: TransportTag = 'abridged';
  private protocol: SessionProtocol | null = null;
  private decrypt: CtrStream | null = null;
  private encrypt: CtrStream | null = null;
  private codec: FrameCodec | null = null;
  /** Direct (unframed) relay: checks the client's frame boundaries on the way through. */
  private scanner: ClientFrameScanner | null = null;
  /** codec.decode's callback (framed upstreams only). */
  private clientFrame: ((payload: Buffer, quickAck: boolean) => void) | null = null;
  private handle: UpstreamHandle | null = null;
  private ticket: PolicyTicket | null = null;
  /** The user whose secret opened this session (null: a listener secret). */
  private user: UserState | null = null;
  /** Counts this session's bytes on its user and applies the user's rate (null: no user). */
  private lease: UserLease | null = null;
  /** Whether the client and the upstream may send more, and why not (see flow.ts). */
  private readonly flow: SessionFlow;
  /** Reads of this turn (see read-budget.ts). */
  turnEpoch = 0;
  turnBytes = 0;
  /** Scratch flag for frame-by-frame writes within one chunk. */
  private upstreamAccepting = true;
  /** The client half-closed while the upstream was still opening. */
  private clientEnded = false;
  /** The client socket is corked until the end of this tick (answers batched into one write). */
  private corked = false;

  constructor(socket: net.Socket, env: SessionEnv) {
    this.socket = socket;
    this.env = env;
    this.flow = new SessionFlow(socket);
    this.listener = env.listener();
    const config = env.config();
    this.stats = env.stats.listener(this.listener.name);
    this.handshakeMs = config.timeouts.handshakeMs;
    this.idleMs = config.timeouts.idleMs;
    this.maxClientBacklog = config.buffers.maxClientBacklog;
  }

  start(): void {
    const s = this.socket;
    this.stats.connectionsTotal++;
    this.stats.connectionsActive++;
    (s as SessionSocket)[SESSION] = this;
    s.on('error', socketError);
    s.on('close', socketClose);
    s.on('end', socketEnd);
    s.on('timeout', socketIdle);
    s.on('drain', socketDrain);
    s.on('data', socketData);
    s.setNoDelay(true);
    this.deadline.arm(this.handshakeMs, () => this.onHandshakeTimeout());
    if (s.destroyed) this.finish('client_closed');
  }

  // ---- client input ------------------------------------------------------------------------------

  /** @internal (socket listener) */
  onData(chunk: Buffer): void {
    this.stats.bytesFromClient += chunk.length;
    try {
      switch (this.stage) {
        case STAGE_RELAY:
          if (this.tls) this.tls.decode(chunk, this.tlsPayload!);
          else this.relayFromClient(chunk);
          if (overTurnBudget(this, chunk.length)) this.yieldTurn();
          return;
        case STAGE_HELLO:
          this.keepRaw(chunk);
          this.onHello();
          return;
        case STAGE_HEADER:
        case STAGE_CONNECTING:
          this.keepRaw(chunk);
          if (this.tls) this.tls.decode(chunk, this.tlsPayload!);
          else this.onObfuscated(chunk);
          return;
        case STAGE_CHECKING:
          // Reads are paused until the primary answers; a chunk that was already under way goes back.
          this.stats.bytesFromClient -= chunk.length;
          this.socket.unshift(chunk);
          return;
        default:
          // Rejected or done: discard.
          return;
      }
    } catch (err) {
      this.onBadInput(err);
    }
  }

  private keepRaw(chunk: Buffer): void {
    this.raw?.append(chunk);
  }

  private rawBytes(): Buffer {
    return this.raw === null ? Buffer.alloc(0) : this.raw.peekAll();
  }

  private onHello(): void {
    const buffered = this.rawBytes();
    switch (classifyHello(buffered, this.listener)) {
      case 'need-more':
        return;
      case 'tls':
        this.onTlsHello(buffered);
        return;
      case 'tls-expected':
        this.reject('MTP_ERR_TLS_EXPECTED', true);
        return;
      case 'http':
        this.reject('MTP_ERR_UNKNOWN_TRANSPORT', true);
        return;
      case 'obfuscated2':
        this.stage = STAGE_HEADER;
        this.onObfuscated(buffered);
        return;
    }
  }

  private onTlsHello(buffered: Buffer): void {
    const outcome = fakeTlsHandshake(buffered, this.listener, this.env.users, this.socket, Date.now());
    if (outcome.kind !== 'need-more' && outcome.fingerprint !== undefined) {
      this.stats.fingerprint(outcome.fingerprint);
      this.helloFingerprint = outcome.fingerprint;
    }
    switch (outcome.kind) {
      case 'need-more':
        if (buffered.length > MAX_HELLO_BYTES) this.reject('MTP_ERR_HELLO_TOO_LARGE', true);
        return;
      case 'fail': {
        const sni = outcome.sni ?? null;
        if (outcome.action === 'front') {
          this.reject(outcome.code as SessionFailure, true, sni);
        } else if (outcome.action === 'reject' && outcome.reply) {
          this.stats.fail(outcome.code);
          this.logFailure(outcome.code);
          this.stage = STAGE_REJECTED;
          this.socket.end(outcome.reply);
          this.finishLater(badClientCloseDelay(this.handshakeRemaining()));
        } else {
          this.reject(outcome.code as SessionFailure, false);
        }
        return;
      }
      case 'ok':
        break;
    }
    const seen = this.env.replay.seen(outcome.replayKey);
    if (typeof seen === 'boolean') this.afterTlsReplayCheck(seen, outcome, buffered);
    else this.waitForReplayCheck(seen, (answer) => this.afterTlsReplayCheck(answer, outcome, buffered));
  }

  private afterTlsReplayCheck(seen: boolean, outcome: TlsAccepted, buffered: Buffer): void {
    if (seen) {
      this.stats.replays++;
      this.reject('MTP_ERR_REPLAY', true, outcome.tlsDomain);
      return;
    }
    this.user = this.env.users?.bySecret(outcome.base) ?? null;
    const decision = this.admission(outcome.tlsDomain);
    if (decision instanceof Promise) {
      this.waitForAdmission(decision, (d) => this.afterTlsAdmission(d, outcome, buffered));
    } else {
      this.afterTlsAdmission(decision, outcome, buffered);
    }
  }

  private afterTlsAdmission(decision: PolicyDecision, outcome: TlsAccepted, buffered: Buffer): void {
    if (!this.admitted(decision)) return;
    this.tlsDomain = outcome.tlsDomain;
    this.tlsSecret = outcome.secret;
    this.protocol = 'tls';
    // From here on we have answered as the proxy; the connection can no longer pass as a web server.
    this.raw = null;
    this.stage = STAGE_HEADER;
    this.tls = new TlsRecordDecoder();
    this.tlsPayload = (data) => this.onObfuscated(data);
    this.stats.bytesToClient += outcome.serverHello.length;
    this.socket.write(outcome.serverHello);
    if (outcome.consumed < buffered.length)
      this.tls.decode(buffered.subarray(outcome.consumed), this.tlsPayload);
  }

  /** Obfuscated2 stream bytes (after TLS unwrapping, if any), before decryption. */
  private onObfuscated(data: Buffer): void {
    switch (this.stage) {
      case STAGE_RELAY:
        this.relayFromClient(data);
        return;
      case STAGE_CONNECTING:
        this.pending.push(data);
        this.pendingBytes += data.length;
        if (this.pendingBytes > MAX_PENDING_BYTES) this.flow.holdClient(CLIENT_PENDING);
        return;
      case STAGE_HEADER: {
        const held = this.header!;
        let header: Buffer;
        let take: number;
        if (held.length > 0) {
          const got = held.take(data);
          if (got === null) return;
          header = got;
          take = held.used;
        } else if (data.length >= HEADER_LENGTH) {
          header = data.subarray(0, HEADER_LENGTH);
          take = HEADER_LENGTH;
        } else {
          if (data.length > 0) held.keep(data, 0, HEADER_LENGTH, HEADER_LENGTH);
          return;
        }
        this.header = null;
        this.onHeader(header);
        if (take < data.length) {
          const stage = this.stage as Stage;
          if (stage === STAGE_CONNECTING) this.onObfuscated(data.subarray(take));
          else if (stage === STAGE_CHECKING) this.afterHeader = data.subarray(take);
        }
        return;
      }
      default:
        return;
    }
  }

  private onHeader(header: Buffer): void {
    const tlsSecret = this.tlsSecret;
    this.tlsSecret = null;
    const found = identifyHeader(header, this.listener, this.env.users, this.socket, tlsSecret);
    const insideTls = this.tls !== null;
    if (found.kind === 'fail') {
      this.reject(found.code, !insideTls);
      return;
    }
    const hs = found.hs;
    if (found.user !== null) this.user = found.user;
    if (insideTls) {
      if (!transportAllowed(hs.transport, this.listener, true)) {
        this.reject('MTP_ERR_DISABLED_TRANSPORT', false);
        return;
      }
      this.acceptHeader(hs);
      return;
    }
    // Replay first, as the reference does: a rejected attempt is remembered too.
    const seen = this.env.replay.seen(hs.replayKey);
    if (typeof seen === 'boolean') this.afterHeaderReplayCheck(seen, hs);
    else this.waitForReplayCheck(seen, (answer) => this.afterHeaderReplayCheck(answer, hs));
  }

  private afterHeaderReplayCheck(seen: boolean, hs: ClientHandshake): void {
    if (seen) {
      this.stats.replays++;
      this.reject('MTP_ERR_REPLAY', true);
      return;
    }
    if (!transportAllowed(hs.transport, this.listener, false)) {
      this.reject('MTP_ERR_DISABLED_TRANSPORT', true);
      return;
    }
    const decision = this.admission(null);
    if (decision instanceof Promise) this.waitForAdmission(decision, (d) => this.afterHeaderAdmission(d, hs));
    else this.afterHeaderAdmission(decision, hs);
  }

  private afterHeaderAdmission(decision: PolicyDecision, hs: ClientHandshake): void {
    if (!this.admitted(decision)) return;
    this.protocol = hs.transport;
    this.acceptHeader(hs);
  }

  /** Identified and admitted: keys in place, off to the upstream. */
  private acceptHeader(hs: ClientHandshake): void {
    this.transport = hs.transport;
    this.decrypt = hs.decrypt;
    this.encrypt = hs.encrypt;
    this.raw = null;
    this.stats.sessionsTotal[this.protocol!]++;
    this.stats.sessionsActive[this.protocol!]++;
    this.openUpstream(hs.dcId);
  }

  private admission(tlsDomain: string | null): PolicyDecision | Promise<PolicyDecision> {
    return admission(this.env, this.listener, this.socket, this.user, tlsDomain, this);
  }

  /** Policy decision; on refusal the client is closed (not fronted: it proved it is a proxy client). */
  private admitted(decision: PolicyDecision): boolean {
    if (decision.ok) {
      this.ticket = decision.ticket;
      if (decision.ticket instanceof UserTicket) this.lease = decision.ticket.lease;
      return true;
    }
    this.stats.reject(decision.rule);
    this.reject('MTP_ERR_POLICY', false);
    return false;
  }

  // ---- answers from the primary (worker processes only) ----------------------------------------------

  private waitForReplayCheck(answer: Promise<boolean>, then: (seen: boolean) => void): void {
    const stage = this.suspend();
    answer.then(
      (seen) => {
        if (this.wake(stage)) this.carryOn(then, seen);
      },
      (err: unknown) => this.onCheckFailed(stage, err),
    );
  }

  private waitForAdmission(answer: Promise<PolicyDecision>, then: (decision: PolicyDecision) => void): void {
    const stage = this.suspend();
    answer.then(
      (decision) => {
        if (!this.wake(stage)) {
          // Closed or timed out meanwhile: give the slots straight back.
          if (decision.ok) decision.ticket.release();
          return;
        }
        this.carryOn(then, decision);
      },
      (err: unknown) => this.onCheckFailed(stage, err),
    );
  }

  /** Run a continuation as onData would (bad input inside it closes this session, nothing else). */
  private carryOn<T>(then: (value: T) => void, value: T): void {
    try {
      then(value);
      this.continueAfterCheck();
    } catch (err) {
      this.onBadInput(err);
    }
  }

  /** Stop reading until the answer is in; returns the stage to come back to. */
  private suspend(): Stage {
    const stage = this.stage;
    this.stage = STAGE_CHECKING;
    this.flow.holdClient(CLIENT_CHECK);
    return stage;
  }

  /** Back to `stage` unless the session ended while it waited (handshake deadline, client gone). */
  private wake(stage: Stage): boolean {
    if (this.stage !== STAGE_CHECKING) return false;
    this.stage = stage;
    return true;
  }

  /** After a continuation: hand on what followed the header, and read again unless waiting or paused. */
  private continueAfterCheck(): void {
    const stage = this.stage;
    if (this.afterHeader !== null && stage !== STAGE_CHECKING) {
      const rest = this.afterHeader;
      this.afterHeader = null;
      if (stage === STAGE_CONNECTING) this.onObfuscated(rest);
    }
    if (stage === STAGE_HELLO || stage === STAGE_HEADER || stage === STAGE_CONNECTING) {
      this.flow.releaseClient(CLIENT_CHECK);
    }
  }

  private onCheckFailed(stage: Stage, err: unknown): void {
    if (!this.wake(stage)) return;
    this.stats.fail('MTP_ERR_INTERNAL');
    this.env.log.warn(
      { listener: this.listener.name, err: (err as Error)?.message },
      'replay check or admission failed',
    );
    this.finish('check_failed');
  }

  private openUpstream(dcId: number): void {
    this.stage = STAGE_CONNECTING;
    this.deadline.clear();
    // Keep reading while the upstream opens (so a client that leaves is noticed), up to a bound.
    this.socket.setTimeout(this.idleMs);
    const s = this.socket;
    // A user's own ad tag stands in for the listener's (middle mode).
    const l = this.user === null ? this.listener : this.user.listenerFor(this.listener);
    const info = new SessionClientInfo(s, l, this.transport, dcId, this.tlsDomain, this.user?.name ?? null);
    let opening: Promise<UpstreamHandle>;
    try {
      opening = this.env.upstream(l).open(info, this);
    } catch (err) {
      this.onUpstreamFailed(err, dcId);
      return;
    }
    opening.then(
      (handle) => this.onUpstreamReady(handle),
      (err: unknown) => this.onUpstreamFailed(err, dcId),
    );
  }

  private onUpstreamReady(handle: UpstreamHandle): void {
    if (this.stage !== STAGE_CONNECTING) {
      handle.close();
      return;
    }
    this.handle = handle;
    if (handle.framed) {
      this.codec = createFrameCodec(this.transport, { requireAligned: true, minPayload: MIN_CLIENT_PAYLOAD });
      this.clientFrame = (payload, quickAck) => {
        if (this.handle && !this.handle.writeFrame(payload, quickAck)) this.upstreamAccepting = false;
      };
    } else {
      this.scanner = new ClientFrameScanner(this.transport);
    }
    this.flow.attach(handle);
    this.stage = STAGE_RELAY;
    const pending = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      for (const data of pending) {
        this.relayFromClient(data);
        if (this.stage !== STAGE_RELAY) return;
      }
    } catch (err) {
      this.onBadInput(err);
      return;
    }
    // Held only for the pending bound; from now on holds follow the upstream's backpressure.
    if (this.clientEnded) this.endClientInput();
    else this.flow.releaseClient(CLIENT_PENDING);
  }

  private onUpstreamFailed(err: unknown, dcId: number): void {
    const code = errorCode(err, '');
    this.stats.fail('MTP_ERR_UPSTREAM');
    // The client passed every check, so this is the proxy's own way to Telegram failing: worth an operator's
    // attention, once in a while rather than once per client.
    const suppressed = upstreamFailureLog.take(`${dcId}:${code}`);
    if (suppressed !== null) {
      this.env.log.info(
        { listener: this.listener.name, dc: dcId, code: code || undefined, suppressed },
        `upstream connect failed: ${(err as Error)?.message ?? String(err)}`,
      );
    }
    this.env.log.debug(
      {
        listener: this.listener.name,
        remote: this.socket.remoteAddress,
        code: code || undefined,
      },
      'upstream open failed',
    );
    this.finish('upstream_failed');
  }

  private relayFromClient(data: Buffer): void {
    // Two fresh buffers per chunk: ours (decrypted) and the upstream's (re-encrypted).
    relayAllocated(2 * data.length);
    if (this.lease !== null) {
      const waitMs = this.lease.fromClient(data.length);
      if (waitMs > 0) this.holdClient(waitMs);
    }
    const plain = this.decrypt!.update(data);
    const handle = this.handle!;
    let accepting: boolean;
    if (this.codec) {
      this.upstreamAccepting = true;
      this.codec.decode(plain, this.clientFrame!);
      accepting = this.upstreamAccepting;
    } else {
      // A frame that cannot be MTProto throws here, before the chunk holding it reaches the DC.
      this.scanner?.scan(plain);
      accepting = handle.writeBytes(plain);
    }
    if (!accepting && this.stage === STAGE_RELAY) this.flow.holdClient(CLIENT_UPSTREAM_FULL);
  }

  /** Stop reading the client until the next turn of the event loop (other sockets are waiting). */
  private yieldTurn(): void {
    // Already held for another reason: whatever releases it comes later than the next turn anyway.
    if (!this.flow.clientMaySend || this.stage !== STAGE_RELAY) return;
    this.flow.holdClient(CLIENT_TURN);
    setImmediate(resumeAfterYield, this);
  }

  /** @internal */
  resumeAfterYield(): void {
    this.flow.releaseClient(CLIENT_TURN);
  }

  // ---- ClientSink: upstream -> client -------------------------------------------------------------

  sendBytes(plain: Buffer): boolean {
    if (this.stage === STAGE_DONE || this.encrypt === null) return false;
    if (this.lease !== null) this.countToClient(plain.length);
    relayAllocated(2 * plain.length);
    return this.writeToClient(this.encrypt.update(plain));
  }

  sendFrame(payload: Buffer): boolean {
    if (this.stage === STAGE_DONE || this.encrypt === null) return false;
    if (this.lease !== null) this.countToClient(payload.length);
    const codec = this.codec ?? (this.codec = createFrameCodec(this.transport, { requireAligned: true }));
    // A link delivers many answers per read, often several for one client: one write for all of them.
    this.corkUntilNextTick();
    if (payload.length < SPLIT_FRAME_AT || this.tls !== null) {
      return this.writeToClient(this.encrypt.update(codec.encode(payload)));
    }
    const { head, tail } = codec.encodeAround(payload.length);
    const s = this.socket;
    s.write(this.encrypt.update(head));
    let ok = s.write(this.encrypt.update(payload));
    if (tail !== null) ok = s.write(this.encrypt.update(tail));
    this.stats.bytesToClient += head.length + payload.length + (tail === null ? 0 : tail.length);
    return this.afterClientWrite(ok);
  }

  private corkUntilNextTick(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(uncorkSession, this);
  }

  /** @internal */
  uncork(): void {
    this.corked = false;
    this.socket.uncork();
  }

  sendQuickAck(token: number): void {
    if (this.stage === STAGE_DONE || this.encrypt === null) return;
    const codec = this.codec ?? (this.codec = createFrameCodec(this.transport, { requireAligned: true }));
    this.writeToClient(this.encrypt.update(codec.encodeQuickAck(token)));
  }

  resumeClient(): void {
    if (this.stage === STAGE_RELAY) this.flow.releaseClient(CLIENT_UPSTREAM_FULL);
  }

  // ---- the user's rate -------------------------------------------------------------------------------

  private countToClient(n: number): void {
    const waitMs = this.lease!.toClient(n);
    if (waitMs > 0 && !this.flow.upstreamHeld(UPSTREAM_RATE)) {
      this.flow.holdUpstream(UPSTREAM_RATE);
      setTimeout(releaseUpstreamHold, waitMs, this).unref();
    }
  }

  private holdClient(waitMs: number): void {
    if (this.flow.clientHeld(CLIENT_RATE)) return;
    this.flow.holdClient(CLIENT_RATE);
    setTimeout(releaseClientHold, waitMs, this).unref();
  }

  /** @internal (rate timer) */
  onClientHoldOver(): void {
    if (this.stage !== STAGE_RELAY) return;
    // The bucket may still be in debt (other sessions of the user took from it meanwhile).
    const more = this.lease?.user.up.waitMs() ?? 0;
    if (more > 0) {
      setTimeout(releaseClientHold, more, this).unref();
      return;
    }
    this.flow.releaseClient(CLIENT_RATE);
  }

  /** @internal (rate timer) */
  onUpstreamHoldOver(): void {
    if (this.stage !== STAGE_RELAY) return;
    const more = this.lease?.user.down.waitMs() ?? 0;
    if (more > 0) {
      setTimeout(releaseUpstreamHold, more, this).unref();
      return;
    }
    this.flow.releaseUpstream(UPSTREAM_RATE);
  }

  close(reason: string): void {
    if (this.stage === STAGE_DONE) return;
    // Let the client take what is already queued for it, then hang up.
    this.finish(reason, true);
  }

  private writeToClient(obfuscated: Buffer): boolean {
    if (this.tls !== null && obfuscated.length >= TLS_SLICE_AT) return this.writeRecords(obfuscated);
    const out = this.tls ? encodeAppData(obfuscated) : obfuscated;
    this.stats.bytesToClient += out.length;
    return this.afterClientWrite(this.socket.write(out));
  }

  private writeRecords(payload: Buffer): boolean {
    const s = this.socket;
    const length = payload.length;
    let ok = true;
    s.cork();
    for (let src = 0; src < length; src += MAX_RECORD_PAYLOAD) {
      const n = Math.min(MAX_RECORD_PAYLOAD, length - src);
      s.write(appDataHeader(n));
      ok = s.write(n === length ? payload : payload.subarray(src, src + n));
    }
    s.uncork();
    this.stats.bytesToClient += appDataEncodedLength(length);
    return this.afterClientWrite(ok);
  }

  private afterClientWrite(ok: boolean): boolean {
    if (!ok) {
      this.flow.clientFull();
      // A shared (framed) upstream cannot stop reading for one client: drop a client that stopped reading.
      if (this.codec !== null && this.socket.writableLength > this.maxClientBacklog) {
        this.stats.fail('MTP_ERR_CLIENT_BACKLOG');
        this.finish('client_backlog');
      }
    }
    return ok;
  }

  /** @internal (socket listener) */
  onDrain(): void {
    this.flow.clientDrained();
  }

  // ---- failures and the end ----------------------------------------------------------------------

  private onBadInput(err: unknown): void {
    const code = isProtocolError(err) ? err.code : 'MTP_ERR_INTERNAL';
    if (this.stage === STAGE_RELAY || this.stage === STAGE_CONNECTING) {
      this.stats.fail(code);
      this.logFailure(code);
      this.finish('bad_input');
    } else {
      this.reject(code as SessionFailure, this.raw !== null);
    }
    if (!isProtocolError(err))
      this.env.log.warn({ err, listener: this.listener.name }, 'unexpected session error');
  }

  /**
   * Handshake failure: no byte of reply. Fronting when the listener does fake-TLS and the client has not
   * been answered yet; otherwise discard its input and close after a short random delay.
   */
  private reject(code: SessionFailure, mayFront: boolean, sni: string | null = null): void {
    if (this.stage === STAGE_DONE || this.stage === STAGE_REJECTED) return;
    this.stats.fail(code, this.failureStage(code));
    this.logFailure(code);
    this.releaseTicket();
    // Nowhere to front to (fronting off, or no cover domain and no SNI): the same silent close as elsewhere.
    if (
      mayFront &&
      this.raw !== null &&
      allowsTls(this.listener) &&
      frontingDestination(this.listener, sni) !== null
    ) {
      this.handOffToFronting(sni);
      return;
    }
    this.stage = STAGE_REJECTED;
    this.raw = null;
    // Whatever held the client's reads, its input is now read and discarded.
    this.flow.stop();
    this.socket.resume();
    this.finishLater(badClientCloseDelay(this.handshakeRemaining()));
  }

  private handOffToFronting(sni: string | null): void {
    const alreadyRead = this.rawBytes();
    this.raw = null;
    this.stage = STAGE_DONE;
    this.deadline.clear();
    this.flow.stop();
    const s = this.socket;
    s.off('data', socketData);
    s.off('end', socketEnd);
    s.off('timeout', socketIdle);
    s.off('drain', socketDrain);
    s.off('close', socketClose);
    s.off('error', socketError);
    (s as SessionSocket)[SESSION] = undefined;
    // Whatever the splice does, an error on this socket must never become an uncaught exception.
    s.on('error', noop);
    s.pause();
    s.setTimeout(0);
    this.countEnd();
    try {
      frontConnection(s, alreadyRead, this.listener, sni, this.env);
    } catch (err) {
      this.env.log.warn({ err, listener: this.listener.name }, 'fronting failed');
      s.destroy();
    }
  }

  /** The stage a failure belongs to: the code's, except where only the session knows how far it got. */
  private failureStage(code: string): HandshakeStage {
    if (code === 'MTP_ERR_HANDSHAKE_TIMEOUT') {
      if (this.stage === STAGE_HEADER) return 'obfuscated2';
      if (this.stage !== STAGE_HELLO) return 'other';
      return this.raw !== null && this.raw.length > 0 && this.raw.peekAll()[0] === 0x16
        ? 'tls_record'
        : 'first_bytes';
    }
    // Not even an obfuscated2 header's worth of bytes looked right (an HTTP request, say).
    if (code === 'MTP_ERR_UNKNOWN_TRANSPORT' && this.stage === STAGE_HELLO) return 'first_bytes';
    return handshakeStage(code);
  }

  private logFailure(code: string): void {
    this.env.log.debug(
      {
        listener: this.listener.name,
        remote: this.socket.remoteAddress,
        code,
        ja4: this.helloFingerprint ?? undefined,
      },
      'client handshake failed',
    );
  }

  private handshakeRemaining(): number {
    return Math.max(0, this.startedAt + this.handshakeMs - Date.now());
  }

  private finishLater(ms: number): void {
    this.deadline.arm(ms, () => this.finish('rejected'));
  }

  private onHandshakeTimeout(): void {
    if (this.stage === STAGE_REJECTED) {
      this.finish('rejected');
      return;
    }
    this.stats.fail('MTP_ERR_HANDSHAKE_TIMEOUT', this.failureStage('MTP_ERR_HANDSHAKE_TIMEOUT'));
    this.logFailure('MTP_ERR_HANDSHAKE_TIMEOUT');
    this.finish('handshake_timeout');
  }

  /** @internal (socket listener) */
  onSocketEnd(): void {
    // Half-closed while the upstream opens: wait for it only if there is something to deliver.
    if (this.stage === STAGE_CONNECTING && this.pending.length > 0) this.clientEnded = true;
    else if (this.stage === STAGE_RELAY) this.endClientInput();
    else this.finish('client_end', true);
  }

  /**
   * The client will send nothing more. An upstream that can half-close (direct) passes the FIN on and keeps
   * answering until the DC closes; otherwise the session ends, flushing what is queued for the client.
   */
  private endClientInput(): void {
    const handle = this.handle;
    if (handle?.endInput) handle.endInput();
    else this.finish('client_end', true);
  }

  private releaseTicket(): void {
    const t = this.ticket;
    this.ticket = null;
    t?.release();
  }

  private countEnd(): void {
    this.stats.connectionsActive--;
    if (this.protocol !== null && this.decrypt !== null) this.stats.sessionsActive[this.protocol]--;
  }

  /** @internal End the session (idempotent). */
  finish(reason: string, flush = false): void {
    if (this.stage === STAGE_DONE) return;
    // Gone before its first byte: a TCP-level failure (a reset by a middlebox, a port scan, a health check).
    if (
      this.stage === STAGE_HELLO &&
      (this.raw === null || this.raw.length === 0) &&
      reason.startsWith('client_')
    )
      this.stats.failAt('tcp');
    this.stage = STAGE_DONE;
    this.deadline.clear();
    this.flow.stop();
    this.releaseTicket();
    const handle = this.handle;
    this.handle = null;
    this.pending = [];
    this.afterHeader = null;
    this.raw = null;
    this.countEnd();
    const s = this.socket;
    s.off('data', socketData);
    // After the upstream ended, the client gets a bounded time to take the rest of our output.
    if (flush) closeAfterFlush(s);
    else s.destroy();
    if (handle) {
      try {
        handle.close();
      } catch (err) {
        this.env.log.warn({ err, listener: this.listener.name }, 'upstream close failed');
      }
    }
    this.env.log.trace({ listener: this.listener.name, reason }, 'session ended');
  }
}

// Shared socket listeners: `this` is the socket, the session is found through SESSION.

function socketData(this: net.Socket, chunk: Buffer): void {
  sessionOf(this)?.onData(chunk);
}

function socketDrain(this: net.Socket): void {
  sessionOf(this)?.onDrain();
}

function socketEnd(this: net.Socket): void {
  sessionOf(this)?.onSocketEnd();
}

function socketIdle(this: net.Socket): void {
  sessionOf(this)?.finish('idle_timeout');
}

function socketError(this: net.Socket): void {
  sessionOf(this)?.finish('client_error');
}

function socketClose(this: net.Socket): void {
  sessionOf(this)?.finish('client_closed');
}

function releaseClientHold(session: ClientSession): void {
  session.onClientHoldOver();
}

function releaseUpstreamHold(session: ClientSession): void {
  session.onUpstreamHoldOver();
}

function resumeAfterYield(session: ClientSession): void {
  session.resumeAfterYield();
}

function uncorkSession(session: ClientSession): void {
  session.uncork();
}
