/**
 * A ServerHello that a real TLS 1.3 parser (a client fork on a TLS library, a middlebox) finds consistent
 * with the hello it answers (RFC 8446 §4.1.3, §4.2.8; X25519MLKEM768 share sizes from
 * draft-ietf-tls-ecdhe-mlkem: client 1184 + 32, server 1088 + 32). The official apps check none of this
 * (see android.ts, desktop.ts, ios.ts); it guards what a passive observer or a stricter client could see.
 */
import { parseClientHello } from '../../../../src/protocol/faketls/client-hello.ts';

const SERVER_SHARE_LENGTH = new Map<number, number>([
  [0x11ec, 1120],
  [0x001d, 32],
  [0x0017, 65],
  [0x0018, 97],
]);
const HRR_RANDOM = 'cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c';

export interface ServerHelloFacts {
  cipherSuite: number;
  group: number;
  keyShareLength: number;
  extensions: number[];
  certRecordLength: number;
}

/** Throws with a reason when `flight` is not a consistent answer to `helloRecord`; else what it chose. */
export function checkTls13Answer(flight: Buffer, helloRecord: Buffer): ServerHelloFacts {
  const hello = parseClientHello(helloRecord);
  const fail = (why: string): never => {
    throw new Error(`inconsistent ServerHello: ${why}`);
  };
  if (flight[0] !== 0x16 || flight[1] !== 3 || flight[2] !== 3) fail('record header');
  const recordLength = flight.readUInt16BE(3);
  const end = 5 + recordLength;
  if (flight[5] !== 0x02 || flight.readUIntBE(6, 3) !== recordLength - 4) fail('handshake header');
  let p = 9;
  if (flight.readUInt16BE(p) !== 0x0303) fail('legacy_version');
  p += 2;
  if (flight.subarray(p, p + 32).toString('hex') === HRR_RANDOM) fail('HelloRetryRequest random');
  p += 32;
  const sidLength = flight[p++];
  if (!flight.subarray(p, p + sidLength).equals(hello.sessionId)) fail('session id not echoed');
  p += sidLength;
  const cipherSuite = flight.readUInt16BE(p);
  p += 2;
  if (!hello.cipherSuites.includes(cipherSuite)) fail('cipher suite not offered');
  if (cipherSuite < 0x1301 || cipherSuite > 0x1305) fail('not a TLS 1.3 cipher suite');
  if (flight[p++] !== 0) fail('compression');
  const extEnd = p + 2 + flight.readUInt16BE(p);
  p += 2;
  if (extEnd !== end) fail('extensions length');
  const extensions: number[] = [];
  let group = -1;
  let keyShareLength = -1;
  let version = -1;
  while (p < extEnd) {
    const type = flight.readUInt16BE(p);
    const length = flight.readUInt16BE(p + 2);
    if (extensions.includes(type)) fail('duplicate extension');
    extensions.push(type);
    if (type === 0x002b) version = flight.readUInt16BE(p + 4);
    if (type === 0x0033) {
      group = flight.readUInt16BE(p + 4);
      keyShareLength = flight.readUInt16BE(p + 6);
      if (keyShareLength + 4 !== length) fail('key_share length');
    }
    p += 4 + length;
  }
  if (p !== extEnd) fail('extension overrun');
  if (version !== 0x0304) fail('supported_versions is not TLS 1.3');
  if (extensions.length !== 2) fail('extensions other than supported_versions and key_share');
  const offered = hello.keyShares?.find((k) => k.group === group);
  if (offered === undefined) fail('key share group the client sent no share for');
  const want = SERVER_SHARE_LENGTH.get(group) ?? offered?.key.length;
  if (keyShareLength !== want) fail(`key share of ${keyShareLength} bytes for group ${group.toString(16)}`);
  if (!flight.subarray(end, end + 6).equals(Buffer.from('140303000101', 'hex'))) fail('ChangeCipherSpec');
  const appAt = end + 6;
  if (flight[appAt] !== 0x17 || flight[appAt + 1] !== 3 || flight[appAt + 2] !== 3) fail('application data');
  const certRecordLength = flight.readUInt16BE(appAt + 3);
  if (certRecordLength === 0 || certRecordLength > 16384 + 256) fail('application data length');
  if (appAt + 5 + certRecordLength !== flight.length) fail('bytes after the flight');
  return { cipherSuite, group, keyShareLength, extensions, certRecordLength };
}
