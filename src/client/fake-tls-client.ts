/**
 * Client side of a fake-TLS (`ee`) connection, as Telegram's client does it: send a ClientHello carrying
 * the digest, check the proxy's signed answer, then carry the obfuscated2 stream in application-data
 * records (the first one preceded by a ChangeCipherSpec record).
 */
import type net from 'node:net';
import { CHANGE_CIPHER_SPEC_RECORD, encodeAppData, TlsRecordDecoder } from '../protocol/faketls/records.ts';
import { buildClientHello, type HelloShape, helloRandom, readServerFlight } from './tls-hello.ts';
import { MtpError } from '../runtime/errors.ts';

export interface FakeTlsClientOptions {
  secret: Buffer;
  domain: string;
  shape?: HelloShape;
  /** Client clock in Unix seconds (default: now). */
  unixTime?: number;
  timeoutMs?: number;
}

/** Why the proxy did not accept us: a real TLS server answered (fronted), an alert, or garbage/close. */
export class FakeTlsHandshakeError extends MtpError {
  readonly reason: 'fronted' | 'alert' | 'invalid' | 'closed' | 'timeout';
  readonly alert: number | null;
  constructor(reason: FakeTlsHandshakeError['reason'], alert: number | null = null) {
    super(
      'client',
      'MTP_ERR_CLIENT_TLS_HANDSHAKE',
      `fake-TLS handshake failed: ${reason}${alert === null ? '' : ` (alert ${alert})`}`,
    );
    this.name = 'FakeTlsHandshakeError';
    this.reason = reason;
    this.alert = alert;
  }
}

/** Wraps outgoing stream bytes into records and unwraps incoming ones. */
export class FakeTlsFraming {
  private first = true;
  private readonly decoder = new TlsRecordDecoder();

  wrap(bytes: Buffer): Buffer {
    const records = encodeAppData(bytes);
    if (!this.first || records.length === 0) return records;
    this.first = false;
    return Buffer.concat([CHANGE_CIPHER_SPEC_RECORD, records]);
  }

  /** Calls `onData` with stream bytes; throws ProtocolError on a bad record. */
  unwrap(chunk: Buffer, onData: (bytes: Buffer) => void): void {
    this.decoder.decode(chunk, onData);
  }
}

/**
 * Run the handshake on a connected socket. Resolves with the framing to use and any stream bytes that came
 * right behind the server flight (already unwrapped is not possible yet: they are raw record bytes).
 */
export function fakeTlsHandshake(
  socket: net.Socket,
  opts: FakeTlsClientOptions,
): Promise<{ framing: FakeTlsFraming; leftover: Buffer }> {
  const hello = buildClientHello({
    shape: opts.shape ?? 'modern',
    secret: opts.secret,
    domain: opts.domain,
    unixTime: opts.unixTime ?? Math.floor(Date.now() / 1000),
  });
  const random = helloRandom(hello);
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onClose);
    };
    const fail = (e: FakeTlsHandshakeError): void => {
      cleanup();
      reject(e);
    };
    const onClose = (): void => fail(new FakeTlsHandshakeError('closed'));
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const r = readServerFlight(buf, random, opts.secret);
      switch (r.kind) {
        case 'need-more':
          return;
        case 'proxy':
          cleanup();
          resolve({ framing: new FakeTlsFraming(), leftover: buf.subarray(r.length) });
          return;
        case 'alert':
          fail(new FakeTlsHandshakeError('alert', r.description));
          return;
        case 'fronted':
          fail(new FakeTlsHandshakeError('fronted'));
          return;
        default:
          fail(new FakeTlsHandshakeError('invalid'));
      }
    };
    const timer = setTimeout(() => fail(new FakeTlsHandshakeError('timeout')), opts.timeoutMs ?? 10_000);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onClose);
    socket.write(hello);
  });
}
