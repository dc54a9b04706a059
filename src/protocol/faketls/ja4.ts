/**
 * JA4 fingerprint of a ClientHello (FoxIO's JA4 TLS client fingerprint, the "t" form for TCP):
 *
 *   a_b_c   a = t, TLS version, d|i (SNI present or not), cipher count, extension count, ALPN first+last char
 *           b = first 12 hex of SHA-256 over the sorted cipher suites ("1301,1302,...")
 *           c = first 12 hex of SHA-256 over the sorted extensions without SNI and ALPN, then "_" and the
 *               signature algorithms in the order sent
 *
 * GREASE values are left out everywhere; counts are capped at 99. Pure; computed for every hello that
 * parses, before any secret is tried, so that probes are counted as well as clients.
 */
import { hash } from 'node:crypto';
import { type ClientHello, EXT_ALPN, EXT_SERVER_NAME, isGrease } from './client-hello.ts';

const EMPTY_HASH = '000000000000';

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

function twoDigits(n: number): string {
  return String(Math.min(99, n)).padStart(2, '0');
}

function truncatedSha256(text: string): string {
  return (hash('sha256', text, 'hex') as string).slice(0, 12);
}

function versionCode(hello: ClientHello): string {
  let v = hello.legacyVersion;
  if (hello.supportedVersions !== null) {
    let best = -1;
    for (const s of hello.supportedVersions) if (!isGrease(s) && s > best) best = s;
    if (best >= 0) v = best;
  }
  switch (v) {
    case 0x0304:
      return '13';
    case 0x0303:
      return '12';
    case 0x0302:
      return '11';
    case 0x0301:
      return '10';
    case 0x0300:
      return 's3';
    case 0x0002:
      return 's2';
    default:
      return '00';
  }
}

function isAlphanumeric(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function alpnCode(alpn: Buffer | null): string {
  if (alpn === null || alpn.length === 0) return '00';
  const first = alpn[0];
  const last = alpn[alpn.length - 1];
  if (isAlphanumeric(first) && isAlphanumeric(last)) return String.fromCharCode(first, last);
  // Not printable: the first and last characters of the value's hex form.
  const h = alpn.toString('hex');
  return h[0] + h[h.length - 1];
}

export function ja4(hello: ClientHello): string {
  const ciphers = hello.cipherSuites.filter((c) => !isGrease(c));
  const extensions = hello.extensionTypes.filter((e) => !isGrease(e));
  const a =
    `t${versionCode(hello)}${hello.sni === null ? 'i' : 'd'}` +
    `${twoDigits(ciphers.length)}${twoDigits(extensions.length)}${alpnCode(hello.alpnFirst)}`;
  const b =
    ciphers.length === 0
      ? EMPTY_HASH
      : truncatedSha256(
          ciphers
            .sort((x, y) => x - y)
            .map(hex4)
            .join(','),
        );
  const hashed = extensions.filter((e) => e !== EXT_SERVER_NAME && e !== EXT_ALPN).sort((x, y) => x - y);
  let c = EMPTY_HASH;
  if (hashed.length > 0) {
    const sigs = (hello.signatureAlgorithms ?? []).filter((s) => !isGrease(s));
    const text = hashed.map(hex4).join(',') + (sigs.length > 0 ? `_${sigs.map(hex4).join(',')}` : '');
    c = truncatedSha256(text);
  }
  return `${a}_${b}_${c}`;
}
