/**
 * Telegram Desktop (telegramdesktop/tdesktop, Telegram/SourceFiles/mtproto/details/mtproto_tls_socket.cpp,
 * TlsSocket::readHello, checkHelloParts12, checkHelloParts34, checkHelloDigest, checkNextPacket):
 * - part 1: 16 03 03 and a two-byte length of the ServerHello record;
 * - part 3: after that record, 14 03 03 00 01 01 17 03 03 and the length of one application-data record;
 * - the digest: HMAC-SHA256(secret, client random ‖ exactly those three records with bytes 11..43 zeroed)
 *   equals bytes 11..43; bytes after the flight are kept for the data phase;
 * - no length limit beyond the two-byte fields; the ServerHello body is not parsed;
 * - data phase: every record must start 17 03 03; empty records are skipped.
 */
import {
  APP_DATA_HEADER,
  CCS_THEN_APP_DATA,
  digestMatches,
  type FlightOracle,
  SERVER_HELLO_PREFIX,
} from './common.ts';

export const desktop: FlightOracle = {
  app: 'desktop',
  source: 'telegramdesktop/tdesktop Telegram/SourceFiles/mtproto/details/mtproto_tls_socket.cpp',
  judge(chunks, clientRandom, secret, after) {
    const all = Buffer.concat([...chunks, after ?? Buffer.alloc(0)]);
    if (all.length < 5) return { ok: false, reason: 'flight incomplete' };
    if (!all.subarray(0, 3).equals(SERVER_HELLO_PREFIX))
      return { ok: false, reason: 'Bad Server Hello part1' };
    const part2 = all.readUInt16BE(3);
    const part3At = 5 + part2;
    if (all.length < part3At + 11) return { ok: false, reason: 'flight incomplete' };
    if (!all.subarray(part3At, part3At + 9).equals(CCS_THEN_APP_DATA))
      return { ok: false, reason: 'Bad Server Hello part' };
    const full = part3At + 11 + all.readUInt16BE(part3At + 9);
    if (all.length < full) return { ok: false, reason: 'flight incomplete' };
    if (!digestMatches(all.subarray(0, full), clientRandom, secret))
      return { ok: false, reason: 'Bad Server Hello digest' };
    for (let pos = full; pos + 5 <= all.length; ) {
      if (!all.subarray(pos, pos + 3).equals(APP_DATA_HEADER))
        return { ok: false, reason: 'Bad packet header' };
      pos += 5 + all.readUInt16BE(pos + 3);
    }
    return { ok: true, flightLength: full };
  },
};
