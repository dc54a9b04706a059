/**
 * Client side of fake-TLS: ClientHellos shaped like the ones Telegram's client library sends, with the
 * digest for a secret and time, and the check of the proxy's answer.
 *
 * Shapes:
 * - 'modern': the 2026 Chrome-like hello (~1.7 KB): GREASE, 16 extensions in a random order per connection,
 *   X25519MLKEM768 + X25519 key shares, ECH GREASE with a 144..240-byte payload, ALPS, no padding.
 * - 'darwin': the variant the same library sends on Apple platforms (Safari-like): fixed extension order, one
 *   of two cipher lists, no ECH, PQ key share.
 * - 'legacy': the older fixed 517-byte hello (key share, supported_versions, SNI, padding to 512 bytes).
 */
import { createHmac, generateKeyPairSync, randomBytes, randomInt } from 'node:crypto';
import { RANDOM_OFFSET } from '../protocol/faketls/client-hello.ts';
import { verifyServerHelloDigest } from '../protocol/faketls/server-hello.ts';

export type HelloShape = 'modern' | 'darwin' | 'legacy';

export interface ClientHelloOptions {
  shape: HelloShape;
  secret: Buffer;
  domain: string;
  /** Client clock, Unix seconds. */
  unixTime: number;
  /** 32 bytes; random by default. */
  sessionId?: Buffer;
  /** 32-byte X25519 public key; a fresh one by default. */
  x25519Key?: Buffer;
  /** Legacy shape only: GREASE bytes for cipher list, key share and versions (e.g. [0xea, 0x5a, 0x1a]). */
  legacyGrease?: [number, number, number];
  /** Modern shape: keep the extensions in a fixed order (for reproducible tests). */
  fixedOrder?: boolean;
}

function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n);
  return b;
}

/** `parts` prefixed with their total length as u16. */
function vec16(...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([u16(body.length), body]);
}

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

function ext(type: number, ...data: Buffer[]): Buffer {
  return Buffer.concat([u16(type), vec16(...data)]);
}

/** Seven GREASE values, neighbours in each pair distinct (as the client library draws them). */
function drawGrease(): number[] {
  const bytes = [...randomBytes(7)].map((c) => (c & 0xf0) | 0x0a);
  for (let i = 1; i < bytes.length; i += 2) if (bytes[i] === bytes[i - 1]) bytes[i] ^= 0x10;
  return bytes.map((c) => (c << 8) | c);
}

export function x25519PublicKey(): Buffer {
  const { publicKey } = generateKeyPairSync('x25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32));
}

/** An ML-KEM-768 encapsulation key: 256·3 coefficients below q = 3329 packed in 12 bits, then 32-byte rho. */
function mlKem768Key(): Buffer {
  const out = Buffer.allocUnsafe(1184);
  let o = 0;
  for (let i = 0; i < 384; i++) {
    const a = randomInt(3329);
    const b = randomInt(3329);
    out[o++] = a & 0xff;
    out[o++] = (a >> 8) | ((b & 0x0f) << 4);
    out[o++] = b >> 4;
  }
  randomBytes(32).copy(out, o);
  return out;
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function serverNameExt(domain: string): Buffer {
  const name = Buffer.from(domain, 'latin1');
  return ext(0x0000, vec16(Buffer.from([0]), vec16(name)));
}

/** Everything before the extensions: version, a zero random (signed last), session id, suites, no compression. */
function helloHead(o: ClientHelloOptions, greaseSuite: number, suites: Buffer): Buffer {
  return Buffer.concat([
    hex('0303'),
    Buffer.alloc(32),
    Buffer.from([32]),
    o.sessionId ?? randomBytes(32),
    vec16(u16(greaseSuite), suites),
    hex('01 00'),
  ]);
}

/** key_share with a GREASE entry, the hybrid X25519MLKEM768 share and a plain X25519 one. */
function hybridKeyShareExt(greaseGroup: number, x25519: Buffer): Buffer {
  return ext(
    0x0033,
    vec16(
      u16(greaseGroup),
      hex('0001 00'),
      hex('11ec'),
      vec16(mlKem768Key(), x25519PublicKey()),
      hex('001d'),
      vec16(x25519),
    ),
  );
}

const MODERN_SUITES = hex('1301 1302 1303 c02b c02f c02c c030 cca9 cca8 c013 c014 009c 009d 002f 0035');

function modernBody(o: ClientHelloOptions): Buffer {
  const grease = drawGrease();
  const x25519 = o.x25519Key ?? x25519PublicKey();
  const echPayloadLength = 144 + 32 * randomInt(4);
  const extensions = [
    serverNameExt(o.domain),
    ext(0x0005, hex('01 00000000')),
    ext(0x000a, vec16(u16(grease[4]), hex('11ec 001d 0017 0018'))),
    ext(0x000b, hex('01 00')),
    ext(0x000d, vec16(hex('0403 0804 0401 0503 0805 0501 0806 0601'))),
    ext(0x0010, vec16(hex('02'), Buffer.from('h2'), hex('08'), Buffer.from('http/1.1'))),
    ext(0x0012),
    ext(0x0017),
    ext(0x001b, hex('02 0002')),
    ext(0x0023),
    ext(0x002b, Buffer.from([6]), u16(grease[6]), hex('0304 0303')),
    ext(0x002d, hex('01 01')),
    hybridKeyShareExt(grease[4], x25519),
    ext(0x44cd, hex('0003 02'), Buffer.from('h2')),
    ext(
      0xfe0d,
      hex('00 0001 0001'),
      randomBytes(1),
      vec16(randomBytes(32)),
      vec16(randomBytes(echPayloadLength)),
    ),
    ext(0xff01, hex('00')),
  ];
  if (!o.fixedOrder) shuffle(extensions);
  return Buffer.concat([
    helloHead(o, grease[0], MODERN_SUITES),
    vec16(ext(grease[2]), ...extensions, ext(grease[3], hex('00'))),
  ]);
}

const DARWIN_SUITES = [
  hex('1302 1301 1303 c02c c030 c02b cca9 c02f cca8 c00a c009 c014 c013'),
  hex('1302 1303 1301 c02c c02b cca9 c030 c02f cca8 c00a c009 c014 c013 009d 009c 0035 002f c008 c012 000a'),
];

function darwinBody(o: ClientHelloOptions): Buffer {
  const grease = drawGrease();
  const alpn =
    randomInt(2) === 0
      ? vec16(hex('08'), Buffer.from('http/1.1'))
      : vec16(hex('02'), Buffer.from('h2'), hex('08'), Buffer.from('http/1.1'));
  const extensions = [
    ext(grease[2]),
    serverNameExt(o.domain),
    ext(0x0017),
    ext(0xff01, hex('00')),
    ext(0x000a, vec16(u16(grease[4]), hex('11ec 001d 0017 0018 0019'))),
    ext(0x000b, hex('01 00')),
    ext(0x0010, alpn),
    ext(0x0005, hex('01 00000000')),
    ext(0x000d, vec16(hex('0403 0804 0401 0503 0805 0805 0501 0806 0601 0201'))),
    ext(0x0012),
    hybridKeyShareExt(grease[4], o.x25519Key ?? x25519PublicKey()),
    ext(0x002d, hex('01 01')),
    ext(0x002b, Buffer.from([6]), u16(grease[6]), hex('0304 0303')),
    ext(0x001b, hex('02 0001')),
    ext(grease[3], hex('00')),
  ];
  return Buffer.concat([helloHead(o, grease[0], DARWIN_SUITES[randomInt(2)]), vec16(...extensions)]);
}

const LEGACY_SUITES = hex('1301 1302 1303 c02b c02f c02c c030 cca9 cca8 c013 c014 009c 009d 002f 0035 000a');

function legacyBody(o: ClientHelloOptions): Buffer {
  const [gCipher, gShare, gVersions] = (
    o.legacyGrease ??
    drawGrease()
      .slice(0, 3)
      .map((g) => g & 0xff)
  ).map((g) => (g << 8) | g);
  const extensions = [
    ext(0x0033, vec16(u16(gShare), hex('0001 00 001d'), vec16(o.x25519Key ?? x25519PublicKey()))),
    ext(0x002b, Buffer.from([10]), u16(gVersions), hex('0304 0303 0302 0301')),
    serverNameExt(o.domain),
  ];
  const head = helloHead(o, gCipher, LEGACY_SUITES);
  // Pad with extension 0x0015 so that the record payload is exactly 512 bytes.
  const used = 4 + head.length + 2 + extensions.reduce((n, e) => n + e.length, 0);
  const padding = 512 - used - 4;
  if (padding >= 0) extensions.push(ext(0x0015, Buffer.alloc(padding)));
  return Buffer.concat([head, vec16(...extensions)]);
}

/** A complete ClientHello record with the digest for `secret` and `unixTime` in its random. */
export function buildClientHello(o: ClientHelloOptions): Buffer {
  const body = o.shape === 'legacy' ? legacyBody(o) : o.shape === 'darwin' ? darwinBody(o) : modernBody(o);
  const handshake = Buffer.concat([Buffer.from([0x01, 0x00]), vec16(body)]);
  const record = Buffer.concat([hex('160301'), vec16(handshake)]);
  signClientHello(record, o.secret, o.unixTime);
  return record;
}

/** Write random = HMAC(secret, record with zero random) ⊕ (28 zero bytes ‖ uint32le(time)) into `record`. */
export function signClientHello(record: Buffer, secret: Buffer, unixTime: number): void {
  record.fill(0, RANDOM_OFFSET, RANDOM_OFFSET + 32);
  const digest = createHmac('sha256', secret).update(record).digest();
  const last = digest.readUInt32LE(28) ^ (unixTime >>> 0);
  digest.writeUInt32LE(last >>> 0, 28);
  digest.copy(record, RANDOM_OFFSET);
}

/** The hello's 32-byte random (needed to check the answer). */
export function helloRandom(record: Buffer): Buffer {
  return Buffer.from(record.subarray(RANDOM_OFFSET, RANDOM_OFFSET + 32));
}

/**
 * Re-cut a single-record hello into several handshake records whose payloads have the given sizes
 * (the last record takes what is left), as a fragmenting middlebox would.
 */
export function splitHelloRecords(record: Buffer, sizes: number[]): Buffer {
  const header = record.subarray(0, 3);
  const payload = record.subarray(5);
  const out: Buffer[] = [];
  let pos = 0;
  for (const size of sizes) {
    if (pos >= payload.length) break;
    const n = Math.max(1, Math.min(size, payload.length - pos));
    out.push(header, u16(n), payload.subarray(pos, pos + n));
    pos += n;
  }
  if (pos < payload.length) out.push(header, u16(payload.length - pos), payload.subarray(pos));
  return Buffer.concat(out);
}

export type ServerFlight =
  | { kind: 'need-more' }
  /** `length`: bytes of the flight (ServerHello, CCS, one application-data record). */
  | { kind: 'proxy'; length: number }
  /** Three complete records, but not signed with our secret: a real TLS server answered (we were fronted). */
  | { kind: 'fronted'; length: number }
  | { kind: 'alert'; description: number }
  | { kind: 'invalid' };

/** Read the proxy's answer the way Telegram's client does, then check its digest. */
export function readServerFlight(buf: Buffer, clientRandom: Buffer, secret: Buffer): ServerFlight {
  if (buf.length >= 1 && buf[0] === 0x15) {
    return buf.length >= 7 ? { kind: 'alert', description: buf[6] } : { kind: 'need-more' };
  }
  const prefixes = [hex('160303'), hex('140303000101170303')];
  let pos = 0;
  for (const prefix of prefixes) {
    if (buf.length < pos + prefix.length + 2) {
      const have = buf.subarray(pos);
      return prefix.subarray(0, have.length).equals(have.subarray(0, prefix.length))
        ? { kind: 'need-more' }
        : { kind: 'invalid' };
    }
    if (!buf.subarray(pos, pos + prefix.length).equals(prefix)) {
      return buf[0] === 0x16 ? { kind: 'fronted', length: buf.length } : { kind: 'invalid' };
    }
    pos += prefix.length;
    const length = buf.readUInt16BE(pos);
    pos += 2 + length;
    if (buf.length < pos) return { kind: 'need-more' };
  }
  const flight = buf.subarray(0, pos);
  return verifyServerHelloDigest(flight, clientRandom, secret)
    ? { kind: 'proxy', length: pos }
    : { kind: 'fronted', length: pos };
}
