/**
 * The contract between a client session (src/session) and whatever carries its traffic to Telegram
 * (src/upstream/direct: one TCP connection per client; src/upstream/middle: RPC links shared by many clients).
 *
 * Everything crossing this boundary is *plaintext* transport data: the session owns the client-side
 * obfuscated2 ciphers and the fake-TLS record layer, the upstream owns its own encryption.
 */
import type { ListenerConfig } from '../config/types.ts';
import type { TransportTag } from '../protocol/obfuscated2.ts';

/** What the session knows about a client once its handshake succeeded. */
export interface ClientInfo {
  listener: ListenerConfig;
  transport: TransportTag;
  /** Signed DC id from the client header. */
  dcId: number;
  remoteAddress: string;
  remotePort: number;
  /** Local address/port of the accepted socket. */
  localAddress: string;
  localPort: number;
  /** SNI for fake-TLS clients, else null. */
  tlsDomain: string | null;
  /** The user whose secret opened the session (null or absent: a listener secret). */
  readonly user?: string | null;
}

/** Callbacks the upstream uses to talk back to the session. */
export interface ClientSink {
  /** Direct mode: raw transport bytes from the DC (already decrypted from the DC leg). Returns false when the client is backlogged. */
  sendBytes(plain: Buffer): boolean;
  /** Middle mode: one packet payload from Telegram; the session frames it for the client's transport. */
  sendFrame(payload: Buffer): boolean;
  /** Middle mode: RPC_SIMPLE_ACK for this client. */
  sendQuickAck(token: number): void;
  /** The upstream became writable again after returning false: the session may resume reading the client. */
  resumeClient(): void;
  /** The upstream is gone (closed by Telegram, error, RPC_CLOSE_EXT). The session closes the client. */
  close(reason: string): void;
}

export interface UpstreamHandle {
  /** true: the session must decode client frames and call writeFrame; false: pass raw bytes to writeBytes. */
  readonly framed: boolean;
  /** Raw transport bytes from the client. Returns false when the upstream is backlogged (pause the client). */
  writeBytes(plain: Buffer): boolean;
  /** One decoded client packet. Returns false when backlogged. */
  writeFrame(payload: Buffer, quickAck: boolean): boolean;
  /** The client cannot take more data for now / can again (client-side backpressure). */
  pause(): void;
  resume(): void;
  /**
   * Optional: the client half-closed (sent FIN). Direct mode passes the FIN to the DC after queued bytes and
   * keeps relaying the DC's answers; without it the session simply ends.
   */
  endInput?(): void;
  /** The client ended; release everything (sends RPC_CLOSE_CONN in middle mode). Idempotent. */
  close(): void;
}

export interface Upstream {
  readonly kind: 'direct' | 'middle' | 'back';
  /**
   * Start carrying a client's traffic. Resolves once the upstream is ready to take writes (direct: the DC
   * TCP connection is up and the header sent; middle: the client is registered on a link).
   * Rejects with an Error whose `code` says why (e.g. MTP_ERR_UPSTREAM_CONNECT, MTP_ERR_NO_DC).
   */
  open(client: ClientInfo, sink: ClientSink): Promise<UpstreamHandle>;
  /** Stop all links and sockets (shutdown or mode change). */
  close(): Promise<void>;
  /** Optional: a small JSON-able summary for the admin status (links per DC, Telegram config age...). */
  status?(): Record<string, unknown>;
  /** Optional: a reload swapped the config; follow what is not re-read per connection (timers, sources). */
  configChanged?(): void;
}
