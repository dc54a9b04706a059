/**
 * Every byte-level layer and the composed client pipeline fed random input in random splits. A layer may only
 * refuse input with a ProtocolError, never another exception; whether it refuses, and what it delivers
 * (until it refuses), does not depend on how the input was split.
 */
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isProtocolError } from '../../src/protocol/errors.ts';
import { encodeAppData, TlsRecordDecoder } from '../../src/protocol/faketls/records.ts';
import {
  ClientFrameScanner,
  createFrameCodec,
  type FrameCodecOptions,
  MIN_CLIENT_PAYLOAD,
} from '../../src/protocol/framing/codec.ts';
import { FullDecoder, FullEncoder } from '../../src/protocol/middle/full.ts';
import type { TransportTag } from '../../src/protocol/obfuscated2.ts';
import { splitAt } from '../helpers/split.ts';

const TRANSPORTS: TransportTag[] = ['abridged', 'intermediate', 'padded'];
const RUNS = { numRuns: 300 };

interface Outcome {
  out: Buffer;
  error: string | null;
}

/** Feed `parts` (copies: the TLS decoder rewrites its input) to `feed`; what came out and the error code. */
function run(parts: Buffer[], feed: (chunk: Buffer, emit: (b: Buffer) => void) => void): Outcome {
  const out: Buffer[] = [];
  try {
    for (const p of parts) feed(Buffer.from(p), (b) => out.push(Buffer.from(b)));
    return { out: Buffer.concat(out), error: null };
  } catch (e) {
    assert.ok(isProtocolError(e), `not a ProtocolError: ${String(e)}`);
    return { out: Buffer.concat(out), error: e.code };
  }
}

const arbInput = fc.uint8Array({ maxLength: 2048 }).map((a) => Buffer.from(a));
const arbCuts = fc.array(fc.nat(), { maxLength: 16 });

/** Random bytes, or a valid stream with some bytes flipped: the decoder gets past its first header too. */
function arbStreamOf(encode: (payloads: Buffer[]) => Buffer): fc.Arbitrary<Buffer> {
  const valid = fc
    .tuple(
      fc.array(
        fc.uint8Array({ minLength: 8, maxLength: 300 }).map((a) => Buffer.from(a.subarray(0, a.length & ~3))),
        { minLength: 1, maxLength: 6 },
      ),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }),
    )
    .map(([payloads, flips]) => {
      const wire = encode(payloads);
      for (const [at, v] of flips) if (wire.length > 0) wire[at % wire.length] = v;
      return wire;
    });
  return fc.oneof(arbInput, valid);
}

function sameForAnySplit(
  arb: fc.Arbitrary<Buffer>,
  decoder: () => (chunk: Buffer, emit: (b: Buffer) => void) => void,
  compareOutput = true,
): void {
  fc.assert(
    fc.property(arb, arbCuts, (input, cuts) => {
      const whole = run([input], decoder());
      const split = run(splitAt(input, cuts), decoder());
      assert.equal(split.error, whole.error);
      if (compareOutput || whole.error === null) assert.deepEqual(split.out, whole.out);
    }),
    RUNS,
  );
}

describe('fuzz: each layer', () => {
  it('TLS records (payload of the chunk that holds a bad record is dropped, so only clean runs compare)', () => {
    sameForAnySplit(
      arbStreamOf((p) => encodeAppData(Buffer.concat(p))),
      () => {
        const d = new TlsRecordDecoder();
        return (chunk, emit) => d.decode(chunk, emit);
      },
      false,
    );
  });

  for (const transport of TRANSPORTS) {
    const variants: Array<[string, FrameCodecOptions]> = [
      ['client frames', { requireAligned: true, minPayload: MIN_CLIENT_PAYLOAD, maxFrame: 4096 }],
      ['server frames', { fromServer: true, maxFrame: 4096 }],
    ];
    for (const [name, opts] of variants) {
      it(`${transport} framing, ${name}`, () => {
        const encoder = createFrameCodec(transport);
        sameForAnySplit(
          arbStreamOf((p) => Buffer.concat(p.map((b) => encoder.encode(b)))),
          () => {
            const d = createFrameCodec(transport, opts);
            return (chunk, emit) => d.decode(chunk, (payload) => emit(payload));
          },
        );
      });
    }

    it(`${transport} frame scanner (direct mode)`, () => {
      const encoder = createFrameCodec(transport);
      sameForAnySplit(
        arbStreamOf((p) => Buffer.concat(p.map((b) => encoder.encode(b)))),
        () => {
          const s = new ClientFrameScanner(transport);
          return (chunk, emit) => {
            s.scan(chunk);
            emit(chunk);
          };
        },
        false,
      );
    });
  }

  it('middle proxy full framing', () => {
    sameForAnySplit(
      arbStreamOf((p) => {
        const e = new FullEncoder(0);
        return Buffer.concat(p.map((b) => e.encode(b)));
      }),
      () => {
        const d = new FullDecoder(0, 64 * 1024);
        return (chunk, emit) => {
          d.decode(chunk, (body) => emit(body));
        };
      },
    );
  });
});

describe('fuzz: the composed client pipeline (TLS records, obfuscated2 AES-CTR, framing)', () => {
  const key = Buffer.alloc(32, 7);
  const iv = Buffer.alloc(16, 9);

  for (const transport of TRANSPORTS) {
    it(`${transport}: frames through every layer come back whole, for any split`, () => {
      fc.assert(
        fc.property(
          fc.array(
            fc
              .uint8Array({ minLength: 8, maxLength: 2000 })
              .map((a) => Buffer.from(a.subarray(0, a.length & ~3))),
            { minLength: 1, maxLength: 8 },
          ),
          arbCuts,
          (payloads, cuts) => {
            const framing = createFrameCodec(transport);
            const enc = createCipheriv('aes-256-ctr', key, iv);
            const wire = encodeAppData(enc.update(Buffer.concat(payloads.map((p) => framing.encode(p)))));
            const records = new TlsRecordDecoder();
            const dec = createDecipheriv('aes-256-ctr', key, iv);
            const codec = createFrameCodec(transport, {
              requireAligned: true,
              minPayload: MIN_CLIENT_PAYLOAD,
            });
            const got: Buffer[] = [];
            for (const part of splitAt(wire, cuts)) {
              records.decode(Buffer.from(part), (payload) =>
                codec.decode(dec.update(payload), (frame) => got.push(Buffer.from(frame))),
              );
            }
            assert.deepEqual(got, payloads);
            assert.equal(codec.buffered, 0);
          },
        ),
        { numRuns: 100 },
      );
    });

    it(`${transport}: random bytes through every layer only ever raise a ProtocolError`, () => {
      fc.assert(
        fc.property(arbInput, arbCuts, (input, cuts) => {
          const records = new TlsRecordDecoder();
          const dec = createDecipheriv('aes-256-ctr', key, iv);
          const codec = createFrameCodec(transport, { requireAligned: true, minPayload: MIN_CLIENT_PAYLOAD });
          try {
            for (const part of splitAt(input, cuts)) {
              records.decode(Buffer.from(part), (payload) => codec.decode(dec.update(payload), () => {}));
            }
          } catch (e) {
            assert.ok(isProtocolError(e), String(e));
          }
        }),
        RUNS,
      );
    });
  }
});
