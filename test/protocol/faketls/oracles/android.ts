/**
 * Telegram Android (DrKLO/Telegram, TMessagesProj/jni/tgnet/ConnectionSocket.cpp, ConnectionSocket::onEvent
 * while the fake-TLS answer is awaited):
 * - nothing is judged before 16 bytes have arrived; everything read is kept in one 64 KiB buffer, more
 *   closes the connection;
 * - bytes 0..3 must be 16 03 03; the next two give len1 (at most 64 KiB - 5); it waits for 5 + len1 bytes;
 * - at 5 + len1 come 14 03 03 00 01 01 17 03 03 and a length len2; it waits for len1 + len2 + 16 bytes;
 * - the digest: HMAC-SHA256(secret, client random ‖ EVERY byte read so far, with bytes 11..43 zeroed) must
 *   equal bytes 11..43. Bytes beyond the flight that arrived in the same reads are inside the HMAC, so the
 *   flight must come alone (the proxy sends nothing more until the client speaks);
 * - the ServerHello body is not parsed: cipher suite, key share group and key length are not looked at;
 * - after the flight every record must start 17 03 03, its length at most 64 KiB.
 */
import {
  APP_DATA_HEADER,
  CCS_THEN_APP_DATA,
  digestMatches,
  type FlightOracle,
  SERVER_HELLO_PREFIX,
} from './common.ts';

const BUFFER = 64 * 1024;

export const android: FlightOracle = {
  app: 'android',
  source: 'DrKLO/Telegram TMessagesProj/jni/tgnet/ConnectionSocket.cpp',
  judge(chunks, clientRandom, secret, after) {
    let read = Buffer.alloc(0);
    for (const chunk of chunks) {
      read = Buffer.concat([read, chunk]);
      if (read.length > BUFFER)
        return { ok: false, reason: 'more than 64 KiB before the flight was complete' };
      if (read.length < 16) continue;
      if (!read.subarray(0, 3).equals(SERVER_HELLO_PREFIX)) return { ok: false, reason: 'hello1 mismatch' };
      const len1 = read.readUInt16BE(3);
      if (len1 > BUFFER - 5) return { ok: false, reason: 'len1 invalid' };
      if (read.length < len1 + 5) continue;
      if (read.length < len1 + 5 + 11) continue;
      if (!read.subarray(5 + len1, 5 + len1 + 9).equals(CCS_THEN_APP_DATA))
        return { ok: false, reason: 'hello2 mismatch' };
      const len2 = read.readUInt16BE(5 + len1 + 9);
      if (len2 > BUFFER - len1 - 5 - 11) return { ok: false, reason: 'len2 invalid' };
      if (read.length < len1 + len2 + 16) continue;
      if (!digestMatches(read, clientRandom, secret)) return { ok: false, reason: 'TLS hash mismatch' };
      const rest = Buffer.concat([read.subarray(len1 + len2 + 16), after ?? Buffer.alloc(0)]);
      for (let pos = 0; pos + 5 <= rest.length; ) {
        if (!rest.subarray(pos, pos + 3).equals(APP_DATA_HEADER))
          return { ok: false, reason: 'TLS response header1 mismatch' };
        const n = rest.readUInt16BE(pos + 3);
        if (n > BUFFER) return { ok: false, reason: 'TLS response len1 invalid' };
        pos += 5 + n;
      }
      return { ok: true, flightLength: len1 + len2 + 16 };
    }
    return { ok: false, reason: 'flight incomplete' };
  },
};
