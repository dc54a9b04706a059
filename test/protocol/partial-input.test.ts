/**
 * The partial-input buffer shared by the framing decoders: whatever is kept, taken and split, the bytes come
 * back in order, none twice, none lost; and a kept tail is a copy (the read buffer it came from may change).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PartialInput } from '../../src/protocol/partial-input.ts';
import { splitAt } from '../helpers/split.ts';

test('a unit of known size is filled across any split, and what follows it stays in its chunk', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 2, maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.nat(),
      fc.nat(),
      fc.array(fc.nat(), { maxLength: 8 }),
      (stream, offSeed, sizeSeed, cuts) => {
        const off = offSeed % (stream.length - 1);
        // A unit starting at `off`, of 2 bytes up to the end of the stream: the first read holds 1 byte of it.
        const size = 2 + (sizeSeed % (stream.length - off - 1));
        const first = Buffer.from(stream.subarray(0, off + 1));
        const p = new PartialInput(1024);
        p.keep(first, off, size, size);
        first.fill(0); // the caller reuses its read buffer
        let got: Buffer | null = null;
        const out: Buffer[] = [];
        for (const part of splitAt(stream.subarray(off + 1), cuts)) {
          if (got) {
            out.push(part);
            continue;
          }
          got = p.take(part);
          if (got) out.push(part.subarray(p.used));
        }
        const expected = stream.subarray(off);
        if (size <= expected.length && got) {
          assert.deepEqual(got, expected.subarray(0, size));
          assert.deepEqual(Buffer.concat(out), expected.subarray(size));
          assert.equal(p.length, 0);
        } else {
          assert.equal(p.length, Math.min(size, expected.length));
        }
      },
    ),
  );
});

test('chunks wait until they hold what is needed, then come back joined, in order', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.nat({ max: 400 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      (stream, needed, cuts) => {
        const parts = splitAt(stream, cuts);
        const p = new PartialInput(0); // never fill: always the chunk list
        const head = Buffer.from(parts[0].length > 0 ? parts[0] : stream.subarray(0, 1));
        const rest = parts[0].length > 0 ? parts.slice(1) : splitAt(stream.subarray(1), cuts);
        p.keep(head, 0, needed, needed);
        head.fill(0);
        let got: Buffer | null = null;
        let taken = head.length;
        for (const part of rest) {
          got = p.take(part);
          taken += part.length;
          if (got) break;
          assert.ok(p.length < needed, 'held although enough bytes are there');
        }
        if (got) {
          assert.ok(got.length >= needed);
          assert.deepEqual(got, stream.subarray(0, taken));
          assert.equal(p.length, 0);
        } else {
          assert.deepEqual(p.takeAll(), stream.subarray(0, taken));
          assert.equal(p.length, 0);
        }
      },
    ),
  );
});

test('appended chunks are held as read and peeked joined, in order, until taken', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.array(fc.boolean(), { maxLength: 9 }),
      (stream, cuts, peeks) => {
        const p = new PartialInput(0);
        let held = 0;
        splitAt(stream, cuts).forEach((part, i) => {
          p.append(part);
          held += part.length;
          assert.equal(p.length, held);
          if (peeks[i]) assert.deepEqual(p.peekAll(), stream.subarray(0, held));
        });
        assert.deepEqual(p.peekAll(), stream);
        assert.equal(p.length, stream.length);
        assert.deepEqual(p.takeAll(), stream);
        assert.equal(p.length, 0);
      },
    ),
  );
});
