/**
 * QR codes of proxy links, in every form the project shows them: the module matrix (encoded by uqr), text
 * for a terminal (two module rows per line with half blocks), an SVG document, and a PNG image (greyscale,
 * filter "none", one IDAT compressed with node:zlib, CRC-32 per chunk). Pure functions, no I/O.
 */
import { crc32, deflateSync } from 'node:zlib';
import { encode } from 'uqr';

/** Rows of modules, true = dark, including a quiet zone of `border` light modules on every side. */
export type QrMatrix = boolean[][];

export interface QrOptions {
  /** Light modules around the code (the standard asks for 4; 2 scans well on screens). */
  border?: number;
}

const ECC = 'M';
const DEFAULT_BORDER = 2;

export function qrMatrix(text: string, opts: QrOptions = {}): QrMatrix {
  return encode(text, { ecc: ECC, border: opts.border ?? DEFAULT_BORDER }).data;
}

/**
 * Text for a terminal: each character covers two module rows. Light modules are drawn (terminals show text
 * light on dark), so the code reads dark-on-light to a camera whatever the theme's background is.
 */
export function qrTerminal(modules: QrMatrix): string {
  const size = modules.length;
  const lines: string[] = [];
  for (let y = 0; y < size; y += 2) {
    const top = modules[y]!;
    const bottom = y + 1 < size ? modules[y + 1]! : null;
    let line = '';
    for (let x = 0; x < size; x++) {
      const upperLight = !top[x];
      const lowerLight = bottom !== null && !bottom[x];
      line += upperLight ? (lowerLight ? '█' : '▀') : lowerLight ? '▄' : ' ';
    }
    lines.push(line);
  }
  return lines.join('\n');
}

/** An SVG document: a white square and one path of unit squares for the dark modules. */
export function qrSvg(modules: QrMatrix, pixelsPerModule = 8): string {
  const size = modules.length;
  let d = '';
  for (let y = 0; y < size; y++) {
    const row = modules[y]!;
    for (let x = 0; x < size; x++) if (row[x]) d += `M${x} ${y}h1v1h-1z`;
  }
  const px = size * pixelsPerModule;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${px}" height="${px}" viewBox="0 0 ${size} ${size}" ` +
    `shape-rendering="crispEdges"><rect width="${size}" height="${size}" fill="#fff"/>` +
    `<path fill="#000" d="${d}"/></svg>\n`
  );
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** One PNG chunk: length, type, data, CRC-32 of type and data. */
function pngChunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)) >>> 0, 8 + data.length);
  return out;
}

/** A black-on-white 8-bit greyscale PNG, `scale` pixels per module. */
export function qrPng(modules: QrMatrix, scale = 8): Buffer {
  const width = modules.length * scale;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(width, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // colour type: greyscale; compression, filter and interlace methods stay 0
  const stride = width + 1;
  const raw = Buffer.alloc(stride * width);
  for (let y = 0; y < width; y++) {
    const row = modules[Math.floor(y / scale)]!;
    const at = y * stride; // raw[at] = 0: filter type "none"
    for (let x = 0; x < width; x++) raw[at + 1 + x] = row[Math.floor(x / scale)] ? 0 : 255;
  }
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
