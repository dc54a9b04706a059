import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32, inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { encode } from 'uqr';
import { type QrMatrix, qrMatrix, qrPng, qrSvg, qrTerminal } from '../../src/links/qr.ts';

const LINK = 'https://t.me/proxy?server=203.0.113.7&port=443&secret=dd0123456789abcdef0123456789abcdef';

interface Chunk {
  type: string;
  data: Buffer;
  crcOk: boolean;
}

function chunks(png: Buffer): Chunk[] {
  const out: Chunk[] = [];
  let at = 8;
  while (at < png.length) {
    const length = png.readUInt32BE(at);
    const type = png.subarray(at + 4, at + 8).toString('latin1');
    const data = png.subarray(at + 8, at + 8 + length);
    const crc = png.readUInt32BE(at + 8 + length);
    out.push({ type, data, crcOk: crc === crc32(png.subarray(at + 4, at + 8 + length)) >>> 0 });
    at += 12 + length;
  }
  return out;
}

/** The modules back from a PNG written by qrPng (sampling the top-left pixel of each module). */
function modulesOfPng(png: Buffer, scale: number): QrMatrix {
  const list = chunks(png);
  const width = list[0]!.data.readUInt32BE(0);
  const raw = inflateSync(Buffer.concat(list.filter((c) => c.type === 'IDAT').map((c) => c.data)));
  const size = width / scale;
  const rows: QrMatrix = [];
  for (let y = 0; y < size; y++) {
    const row: boolean[] = [];
    for (let x = 0; x < size; x++) row.push(raw[y * scale * (width + 1) + 1 + x * scale] === 0);
    rows.push(row);
  }
  return rows;
}

describe('QR codes of links', () => {
  test("the matrix is uqr's, with the quiet zone", () => {
    const m = qrMatrix(LINK);
    assert.deepEqual(m, encode(LINK, { ecc: 'M', border: 2 }).data);
    const bare = encode(LINK, { ecc: 'M', border: 0 }).size;
    assert.equal(m.length, bare + 4);
    assert.ok(m.every((row) => row.length === m.length));
    assert.ok(m[0]!.every((dark) => !dark) && m.at(-1)!.every((dark) => !dark), 'light border');
    assert.equal(qrMatrix(LINK, { border: 4 }).length, bare + 8);
  });

  test('PNG: signature, IHDR of the right size, valid CRCs, one IDAT, IEND', () => {
    const m = qrMatrix(LINK);
    const png = qrPng(m, 5);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const list = chunks(png);
    assert.deepEqual(
      list.map((c) => c.type),
      ['IHDR', 'IDAT', 'IEND'],
    );
    assert.ok(list.every((c) => c.crcOk));
    const ihdr = list[0]!.data;
    assert.equal(ihdr.length, 13);
    assert.equal(ihdr.readUInt32BE(0), m.length * 5);
    assert.equal(ihdr.readUInt32BE(4), m.length * 5);
    assert.deepEqual([...ihdr.subarray(8)], [8, 0, 0, 0, 0]);
    assert.deepEqual(modulesOfPng(png, 5), m);
  });

  test('PNG round-trips any module matrix (property)', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 30 })
          .chain((n) =>
            fc.array(fc.array(fc.boolean(), { minLength: n, maxLength: n }), { minLength: n, maxLength: n }),
          ),
        fc.integer({ min: 1, max: 4 }),
        (m, scale) => {
          const png = qrPng(m, scale);
          assert.ok(chunks(png).every((c) => c.crcOk));
          assert.deepEqual(modulesOfPng(png, scale), m);
        },
      ),
      { numRuns: 100 },
    );
  });

  test('SVG: one document with a square per dark module and the module count as view box', () => {
    const m = qrMatrix(LINK);
    const svg = qrSvg(m);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" [^>]*>.*<\/svg>\n$/s);
    assert.equal(svg.match(/<svg/g)!.length, 1);
    assert.match(svg, new RegExp(`viewBox="0 0 ${m.length} ${m.length}"`));
    const squares = [...svg.matchAll(/M(\d+) (\d+)h1v1h-1z/g)].map((x) => `${x[1]},${x[2]}`);
    const dark: string[] = [];
    m.forEach((row, y) => {
      row.forEach((d, x) => {
        if (d) dark.push(`${x},${y}`);
      });
    });
    assert.deepEqual(squares, dark);
  });

  test('terminal: two module rows per line, light modules drawn', () => {
    const m = qrMatrix(LINK);
    const lines = qrTerminal(m).split('\n');
    assert.equal(lines.length, Math.ceil(m.length / 2));
    assert.ok(lines.every((l) => [...l].length === m.length));
    assert.ok(/^[█▀▄ ]+$/.test(lines.join('')));
    assert.equal(lines[0], '█'.repeat(m.length), 'the quiet zone is drawn light');
    // Every character encodes its two modules.
    lines.forEach((line, i) => {
      [...line].forEach((ch, x) => {
        const top = !m[2 * i]![x];
        const bottom = 2 * i + 1 < m.length && !m[2 * i + 1]![x];
        assert.equal(ch, top ? (bottom ? '█' : '▀') : bottom ? '▄' : ' ');
      });
    });
  });
});
