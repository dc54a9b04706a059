/**
 * ClientHello fixtures of every shape the proxy meets in 2026, built here (no captured bytes): the official
 * apps after the April 2026 fingerprint changes, community clients with browser shapes, and one with the
 * oddities a hello may legally carry. Each is signed with the proxy secret the way the apps sign theirs
 * (HMAC over the single-record hello with a zero random, time XOR-ed into the last 4 bytes), and says how it
 * is delivered (records and TCP segments).
 *
 * Shapes (what matters for the proxy, not a byte-exact copy of any client):
 * - android:  Android 12.6.4+ (tdlib's Chrome-like hello): GREASE, X25519MLKEM768 + X25519 shares, ECH GREASE,
 *             ALPS, shuffled extensions, ~1.7 KB; written as two TCP segments.
 * - desktop:  Desktop 6.7.2+: the same family with another extension order and ALPS codepoint, one segment.
 * - ios:      iOS/macOS 12.6.2+: Safari-like, no server_name at all, ECH, PQ share, no fixed 512-byte padding.
 * - firefox:  Firefox-like: no GREASE, X25519MLKEM768 + X25519 + P-256 shares, record_size_limit,
 *             delegated_credentials, ECH.
 * - safari:   Safari-like: GREASE, fixed order, PQ share, no ECH.
 * - chrome148: Chrome 148-like: PQ share, ECH, ALPS, and a pre_shared_key extension (last, as it must be).
 * - quirks:   a community fork: unknown and duplicated extensions, GREASE in odd places, spread over three
 *             handshake records.
 */
import { generateKeyPairSync, randomBytes, randomInt } from 'node:crypto';
import { signClientHello, splitHelloRecords } from '../../src/client/tls-hello.ts';

export type HelloShapeName = 'android' | 'desktop' | 'ios' | 'firefox' | 'safari' | 'chrome148' | 'quirks';

export const HELLO_SHAPES: readonly HelloShapeName[] = [
  'android',
  'desktop',
  'ios',
  'firefox',
  'safari',
  'chrome148',
  'quirks',
];

export interface HelloFixture {
  shape: HelloShapeName;
  /** The hello as one record (what the digest covers). */
  record: Buffer;
  /** What goes on the wire: the record, or the same hello re-cut into several records. */
  wire: Buffer;
  /** TCP segments to write one after the other (together they are `wire`). */
  segments: Buffer[];
  /** The server_name sent, or null. */
  sni: string | null;
  /** The client random (needed to check the server's answer). */
  random: Buffer;
  /** Whether the hello offers an X25519MLKEM768 share. */
  offersPq: boolean;
}

export interface HelloFixtureOptions {
  secret: Buffer;
  /** Domain for server_name; ignored by shapes that send none (ios) unless `sni` overrides. */
  domain: string;
  unixTime: number;
  /** Force a server_name (a string) or none (null) whatever the shape does. */
  sni?: string | null;
}

const u8 = (n: number): Buffer => Buffer.from([n]);

function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

function vec8(...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([u8(body.length), body]);
}

function vec16(...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([u16(body.length), body]);
}

function ext(type: number, ...data: Buffer[]): Buffer {
  return Buffer.concat([u16(type), vec16(...data)]);
}

function grease(): number {
  const c = (randomInt(16) << 4) | 0x0a;
  return (c << 8) | c;
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function x25519Key(): Buffer {
  const der = generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32));
}

function p256Key(): Buffer {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  return Buffer.concat([u8(4), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

/** A real ML-KEM-768 encapsulation key (what the apps put in front of their X25519 key). */
function mlKemKey(): Buffer {
  return generateKeyPairSync('ml-kem-768').publicKey.export({ format: 'raw-public' }) as Buffer;
}

function hybridEntry(): Buffer {
  return Buffer.concat([u16(0x11ec), vec16(mlKemKey(), x25519Key())]);
}

function x25519Entry(): Buffer {
  return Buffer.concat([u16(0x001d), vec16(x25519Key())]);
}

function serverName(name: string): Buffer {
  return ext(0x0000, vec16(u8(0), vec16(Buffer.from(name, 'latin1'))));
}

function ech(): Buffer {
  // Outer ECH (GREASE or real, the proxy cannot tell): type 0, KDF/AEAD, config id, enc, payload.
  return ext(
    0xfe0d,
    hex('00 0001 0001'),
    randomBytes(1),
    vec16(randomBytes(32)),
    vec16(randomBytes(144 + 32 * randomInt(4))),
  );
}

const CHROME_SUITES = hex('1301 1302 1303 c02b c02f c02c c030 cca9 cca8 c013 c014 009c 009d 002f 0035');
const CHROME_SIGALGS = hex('0403 0804 0401 0503 0805 0501 0806 0601');
const alpn = (...names: string[]): Buffer => ext(0x0010, vec16(...names.map((n) => vec8(Buffer.from(n)))));

/** The extensions of the Chrome family (android, desktop, chrome148), GREASE and PSK added by the caller. */
function chromeExtensions(sni: string | null, alpsCodepoint: number, g: number): Buffer[] {
  const list = [
    ext(0x0005, hex('01 0000 0000')),
    ext(0x000a, vec16(u16(g), hex('11ec 001d 0017 0018'))),
    ext(0x000b, hex('01 00')),
    ext(0x000d, vec16(CHROME_SIGALGS)),
    alpn('h2', 'http/1.1'),
    ext(0x0012),
    ext(0x0017),
    ext(0x001b, hex('02 0002')),
    ext(0x0023),
    ext(0x002b, vec8(u16(grease()), hex('0304 0303'))),
    ext(0x002d, hex('01 01')),
    ext(0x0033, vec16(u16(g), hex('0001 00'), hybridEntry(), x25519Entry())),
    ext(alpsCodepoint, vec16(vec8(Buffer.from('h2')))),
    ech(),
    ext(0xff01, hex('00')),
  ];
  if (sni !== null) list.push(serverName(sni));
  return list;
}

interface Body {
  suites: Buffer;
  extensions: Buffer[];
}

function body(shape: HelloShapeName, sni: string | null): Body {
  switch (shape) {
    case 'android':
    case 'desktop': {
      const g = grease();
      const list = shuffle(chromeExtensions(sni, shape === 'android' ? 0x44cd : 0x4469, g));
      return {
        suites: Buffer.concat([u16(grease()), CHROME_SUITES]),
        extensions: [ext(grease()), ...list, ext(grease(), hex('00'))],
      };
    }
    case 'chrome148': {
      const g = grease();
      const list = shuffle(chromeExtensions(sni, 0x44cd, g));
      // pre_shared_key: one identity (a ticket) with its obfuscated age, one 32-byte binder.
      const psk = ext(
        0x0029,
        vec16(vec16(randomBytes(192)), u32(randomInt(2 ** 31))),
        vec16(vec8(randomBytes(32))),
      );
      return {
        suites: Buffer.concat([u16(grease()), CHROME_SUITES]),
        extensions: [ext(grease()), ...list, ext(grease(), hex('00')), psk],
      };
    }
    case 'ios':
    case 'safari': {
      const g = grease();
      const list = [
        ext(grease()),
        ...(sni !== null ? [serverName(sni)] : []),
        ext(0x0017),
        ext(0xff01, hex('00')),
        ext(0x000a, vec16(u16(g), hex('11ec 001d 0017 0018 0019'))),
        ext(0x000b, hex('01 00')),
        alpn('h2', 'http/1.1'),
        ext(0x0005, hex('01 0000 0000')),
        ext(0x000d, vec16(hex('0403 0804 0401 0503 0203 0805 0805 0501 0806 0601 0201'))),
        ext(0x0012),
        ext(0x0033, vec16(u16(g), hex('0001 00'), hybridEntry(), x25519Entry())),
        ext(0x002d, hex('01 01')),
        ext(0x002b, vec8(u16(grease()), hex('0304 0303'))),
        ext(0x001b, hex('02 0001')),
        ...(shape === 'ios' ? [ech()] : []),
        ext(grease(), hex('00')),
      ];
      return {
        suites: Buffer.concat([
          u16(grease()),
          hex(
            '1302 1303 1301 c02c c02b cca9 c030 c02f cca8 c00a c009 c014 c013 009d 009c 0035 002f c008 c012 000a',
          ),
        ]),
        extensions: list,
      };
    }
    case 'firefox':
      return {
        suites: hex('1301 1303 1302 c02b c02f cca9 cca8 c02c c030 c00a c009 c013 c014 009c 009d 002f 0035'),
        extensions: [
          ...(sni !== null ? [serverName(sni)] : []),
          ext(0x0017),
          ext(0xff01, hex('00')),
          ext(0x000a, vec16(hex('11ec 001d 0017 0018 0019 0100 0101'))),
          ext(0x000b, hex('01 00')),
          ext(0x0023),
          alpn('h2', 'http/1.1'),
          ext(0x0005, hex('01 0000 0000')),
          ext(0x0022, vec16(hex('0403 0503 0603 0203'))),
          ext(0x0033, vec16(hybridEntry(), x25519Entry(), Buffer.concat([u16(0x0017), vec16(p256Key())]))),
          ext(0x002b, vec8(hex('0304 0303'))),
          ext(0x000d, vec16(hex('0403 0503 0603 0804 0805 0806 0401 0501 0601 0203 0201'))),
          ext(0x002d, hex('01 01')),
          ext(0x001c, hex('4001')),
          ext(0x001b, hex('06 0001 0002 0003')),
          ech(),
        ],
      };
    case 'quirks': {
      const g = grease();
      return {
        suites: Buffer.concat([u16(grease()), CHROME_SUITES, u16(grease())]),
        extensions: [
          ext(0x7a7b, randomBytes(9)), // unknown type
          ext(0x0012),
          ext(g),
          ...(sni !== null ? [serverName(sni)] : []),
          ext(0x0033, vec16(x25519Entry(), hybridEntry())),
          ext(0x000d, vec16(CHROME_SIGALGS)),
          ext(0x0012), // duplicated
          ext(0x002b, vec8(hex('0304'))),
          ext(0xff01, hex('00')),
          ext(0xff01, hex('00')), // duplicated again
          ext(0x0015, Buffer.alloc(randomInt(200))), // padding of no particular size
          ext(g, hex('00')),
        ],
      };
    }
  }
}

/** A signed single-record hello of `shape` (a fresh one each call: keys, GREASE and order are random). */
export function buildHelloRecord(
  shape: HelloShapeName,
  o: HelloFixtureOptions,
): { record: Buffer; sni: string | null } {
  const sni = o.sni !== undefined ? o.sni : shape === 'ios' ? null : o.domain;
  const b = body(shape, sni);
  const hello = Buffer.concat([
    hex('0303'),
    Buffer.alloc(32),
    vec8(randomBytes(32)),
    vec16(b.suites),
    hex('01 00'),
    vec16(...b.extensions),
  ]);
  const handshake = Buffer.concat([u8(0x01), u8(0), vec16(hello)]);
  const record = Buffer.concat([hex('160301'), vec16(handshake)]);
  signClientHello(record, o.secret, o.unixTime);
  return { record, sni };
}

/** A fixture of `shape`: the signed hello, how it goes on the wire and in which segments. */
export function helloFixture(shape: HelloShapeName, o: HelloFixtureOptions): HelloFixture {
  const { record, sni } = buildHelloRecord(shape, o);
  let wire = record;
  let segments: Buffer[];
  if (shape === 'android') {
    // Two TCP segments, the first a full-sized one (as a 1.7 KB hello leaves a phone).
    segments = [record.subarray(0, 1448), record.subarray(1448)];
  } else if (shape === 'quirks') {
    wire = splitHelloRecords(record, [1 + randomInt(300), 1 + randomInt(900)]);
    segments = [];
    for (let pos = 0; pos < wire.length; ) {
      const n = Math.min(wire.length - pos, 1 + randomInt(400));
      segments.push(wire.subarray(pos, pos + n));
      pos += n;
    }
  } else {
    segments = [record];
  }
  const random = Buffer.from(record.subarray(11, 43));
  const offersPq = record.includes(hex('11ec04c0'));
  return { shape, record, wire, segments, sni, random, offersPq };
}
