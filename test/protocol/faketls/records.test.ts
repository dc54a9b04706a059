import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isProtocolError } from '../../../src/protocol/errors.ts';
import {
  appDataEncodedLength,
  appDataHeader,
  encodeAppData,
  MAX_RECORD_PAYLOAD,
  TlsRecordDecoder,
} from '../../../src/protocol/faketls/records.ts';

function decodeAll(chunks: Buffer[]): Buffer {
  const d = new TlsRecordDecoder();
  const out: Buffer[] = [];
  // Copy: pieces may be views of the chunk.
  let calls = 0;
  for (const c of chunks) {
    const before = calls;
    d.decode(c, (p) => {
      calls++;
      out.push(Buffer.from(p));
    });
    // At most one hand-over per chunk, whatever the number of records in it.
    assert.ok(calls - before <= 1);
  }
  return Buffer.concat(out);
}

function cut(bytes: Buffer, sizes: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let pos = 0;
  for (let i = 0; pos < bytes.length; i++) {
    const n = sizes.length === 0 ? bytes.length : sizes[i % sizes.length];
    // Copies: the decoder rewrites the chunks it is given.
    chunks.push(Buffer.from(bytes.subarray(pos, pos + n)));
    pos += n;
  }
  return chunks;
}

test('vector I: CCS skipped, application data delivered', () => {
  assert.equal(decodeAll([Buffer.from('14030300010117030300020909', 'hex')]).toString('hex'), '0909');
});

test('encodeAppData splits at 16 KiB and roundtrips', () => {
  for (const n of [0, 1, 100, MAX_RECORD_PAYLOAD, MAX_RECORD_PAYLOAD + 1, 3 * MAX_RECORD_PAYLOAD + 7]) {
    const payload = Buffer.alloc(n, 7);
    const wire = encodeAppData(payload);
    assert.equal(wire.length, appDataEncodedLength(n));
    // Every record within the limit.
    for (let pos = 0; pos < wire.length; ) {
      assert.equal(wire[0], 0x17);
      const len = wire.readUInt16BE(pos + 3);
      assert.ok(len > 0 && len <= MAX_RECORD_PAYLOAD);
      pos += 5 + len;
    }
    assert.deepEqual(decodeAll([Buffer.from(wire)]), payload);
  }
});

test('any split of any record sequence decodes the same', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.uint8Array({ minLength: 0, maxLength: 40000 }), fc.constant(null)), {
        maxLength: 6,
      }),
      fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 10 }),
      (items, sizes) => {
        const parts: Buffer[] = [];
        const expected: Buffer[] = [];
        for (const item of items) {
          if (item === null) {
            parts.push(Buffer.from('140303000101', 'hex'));
          } else {
            parts.push(encodeAppData(Buffer.from(item)));
            expected.push(Buffer.from(item));
          }
        }
        const wire = Buffer.concat(parts);
        assert.deepEqual(decodeAll(cut(wire, sizes)), Buffer.concat(expected));
        assert.deepEqual(decodeAll(cut(wire, [1])), Buffer.concat(expected));
      },
    ),
    { numRuns: 100 },
  );
});

test('garbage throws ProtocolError only', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 2000 }),
      fc.array(fc.integer({ min: 1, max: 300 })),
      (bytes, sizes) => {
        try {
          decodeAll(cut(Buffer.from(bytes), sizes));
        } catch (e) {
          assert.ok(isProtocolError(e), String(e));
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('rejects alerts, handshakes, bad versions and oversized records', () => {
  const bad = [
    '150303000201',
    '160303000101',
    '1703010001ff',
    '17030341010000',
    '140303000102',
    '1403030002010100',
  ];
  for (const h of bad) {
    assert.throws(
      () => decodeAll([Buffer.from(h, 'hex')]),
      (e: unknown) => isProtocolError(e) && e.code === 'MTP_ERR_TLS_BAD_RECORD',
      h,
    );
  }
});

test('a record of 2^14 + 256 bytes is accepted', () => {
  const n = 16384 + 256;
  const wire = Buffer.concat([Buffer.from([0x17, 3, 3, n >> 8, n & 0xff]), Buffer.alloc(n, 1)]);
  assert.equal(decodeAll([wire]).length, n);
});

test('appDataHeader before each 16 KiB slice gives the same bytes as encodeAppData', () => {
  for (const n of [1, 16383, 16384, 16385, 40_000, 65_536]) {
    const payload = Buffer.alloc(n, 7);
    const parts: Buffer[] = [];
    for (let src = 0; src < n; src += MAX_RECORD_PAYLOAD) {
      const len = Math.min(MAX_RECORD_PAYLOAD, n - src);
      parts.push(appDataHeader(len), payload.subarray(src, src + len));
    }
    assert.deepEqual(Buffer.concat(parts), encodeAppData(payload), String(n));
  }
});
