/** QR codes of a user's link, for the admin API (`qr.svg`, `qr.png`): the shared encoders of links/qr.ts. */
import { qrMatrix, qrPng as pngOf, qrSvg as svgOf } from '../links/qr.ts';

export function qrSvg(text: string): string {
  return svgOf(qrMatrix(text));
}

export function qrPng(text: string, scale = 8): Buffer {
  return pngOf(qrMatrix(text), scale);
}
