/**
 * QR codes of a user's link: SVG from uqr, PNG written here (greyscale, 1 bit per pixel expanded to 8,
 * one IDAT compressed with node:zlib, CRCs from zlib's crc32).
 */
import { crc32, deflateSync } from 'node:zlib';
import { encode, renderSVG } from 'uqr';

export function qrSvg(text: string): string {
  return renderSVG(text, { ecc: 'M', border: 2 });
}

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)) >>> 0, 8 + data.length);
  return out;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A black-on-white PNG of `modules` (true = dark), `scale` pixels per module. */
export function pngOfModules(modules: readonly (readonly boolean[])[], scale: number): Buffer {
  const size = modules.length;
  const width = size * scale;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(width, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  ihdr[10] = 0;
  ihdr[11] = 0;
  ihdr[12] = 0;
  const stride = width + 1;
  const raw = Buffer.alloc(stride * width);
  for (let y = 0; y < width; y++) {
    const row = modules[Math.floor(y / scale)];
    const at = y * stride;
    raw[at] = 0; // filter: none
    for (let x = 0; x < width; x++) raw[at + 1 + x] = row[Math.floor(x / scale)] ? 0 : 255;
  }
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

export function qrPng(text: string, scale = 8): Buffer {
  const { data } = encode(text, { ecc: 'M', border: 2 });
  return pngOfModules(data, scale);
}
