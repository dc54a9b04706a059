/**
 * Telegram iOS and macOS (TelegramMessenger/Telegram-iOS, submodules/MtProtoKit/Sources/MTTcpConnection.m,
 * the MTTcpSocksReceiveHelloResponse, ...Response1, ...Response2 and MTTcpSocksReceiveComplexLength reads):
 * - 5 bytes: 16 03 03 and a signed 16-bit length that must be 0..10240 (10 KiB);
 * - that many bytes plus 11: the last 11 must be 14 03 03 00 01 01 17 03 03 and a second signed length,
 *   again 0..10240;
 * - that many bytes; then HMAC-SHA256(secret, client random ‖ the three records with bytes 11..43 zeroed)
 *   must equal bytes 11..43; the ServerHello body is not parsed;
 * - data phase: 5-byte headers 17 03 03 with a non-negative signed length, then the payload.
 */
import {
  APP_DATA_HEADER,
  CCS_THEN_APP_DATA,
  digestMatches,
  type FlightOracle,
  SERVER_HELLO_PREFIX,
} from './common.ts';

const MAX_LENGTH = 10 * 1024;

export const ios: FlightOracle = {
  app: 'ios',
  source: 'TelegramMessenger/Telegram-iOS submodules/MtProtoKit/Sources/MTTcpConnection.m',
  judge(chunks, clientRandom, secret, after) {
    const all = Buffer.concat([...chunks, after ?? Buffer.alloc(0)]);
    if (all.length < 5) return { ok: false, reason: 'flight incomplete' };
    if (!all.subarray(0, 3).equals(SERVER_HELLO_PREFIX))
      return { ok: false, reason: 'invalid hello response header' };
    const first = all.readInt16BE(3);
    if (first < 0 || first > MAX_LENGTH)
      return { ok: false, reason: 'invalid hello response header length marker' };
    const part1End = 5 + first + 11;
    if (all.length < part1End) return { ok: false, reason: 'flight incomplete' };
    if (!all.subarray(part1End - 11, part1End - 2).equals(CCS_THEN_APP_DATA))
      return { ok: false, reason: 'invalid hello response1 part' };
    const second = all.readInt16BE(part1End - 2);
    if (second < 0 || second > MAX_LENGTH)
      return { ok: false, reason: 'invalid hello response header length marker' };
    const full = part1End + second;
    if (all.length < full) return { ok: false, reason: 'flight incomplete' };
    if (!digestMatches(all.subarray(0, full), clientRandom, secret))
      return { ok: false, reason: 'invalid hello response random' };
    for (let pos = full; pos + 5 <= all.length; ) {
      if (!all.subarray(pos, pos + 3).equals(APP_DATA_HEADER))
        return { ok: false, reason: 'invalid complex header' };
      const n = all.readInt16BE(pos + 3);
      if (n < 0) return { ok: false, reason: 'invalid complex header length marker' };
      pos += 5 + n;
    }
    return { ok: true, flightLength: full };
  },
};
