import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isProtocolError } from '../../src/protocol/errors.ts';
import {
  ClientFrameScanner,
  createFrameCodec,
  type FrameCodec,
  type FrameCodecOptions,
  MIN_CLIENT_PAYLOAD,
} from '../../src/protocol/framing/codec.ts';
import type { TransportTag } from '../../src/protocol/obfuscated2.ts';
import { splitAt } from '../helpers/split.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

interface Decoded {
  payload: Buffer;
  quickAck: boolean;
}

function decodeAll(codec: FrameCodec, chunks: Buffer[]): Decoded[] {
  const out: Decoded[] = [];
  for (const c of chunks) codec.decode(c, (p, q) => out.push({ payload: Buffer.from(p), quickAck: q }));
  return out;
}

describe('framing vectors (reference I)', () => {
  it('abridged encodes 8, 504 and 508 bytes', () => {
    const c = createFrameCodec('abridged');
    assert.equal(c.encode(Buffer.alloc(8, 1)).subarray(0, 1).toString('hex'), '02');
    assert.equal(c.encode(Buffer.alloc(504)).subarray(0, 1).toString('hex'), '7e');
    const big = c.encode(Buffer.alloc(508));
    assert.equal(big.subarray(0, 4).toString('hex'), '7f7f0000');
    assert.equal(big.length, 512);
  });

  it('abridged 82 ‖ 8 bytes decodes to 8 bytes with the quick-ack flag', () => {
    const frames = decodeAll(createFrameCodec('abridged'), [hex('82 0102030405060708')]);
    assert.deepEqual(frames, [{ payload: hex('0102030405060708'), quickAck: true }]);
  });

  it('abridged ff ‖ 3-byte length is the long form with quick-ack', () => {
    const payload = Buffer.alloc(508, 7);
    const frames = decodeAll(createFrameCodec('abridged'), [Buffer.concat([hex('ff7f0000'), payload])]);
    assert.equal(frames.length, 1);
    assert.equal(frames[0].quickAck, true);
    assert.deepEqual(frames[0].payload, payload);
  });

  it('intermediate 04000080 ‖ 4 bytes decodes to 4 bytes', () => {
    const frames = decodeAll(createFrameCodec('intermediate'), [hex('04000080 0a0b0c0d')]);
    assert.deepEqual(frames, [{ payload: hex('0a0b0c0d'), quickAck: true }]);
  });

  it('secure drops the padding: length 7 -> 4 bytes, length 19 -> 16 bytes', () => {
    const c = createFrameCodec('padded');
    const seven = decodeAll(c, [Buffer.concat([hex('07000000'), Buffer.alloc(7, 1)])]);
    assert.equal(seven[0].payload.length, 4);
    const nineteen = decodeAll(c, [Buffer.concat([hex('13000000'), Buffer.alloc(19, 2)])]);
    assert.equal(nineteen[0].payload.length, 16);
  });

  it('intermediate and padded encode a little-endian length', () => {
    assert.equal(
      createFrameCodec('intermediate').encode(hex('01020304')).toString('hex'),
      '0400000001020304',
    );
    const p = createFrameCodec('padded').encode(hex('01020304'));
    const len = p.readUInt32LE(0);
    assert.ok(len >= 4 && len <= 7 && p.length === 4 + len);
  });

  it('quick-ack answers: abridged big-endian with the top bit, intermediate little-endian', () => {
    assert.equal(createFrameCodec('abridged').encodeQuickAck(0x01020304).toString('hex'), '81020304');
    assert.equal(createFrameCodec('intermediate').encodeQuickAck(0x01020304).toString('hex'), '04030281');
  });

  it('a client decoder reads quick-ack answers from a server', () => {
    for (const t of ['abridged', 'intermediate', 'padded'] as TransportTag[]) {
      const server = createFrameCodec(t);
      const wire = Buffer.concat([server.encodeQuickAck(0x1234567), server.encode(Buffer.alloc(8, 3))]);
      const frames = decodeAll(createFrameCodec(t, { fromServer: true }), splitAt(wire, [1, 2, 5]));
      assert.equal(frames.length, 2);
      assert.equal(frames[0].quickAck, true);
      assert.equal(frames[0].payload.readUInt32LE(0), 0x1234567);
      assert.deepEqual(frames[1], { payload: Buffer.alloc(8, 3), quickAck: false });
    }
  });

  it('rejects frames of 1 MiB or more', () => {
    for (const [t, head] of [
      ['abridged', hex('7f000004')],
      ['intermediate', hex('00001000')],
      ['padded', hex('00001000')],
    ] as [TransportTag, Buffer][]) {
      assert.throws(
        () => createFrameCodec(t).decode(head, () => {}),
        (e: unknown) => isProtocolError(e) && e.code === 'MTP_ERR_FRAME_TOO_LARGE',
      );
    }
    // Just below the limit is fine (waits for the body).
    createFrameCodec('intermediate').decode(hex('fcff0f00'), () => {});
  });

  it('requireAligned refuses unaligned intermediate frames', () => {
    assert.throws(
      () => createFrameCodec('intermediate', { requireAligned: true }).decode(hex('05000000'), () => {}),
      (e: unknown) => isProtocolError(e) && e.code === 'MTP_ERR_FRAME_UNALIGNED',
    );
  });
});

const transports: TransportTag[] = ['abridged', 'intermediate', 'padded'];
const arbPayload = fc
  .uint8Array({ minLength: 0, maxLength: 700 })
  .map((a) => Buffer.from(a.subarray(0, a.length & ~3)));

describe('framing properties', () => {
  it('encode then decode gives the payloads back, for any split of the stream', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...transports),
        fc.array(fc.tuple(arbPayload, fc.boolean()), { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (t, frames, cuts) => {
          const enc = createFrameCodec(t);
          const wire = Buffer.concat(frames.map(([p, q]) => enc.encode(p, q)));
          const whole = decodeAll(createFrameCodec(t), [wire]);
          const split = decodeAll(createFrameCodec(t), splitAt(wire, cuts));
          const expected = frames.map(([p, q]) => ({ payload: p, quickAck: q }));
          assert.deepEqual(whole, expected);
          assert.deepEqual(split, expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('byte-by-byte feeding decodes the same frames', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...transports),
        fc.array(arbPayload, { minLength: 1, maxLength: 4 }),
        (t, frames) => {
          const enc = createFrameCodec(t);
          const wire = Buffer.concat(frames.map((p) => enc.encode(p)));
          const bytes = [...wire].map((b) => Buffer.from([b]));
          const got = decodeAll(createFrameCodec(t), bytes).map((f) => f.payload);
          assert.deepEqual(got, frames);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('a frame written around its payload (encodeAround) decodes like an encoded one', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...transports),
        fc.array(arbPayload, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (t, frames, cuts) => {
          const enc = createFrameCodec(t, { requireAligned: true });
          const wire = Buffer.concat(
            frames.flatMap((p) => {
              const { head, tail } = enc.encodeAround(p.length);
              return tail ? [head, p, tail] : [head, p];
            }),
          );
          const got = decodeAll(createFrameCodec(t, { requireAligned: true }), splitAt(wire, cuts));
          assert.deepEqual(
            got.map((f) => f.payload),
            frames,
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('frames larger than one read decode under any split, small ones between them too', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...transports),
        fc.array(fc.constantFrom(4, 512, 70_000, 200_000), { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 16 }),
        (t, sizes, cuts) => {
          const payloads = sizes.map((n, i) => Buffer.alloc(n, i + 1));
          const enc = createFrameCodec(t);
          const wire = Buffer.concat(payloads.map((p) => enc.encode(p)));
          const codec = createFrameCodec(t);
          const got = decodeAll(codec, splitAt(wire, cuts)).map((f) => f.payload);
          assert.deepEqual(got, payloads);
          assert.equal(codec.buffered, 0);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('random garbage never throws anything but ProtocolError, for any options', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...transports),
        fc.record({
          requireAligned: fc.boolean(),
          fromServer: fc.boolean(),
          maxFrame: fc.integer({ min: 1, max: 1 << 20 }),
        }),
        fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 8 }),
        (t, opts: FrameCodecOptions, chunks) => {
          const c = createFrameCodec(t, opts);
          try {
            for (const ch of chunks) c.decode(Buffer.from(ch), () => {});
          } catch (e) {
            assert.ok(isProtocolError(e), String(e));
          }
          assert.ok(c.buffered < (opts.maxFrame ?? 1 << 20) + 4);
        },
      ),
      { numRuns: 500 },
    );
  });
});

/** One frame on the wire with a header of the given length field (`len` bytes of body follow). */
function rawFrame(t: TransportTag, len: number, quickAck: boolean, fill: number): Buffer {
  let head: Buffer;
  if (t === 'abridged') {
    const words = len >>> 2;
    head =
      words < 0x7f
        ? Buffer.from([words])
        : Buffer.from([0x7f, words & 0xff, (words >> 8) & 0xff, words >> 16]);
    if (quickAck) head[0] |= 0x80;
  } else {
    head = Buffer.alloc(4);
    head.writeUInt32LE((quickAck ? len | 0x80000000 : len) >>> 0, 0);
  }
  return Buffer.concat([head, Buffer.alloc(len, fill)]);
}

/** Lengths that no MTProto client sends, per transport (the prober's list and their neighbours). */
function arbBadLength(t: TransportTag): fc.Arbitrary<number> {
  if (t === 'abridged') return fc.constantFrom(0, 4); // 0 or 1 word
  if (t === 'padded') return fc.integer({ min: 0, max: MIN_CLIENT_PAYLOAD - 1 });
  return fc.oneof(
    fc.integer({ min: 0, max: MIN_CLIENT_PAYLOAD - 1 }),
    fc.integer({ min: 1, max: 600 }).filter((n) => n % 4 !== 0),
  );
}

const arbGoodPayloadLength = fc.integer({ min: MIN_CLIENT_PAYLOAD / 4, max: 200 }).map((w) => w * 4);

describe('frames that cannot be MTProto', () => {
  it("the prober's lengths are refused by the scanner and by a client-side codec", () => {
    const cases: Array<[TransportTag, Buffer, string]> = [
      ['intermediate', hex('00000000'), 'MTP_ERR_FRAME_TOO_SMALL'],
      ['intermediate', hex('03000000 010203'), 'MTP_ERR_FRAME_UNALIGNED'],
      ['abridged', hex('00'), 'MTP_ERR_FRAME_TOO_SMALL'],
      ['abridged', hex('80'), 'MTP_ERR_FRAME_TOO_SMALL'],
      ['padded', hex('01000000 01'), 'MTP_ERR_FRAME_TOO_SMALL'],
      ['padded', hex('05000000 0102030405'), 'MTP_ERR_FRAME_TOO_SMALL'],
    ];
    for (const [t, wire, code] of cases) {
      const isCode = (e: unknown) => isProtocolError(e) && e.code === code;
      assert.throws(() => new ClientFrameScanner(t).scan(wire), isCode, `${t} ${wire.toString('hex')}`);
      const codec = createFrameCodec(t, { requireAligned: true, minPayload: MIN_CLIENT_PAYLOAD });
      assert.throws(() => codec.decode(wire, () => assert.fail('frame delivered')), isCode);
    }
    // Without the option (a server's frames, the tools) short frames still decode.
    assert.equal(decodeAll(createFrameCodec('intermediate'), [hex('00000000')]).length, 1);
  });

  it('a stream of MTProto-sized frames passes the scanner under any split', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...transports),
        fc.array(fc.tuple(arbGoodPayloadLength, fc.boolean(), fc.integer({ min: 0, max: 3 })), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (t, frames, cuts) => {
          const wire = Buffer.concat(
            frames.map(([len, q, pad], i) => rawFrame(t, t === 'padded' ? len + pad : len, q, i)),
          );
          const scanner = new ClientFrameScanner(t);
          for (const part of splitAt(wire, cuts)) scanner.scan(part);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('such a frame never reaches the upstream, under any split of the stream around it', () => {
    fc.assert(
      fc.property(
        fc
          .constantFrom(...transports)
          .chain((t) =>
            fc.tuple(
              fc.constant(t),
              fc.array(arbGoodPayloadLength, { maxLength: 5 }),
              arbBadLength(t),
              fc.boolean(),
              fc.array(arbGoodPayloadLength, { maxLength: 3 }),
            ),
          ),
        fc.array(fc.nat(), { maxLength: 12 }),
        ([t, before, bad, quickAck, afterBad], cuts) => {
          const wire = Buffer.concat([
            ...before.map((len, i) => rawFrame(t, len, false, i + 1)),
            rawFrame(t, bad, quickAck, 0xee),
            ...afterBad.map((len, i) => rawFrame(t, len, false, i + 100)),
          ]);
          // What a direct session forwards: every chunk up to the one the scanner throws on.
          const scanner = new ClientFrameScanner(t);
          const forwarded: Buffer[] = [];
          let refused = false;
          for (const part of splitAt(wire, cuts)) {
            try {
              scanner.scan(part);
            } catch (e) {
              assert.ok(isProtocolError(e));
              refused = true;
              break;
            }
            forwarded.push(part);
          }
          assert.ok(refused, 'the bad frame was refused');
          // The DC decodes only whole frames it was sent: none of them is the bad one.
          const atDc = decodeAll(createFrameCodec(t), forwarded);
          assert.ok(atDc.length <= before.length);
          for (const f of atDc) assert.ok(f.payload.length >= MIN_CLIENT_PAYLOAD && f.payload[0] !== 0xee);

          // Framed (middle) sessions: the codec stops before handing the bad frame on.
          const codec = createFrameCodec(t, { requireAligned: true, minPayload: MIN_CLIENT_PAYLOAD });
          const delivered: Buffer[] = [];
          assert.throws(
            () => {
              for (const part of splitAt(wire, cuts))
                codec.decode(part, (p) => delivered.push(Buffer.from(p)));
            },
            (e: unknown) => isProtocolError(e),
          );
          assert.equal(delivered.length, before.length);
        },
      ),
      { numRuns: 500 },
    );
  });
});
