/**
 * What a cover site's first TLS 1.3 flight says, read from its bytes alone (no I/O): the ServerHello's
 * choices (cipher suite, key-share group, extension order) and the size of the encrypted handshake
 * records that follow it (the certificate chain etc.), which the fake server flight imitates.
 */
import { GROUP_X25519_MLKEM768 } from '../protocol/faketls/client-hello.ts';
import { MAX_RECORD_PAYLOAD } from '../protocol/faketls/records.ts';

export interface CoverProfile {
  /** Bytes of the one application-data record imitating the encrypted flight. */
  certRecordSize: number;
  /** The site answered a PQ-capable hello with X25519MLKEM768 (null: unknown). */
  selectsPq: boolean | null;
  /** Cipher suite the site picked for a Telegram-shaped hello (null: unknown). */
  cipherSuite: number | null;
  /** Its ServerHello puts supported_versions before key_share (as OpenSSL does); null: unknown. */
  versionsFirst: boolean | null;
  source: 'probe' | 'random';
}

/**
 * The profile of a server's first flight: the ServerHello, then the sum of the records after it (CCS
 * excluded). Null when the flight is not a complete TLS 1.3-looking answer: it does not start with a
 * ServerHello, carries an alert, has nothing after the ServerHello, or is not `final` (more may follow).
 * A record cut short at the end of `flight` is not counted.
 */
export function measureFlight(flight: Buffer, final: boolean): CoverProfile | null {
  if (flight.length < 5 || flight[0] !== 0x16) return null;
  let pos = 0;
  let sawHello = false;
  let shape: ServerHelloShape | null = null;
  let size = 0;
  while (pos + 5 <= flight.length) {
    const type = flight[pos];
    const length = flight.readUInt16BE(pos + 3);
    if (pos + 5 + length > flight.length) break;
    const body = flight.subarray(pos + 5, pos + 5 + length);
    if (!sawHello) {
      if (type !== 0x16 || body[0] !== 0x02) return null;
      sawHello = true;
      shape = parseServerHello(body);
    } else if (type === 0x17 || type === 0x16) {
      size += length;
    } else if (type === 0x15) {
      return null;
    }
    pos += 5 + length;
  }
  if (!sawHello || shape === null || size === 0 || !final) return null;
  return {
    certRecordSize: Math.min(size, MAX_RECORD_PAYLOAD),
    selectsPq: shape.group === GROUP_X25519_MLKEM768,
    cipherSuite: shape.cipherSuite,
    versionsFirst: shape.versionsFirst,
    source: 'probe',
  };
}

export interface ServerHelloShape {
  cipherSuite: number;
  /** The key_share extension's group; -1 without one. */
  group: number;
  versionsFirst: boolean;
}

/** What a ServerHello handshake body (from its type byte) chose, or null when it does not parse as one. */
export function parseServerHello(body: Buffer): ServerHelloShape | null {
  try {
    let p = 4 + 2 + 32;
    p += 1 + body[p];
    const cipherSuite = body.readUInt16BE(p);
    p += 2 + 1;
    const extEnd = p + 2 + body.readUInt16BE(p);
    p += 2;
    let group = -1;
    let versionsAt = -1;
    let keyShareAt = -1;
    for (let i = 0; p + 4 <= extEnd; i++) {
      const type = body.readUInt16BE(p);
      const len = body.readUInt16BE(p + 2);
      if (type === 0x0033 && len >= 2) {
        group = body.readUInt16BE(p + 4);
        keyShareAt = i;
      } else if (type === 0x002b) {
        versionsAt = i;
      }
      p += 4 + len;
    }
    return { cipherSuite, group, versionsFirst: versionsAt >= 0 && versionsAt < keyShareAt };
  } catch {
    // A truncated ServerHello: nothing learned.
    return null;
  }
}
