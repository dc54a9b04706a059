import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { buildClientHello, splitHelloRecords } from '../../../src/client/tls-hello.ts';
import { isProtocolError } from '../../../src/protocol/errors.ts';
import {
  assembleClientHello,
  GROUP_X25519_MLKEM768,
  isGrease,
  parseClientHello,
  RANDOM_OFFSET,
  selectKeyShare,
  verifyHelloDigest,
  zeroedHello,
} from '../../../src/protocol/faketls/client-hello.ts';
import { HELLO_SHAPES, helloFixture } from '../../helpers/hello-shapes.ts';
import { splitAt } from '../../helpers/split.ts';

const secret = Buffer.from('d0d6e111bada5511fcce9584deadbeef', 'hex');
const now = 1_790_000_000;

function modern(domain = 'www.example.com'): Buffer {
  return buildClientHello({ shape: 'modern', secret, domain, unixTime: now });
}

/** Feed `chunks` one by one as a session would, returning the first non-need-more result. */
function assembleIncrementally(chunks: Buffer[]) {
  let acc = Buffer.alloc(0);
  for (const c of chunks) {
    acc = Buffer.concat([acc, c]);
    const r = assembleClientHello(acc);
    if (r.kind !== 'need-more') return r;
  }
  return assembleClientHello(acc);
}

test('modern tdlib-shaped hello: ~1.7 KB, GREASE, PQ key share, ECH GREASE, ALPS; verifies', () => {
  for (let i = 0; i < 20; i++) {
    const record = modern();
    assert.ok(record.length > 1600 && record.length < 2000, `length ${record.length}`);
    const a = assembleClientHello(record);
    assert.ok(a.kind === 'complete');
    const hello = parseClientHello(a.record);
    assert.equal(hello.sni, 'www.example.com');
    assert.ok(hello.extensionTypes.includes(0xfe0d));
    assert.ok(hello.extensionTypes.includes(0x44cd));
    assert.ok(isGrease(hello.extensionTypes[0]));
    assert.ok(isGrease(hello.extensionTypes.at(-1) ?? 0));
    const pq = hello.keyShares?.find((k) => k.group === GROUP_X25519_MLKEM768);
    assert.equal(pq?.key.length, 1216);
    assert.equal(verifyHelloDigest(zeroedHello(a.record), hello.random, secret), now);
    assert.equal(selectKeyShare(hello.keyShares ?? [], false)?.group, 0x001d);
    assert.equal(selectKeyShare(hello.keyShares ?? [], true)?.group, GROUP_X25519_MLKEM768);
  }
});

test('extension order is shuffled per connection', () => {
  const orders = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const types = parseClientHello(modern()).extensionTypes.filter((t) => !isGrease(t));
    orders.add(types.join(','));
  }
  assert.ok(orders.size > 1);
});

test('the Apple-platform variant (fixed order, no ECH, PQ share) parses and verifies', () => {
  for (let i = 0; i < 10; i++) {
    const record = buildClientHello({ shape: 'darwin', secret, domain: 'example.com', unixTime: now });
    const hello = parseClientHello(record);
    assert.equal(hello.sni, 'example.com');
    assert.ok(!hello.extensionTypes.includes(0xfe0d));
    assert.equal(hello.keyShares?.find((k) => k.group === GROUP_X25519_MLKEM768)?.key.length, 1216);
    assert.equal(verifyHelloDigest(zeroedHello(record), hello.random, secret), now);
  }
});

test('legacy hello is 517 bytes and verifies', () => {
  const record = buildClientHello({ shape: 'legacy', secret, domain: 'example.com', unixTime: now });
  assert.equal(record.length, 517);
  const hello = parseClientHello(record);
  assert.equal(verifyHelloDigest(zeroedHello(record), hello.random, secret), now);
});

test('a hello split over several TLS records and many TCP segments reassembles to the same record', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 600 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 40 }),
      (recordSizes, segmentSizes) => {
        const record = modern();
        const wire = splitHelloRecords(record, recordSizes);
        const chunks: Buffer[] = [];
        let pos = 0;
        for (let i = 0; pos < wire.length; i++) {
          const n = segmentSizes[i % segmentSizes.length];
          chunks.push(wire.subarray(pos, pos + n));
          pos += n;
        }
        const a = assembleIncrementally(chunks);
        assert.ok(a.kind === 'complete');
        assert.equal(a.consumed, wire.length);
        assert.deepEqual(a.record, record);
        const hello = parseClientHello(a.record);
        assert.equal(verifyHelloDigest(zeroedHello(a.record), hello.random, secret), now);
      },
    ),
    { numRuns: 60 },
  );
});

test('bytes after the hello are not consumed', () => {
  const record = modern();
  const a = assembleClientHello(Buffer.concat([record, Buffer.from('140303000101', 'hex')]));
  assert.ok(a.kind === 'complete');
  assert.equal(a.consumed, record.length);
});

test('strictness: trailing bytes, bad lengths, non-handshake records, missing SNI', () => {
  const record = modern();
  const throwsBad = (b: Buffer): void => {
    assert.throws(
      () => {
        const a = assembleClientHello(b);
        if (a.kind === 'complete') parseClientHello(a.record);
      },
      (e: unknown) => isProtocolError(e),
    );
  };
  // Record claims one byte more than the handshake message.
  const longer = Buffer.concat([record, Buffer.from([0])]);
  longer.writeUInt16BE(record.length - 5 + 1, 3);
  throwsBad(longer);
  // Extensions length off by one.
  const broken = Buffer.from(record);
  const extLenAt = 5 + 4 + 2 + 32 + 1 + 32 + 2 + 32 + 2;
  broken.writeUInt16BE(broken.readUInt16BE(extLenAt) - 1, extLenAt);
  throwsBad(broken);
  // Application data in the middle of a split hello.
  const split = splitHelloRecords(record, [100]);
  split[105] = 0x17;
  throwsBad(split);
  // Not TLS at all.
  assert.throws(
    () => assembleClientHello(Buffer.from('GET / HTTP/1.1\r\n')),
    (e: unknown) => isProtocolError(e),
  );
});

test('garbage never throws anything but ProtocolError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.boolean(), (bytes, asHello) => {
      const b = Buffer.from(bytes);
      if (asHello && b.length > 9) {
        b[0] = 0x16;
        b[1] = 3;
        b[2] = 1;
        b.writeUInt16BE(b.length - 5, 3);
        b[5] = 1;
        b.writeUIntBE(Math.max(0, b.length - 9), 6, 3);
      }
      try {
        const a = assembleClientHello(b);
        if (a.kind === 'complete') parseClientHello(a.record);
      } catch (e) {
        assert.ok(isProtocolError(e), String(e));
      }
    }),
    { numRuns: 500 },
  );
});

test('mutating a valid hello never keeps a valid digest', () => {
  const record = modern();
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: record.length - 1 }),
      fc.integer({ min: 1, max: 255 }),
      (at, flip) => {
        const b = Buffer.from(record);
        b[at] ^= flip;
        try {
          const a = assembleClientHello(b);
          if (a.kind !== 'complete') return;
          const hello = parseClientHello(a.record);
          const t = verifyHelloDigest(zeroedHello(a.record), hello.random, secret);
          // Only the timestamp bytes of the random may change and still pass (they carry the time).
          if (t !== null) assert.ok(at >= RANDOM_OFFSET + 28 && at < RANDOM_OFFSET + 32);
        } catch (e) {
          assert.ok(isProtocolError(e));
        }
      },
    ),
    { numRuns: 400 },
  );
});

test('every shape (app, browser-like, quirks) parses, by any record and segment split, to the same hello', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...HELLO_SHAPES),
      fc.array(fc.integer({ min: 1, max: 800 }), { minLength: 0, maxLength: 6 }),
      fc.array(fc.integer({ min: 0, max: 4000 }), { maxLength: 30 }),
      (shape, recordSizes, cuts) => {
        const f = helloFixture(shape, { secret, domain: 'www.example.com', unixTime: now });
        const wire = recordSizes.length === 0 ? f.record : splitHelloRecords(f.record, recordSizes);
        const a = assembleIncrementally(splitAt(wire, cuts));
        assert.ok(a.kind === 'complete');
        assert.equal(a.consumed, wire.length);
        assert.deepEqual(a.record, f.record);
        const hello = parseClientHello(a.record);
        assert.equal(hello.sni, f.sni);
        assert.equal(hello.sessionId.length, 32);
        assert.equal(verifyHelloDigest(zeroedHello(a.record), hello.random, secret), now);
        assert.ok(hello.keyShares !== null && hello.keyShares.length > 0);
      },
    ),
    { numRuns: 60 },
  );
});

test('repeated extensions are allowed: the first server_name and key_share count', () => {
  const f = helloFixture('quirks', { secret, domain: 'first.example', unixTime: now });
  const hello = parseClientHello(f.record);
  const counts = new Map<number, number>();
  for (const t of hello.extensionTypes) counts.set(t, (counts.get(t) ?? 0) + 1);
  assert.equal(counts.get(0x0012), 2);
  assert.equal(counts.get(0xff01), 2);
  assert.equal(hello.sni, 'first.example');
  // PSK (0x0029) last, unknown and ECH types: all just extensions.
  const psk = parseClientHello(
    helloFixture('chrome148', { secret, domain: 'x.example', unixTime: now }).record,
  );
  assert.equal(psk.extensionTypes.at(-1), 0x0029);
  assert.ok(psk.extensionTypes.includes(0xfe0d));
});

test('records of any legal length: a 1.7 KB hello in one-byte records reassembles', () => {
  const record = modern();
  const sizes = new Array(record.length).fill(1);
  const wire = splitHelloRecords(record, sizes);
  assert.ok(wire.length < 16 * 1024);
  const a = assembleClientHello(wire);
  assert.ok(a.kind === 'complete');
  assert.deepEqual(a.record, record);
});
