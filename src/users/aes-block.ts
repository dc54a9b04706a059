/**
 * One AES-256 block encryption in plain TypeScript (FIPS-197, T-tables), for the obfuscated2 secret probe:
 * every candidate secret needs one block under a fresh key, and building a Node cipher costs ~12 µs where
 * the key schedule and 14 rounds here cost about one. Not for bulk data (Node's AES does that).
 */
const SBOX = new Uint8Array(256);
const T0 = new Uint32Array(256);
const T1 = new Uint32Array(256);
const T2 = new Uint32Array(256);
const T3 = new Uint32Array(256);

function rotl8(x: number, n: number): number {
  return ((x << n) | (x >>> (8 - n))) & 0xff;
}

{
  // Walk the multiplicative group with generator 3: p = 3^i and q = 3^-i, so q is p's inverse.
  let p = 1;
  let q = 1;
  do {
    p = (p ^ (p << 1) ^ (p & 0x80 ? 0x1b : 0)) & 0xff;
    q ^= q << 1;
    q ^= q << 2;
    q ^= q << 4;
    q &= 0xff;
    if (q & 0x80) q ^= 0x09;
    SBOX[p] = q ^ rotl8(q, 1) ^ rotl8(q, 2) ^ rotl8(q, 3) ^ rotl8(q, 4) ^ 0x63;
  } while (p !== 1);
  SBOX[0] = 0x63;
  for (let x = 0; x < 256; x++) {
    const s = SBOX[x];
    const s2 = ((s << 1) ^ (s & 0x80 ? 0x1b : 0)) & 0xff;
    const s3 = s2 ^ s;
    const t = ((s2 << 24) | (s << 16) | (s << 8) | s3) >>> 0;
    T0[x] = t;
    T1[x] = ((t >>> 8) | (t << 24)) >>> 0;
    T2[x] = ((t >>> 16) | (t << 16)) >>> 0;
    T3[x] = ((t >>> 24) | (t << 8)) >>> 0;
  }
}

const RCON = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40];
/** Key schedule scratch (60 words), reused: the probe runs synchronously. */
const W = new Uint32Array(60);

function subWord(x: number): number {
  return (
    ((SBOX[x >>> 24] << 24) |
      (SBOX[(x >>> 16) & 0xff] << 16) |
      (SBOX[(x >>> 8) & 0xff] << 8) |
      SBOX[x & 0xff]) >>>
    0
  );
}

function expandKey(key: Buffer): void {
  for (let i = 0; i < 8; i++) W[i] = key.readUInt32BE(i * 4);
  for (let i = 8; i < 60; i++) {
    let t = W[i - 1];
    if (i % 8 === 0) t = subWord(((t << 8) | (t >>> 24)) >>> 0) ^ (RCON[i / 8 - 1] << 24);
    else if (i % 8 === 4) t = subWord(t);
    W[i] = (W[i - 8] ^ t) >>> 0;
  }
}

/** AES-256 of the 16 bytes at `input[at..]` under `key`, into `out` (16 bytes). */
export function aes256EncryptBlock(key: Buffer, input: Buffer, at: number, out: Buffer): void {
  expandKey(key);
  let s0 = input.readUInt32BE(at) ^ W[0];
  let s1 = input.readUInt32BE(at + 4) ^ W[1];
  let s2 = input.readUInt32BE(at + 8) ^ W[2];
  let s3 = input.readUInt32BE(at + 12) ^ W[3];
  for (let r = 1; r < 14; r++) {
    const k = r * 4;
    const t0 = T0[s0 >>> 24] ^ T1[(s1 >>> 16) & 0xff] ^ T2[(s2 >>> 8) & 0xff] ^ T3[s3 & 0xff] ^ W[k];
    const t1 = T0[s1 >>> 24] ^ T1[(s2 >>> 16) & 0xff] ^ T2[(s3 >>> 8) & 0xff] ^ T3[s0 & 0xff] ^ W[k + 1];
    const t2 = T0[s2 >>> 24] ^ T1[(s3 >>> 16) & 0xff] ^ T2[(s0 >>> 8) & 0xff] ^ T3[s1 & 0xff] ^ W[k + 2];
    const t3 = T0[s3 >>> 24] ^ T1[(s0 >>> 16) & 0xff] ^ T2[(s1 >>> 8) & 0xff] ^ T3[s2 & 0xff] ^ W[k + 3];
    s0 = t0;
    s1 = t1;
    s2 = t2;
    s3 = t3;
  }
  const last = (a: number, b: number, c: number, d: number, w: number) =>
    (((SBOX[a >>> 24] << 24) |
      (SBOX[(b >>> 16) & 0xff] << 16) |
      (SBOX[(c >>> 8) & 0xff] << 8) |
      SBOX[d & 0xff]) ^
      w) >>>
    0;
  out.writeUInt32BE(last(s0, s1, s2, s3, W[56]), 0);
  out.writeUInt32BE(last(s1, s2, s3, s0, W[57]), 4);
  out.writeUInt32BE(last(s2, s3, s0, s1, W[58]), 8);
  out.writeUInt32BE(last(s3, s0, s1, s2, W[59]), 12);
}
