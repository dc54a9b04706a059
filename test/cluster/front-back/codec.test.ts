/**
 * The front→back link codec: frames come out as they went in whatever the reads' boundaries, OPEN metadata
 * round-trips, and no input makes the decoder throw.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeOpen,
  decodeReason,
  encodeClose,
  encodeFrame,
  encodeOpen,
  encodeWindow,
  FRAME_CLOSE,
  FRAME_DATA,
  FRAME_END,
  FRAME_OPEN,
  FRAME_OPENED,
  FRAME_PING,
  FRAME_PONG,
  FRAME_WINDOW,
  frameHeader,
  LinkDecoder,
  MAX_DATA,
  type OpenMeta,
} from '../../../src/cluster/front-back/codec.ts';
import { splitAt } from '../../helpers/split.ts';

interface Frame {
  type: number;
  stream: number;
  payload: Buffer;
}

function decodeAll(parts: Buffer[]): { frames: Frame[]; error: string | null } {
  const d = new LinkDecoder();
  const frames: Frame[] = [];
  const handler = {
    onFrame(type: number, stream: number, payload: Buffer) {
      frames.push({ type, stream, payload: Buffer.from(payload) });
    },
  };
  let error: string | null = null;
  for (const p of parts) error = d.push(p, handler);
  return { frames, error };
}

const bytes = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));

const stream = fc.integer({ min: 0, max: 0xffffffff });

const frame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ type: fc.constant(FRAME_DATA), stream, payload: bytes(0, 3000) }),
  fc.record({ type: fc.constant(FRAME_OPEN), stream, payload: bytes(0, 200) }),
  fc.record({
    type: fc.constantFrom(FRAME_OPENED, FRAME_END),
    stream,
    payload: fc.constant(Buffer.alloc(0)),
  }),
  fc.record({ type: fc.constant(FRAME_WINDOW), stream, payload: bytes(4, 4) }),
  fc.record({ type: fc.constant(FRAME_CLOSE), stream, payload: bytes(0, 64) }),
  fc.record({ type: fc.constantFrom(FRAME_PING, FRAME_PONG), stream, payload: bytes(8, 8) }),
);

function wire(frames: Frame[]): Buffer {
  // DATA as the link sends it (header, then the payload as is); the rest in one buffer.
  const parts: Buffer[] = [];
  for (const f of frames) {
    if (f.type === FRAME_DATA) parts.push(frameHeader(f.type, f.stream, f.payload.length), f.payload);
    else parts.push(encodeFrame(f.type, f.stream, f.payload));
  }
  return Buffer.concat(parts);
}

test('frames round-trip and any split of the stream decodes the same', () => {
  fc.assert(
    fc.property(fc.array(frame, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (frames, cuts) => {
      const all = wire(frames);
      const whole = decodeAll([all]);
      assert.equal(whole.error, null);
      assert.deepEqual(
        whole.frames,
        frames.map((f) => ({ ...f })),
      );
      const split = decodeAll(splitAt(all, cuts));
      assert.equal(split.error, null);
      assert.deepEqual(
        split.frames,
        frames.map((f) => ({ ...f })),
      );
      // One byte at a time.
      const bytewise = decodeAll([...all].map((b) => Buffer.from([b])));
      assert.deepEqual(
        bytewise.frames,
        frames.map((f) => ({ ...f })),
      );
    }),
    { numRuns: 150 },
  );
});

test('the largest DATA frame decodes; one byte more is refused', () => {
  const max = Buffer.alloc(MAX_DATA, 7);
  const ok = decodeAll([frameHeader(FRAME_DATA, 1, MAX_DATA), max]);
  assert.equal(ok.error, null);
  assert.equal(ok.frames[0].payload.length, MAX_DATA);
  const big = decodeAll([frameHeader(FRAME_DATA, 1, MAX_DATA + 1)]);
  assert.equal(big.error, 'MTP_ERR_LINK_FRAME_SIZE');
  assert.deepEqual(big.frames, []);
});

test('unknown types and wrong control sizes are errors, and nothing is decoded after one', () => {
  assert.equal(decodeAll([encodeFrame(0, 1)]).error, 'MTP_ERR_LINK_FRAME_TYPE');
  assert.equal(decodeAll([encodeFrame(99, 1)]).error, 'MTP_ERR_LINK_FRAME_TYPE');
  assert.equal(decodeAll([encodeFrame(FRAME_WINDOW, 1, Buffer.alloc(3))]).error, 'MTP_ERR_LINK_FRAME_SIZE');
  assert.equal(decodeAll([encodeFrame(FRAME_OPENED, 1, Buffer.alloc(1))]).error, 'MTP_ERR_LINK_FRAME_SIZE');
  const after = decodeAll([encodeFrame(99, 1), encodeFrame(FRAME_OPENED, 2)]);
  assert.deepEqual(after.frames, []);
});

test('garbage never throws, whatever the split', () => {
  fc.assert(
    fc.property(bytes(0, 2000), fc.array(fc.nat(), { maxLength: 10 }), (junk, cuts) => {
      decodeAll(splitAt(junk, cuts));
      decodeOpen(junk);
      decodeReason(junk);
    }),
    { numRuns: 300 },
  );
});

test('WINDOW and CLOSE carry their values', () => {
  const { frames } = decodeAll([encodeWindow(5, 123456), encodeClose(6, 'dc_closed\n')]);
  assert.equal(frames[0].payload.readUInt32BE(0), 123456);
  assert.equal(frames[1].stream, 6);
  assert.equal(decodeReason(frames[1].payload), 'dc_closed?');
  assert.equal(encodeClose(1, 'x'.repeat(500)).length, 9 + 64);
});

const meta: fc.Arbitrary<OpenMeta> = fc.record({
  dcId: fc.integer({ min: -32768, max: 32767 }),
  transport: fc.constantFrom('abridged', 'intermediate', 'padded'),
  remoteAddress: fc.oneof(fc.ipV4(), fc.ipV6()),
  remotePort: fc.integer({ min: 0, max: 65535 }),
  localAddress: fc.ipV4(),
  localPort: fc.integer({ min: 0, max: 65535 }),
  listener: fc.string({ maxLength: 40 }),
  adTag: fc.option(bytes(16, 16), { nil: null }),
  tlsDomain: fc.option(fc.domain(), { nil: null }),
  mode: fc.constantFrom('direct', 'middle'),
  user: fc.option(fc.string({ minLength: 1, maxLength: 40 }), { nil: null }),
});

test('OPEN metadata round-trips, and every cut of it is refused', () => {
  fc.assert(
    fc.property(meta, (m) => {
      const enc = encodeOpen(m);
      assert.deepEqual(decodeOpen(enc), { ...m });
      for (let n = 0; n < enc.length; n++) assert.equal(decodeOpen(enc.subarray(0, n)), null);
      assert.equal(decodeOpen(Buffer.concat([enc, Buffer.alloc(1)])), null);
    }),
    { numRuns: 200 },
  );
});
