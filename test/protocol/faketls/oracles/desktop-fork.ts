/**
 * A Desktop fork with a BoringSSL-shaped hello and TLS session tickets (a variant of tdesktop's
 * Telegram/SourceFiles/mtproto/details/mtproto_tls_socket.cpp seen in public forks): as soon as a read
 * leaves 5 bytes, TlsSocket::readHello checks 16 03 03, walks the complete records received so far
 * (SkipTlsRecords) and TlsSocket::checkHelloDigest takes the HMAC over the client digest and EVERY byte
 * read. So the whole flight must arrive in the first read, and alone: the proxy writes it in one piece and
 * sends nothing more before the client speaks. Data phase as the official Desktop: 17 03 03 records.
 */
import { APP_DATA_HEADER, digestMatches, type FlightOracle, SERVER_HELLO_PREFIX } from './common.ts';

export const desktopFork: FlightOracle = {
  app: 'desktop-fork',
  source: 'tdesktop forks, Telegram/SourceFiles/mtproto/details/mtproto_tls_socket.cpp (SkipTlsRecords)',
  judge(chunks, clientRandom, secret, after) {
    // The first read that holds the ServerHello header decides (a read is what the socket had).
    let read = Buffer.alloc(0);
    for (const chunk of chunks) {
      read = Buffer.concat([read, chunk]);
      if (read.length < 5) continue;
      if (!read.subarray(0, 3).equals(SERVER_HELLO_PREFIX))
        return { ok: false, reason: 'Bad Server Hello part1' };
      let end = 0;
      while (end + 5 <= read.length && end + 5 + read.readUInt16BE(end + 3) <= read.length)
        end += 5 + read.readUInt16BE(end + 3);
      // Nothing complete past the ServerHello yet: it would wait for more.
      if (end <= 5 + read.readUInt16BE(3)) continue;
      if (!digestMatches(read.subarray(0, end), clientRandom, secret))
        return { ok: false, reason: 'Bad Server Hello digest' };
      const rest = Buffer.concat([read.subarray(end), after ?? Buffer.alloc(0)]);
      for (let pos = 0; pos + 5 <= rest.length; pos += 5 + rest.readUInt16BE(pos + 3)) {
        if (!rest.subarray(pos, pos + 3).equals(APP_DATA_HEADER))
          return { ok: false, reason: 'Bad packet header' };
      }
      return { ok: true, flightLength: end };
    }
    return { ok: false, reason: 'flight incomplete' };
  },
};
