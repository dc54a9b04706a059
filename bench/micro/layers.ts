/**
 * One micro-benchmark per byte-level layer, in this process: decode and encode MB/s of plaintext for TLS
 * records, obfuscated2 (AES-CTR), abridged / intermediate / padded framing, the middle proxy's full framing
 * and AES-CBC. Decoders are fed the encoded stream in reads of READ_SIZE bytes, so frames straddle reads as
 * they do on a socket. Figures are MB of plaintext per CPU-second of this thread. `node bench/micro/layers.ts`
 * prints a table; MICRO_MS sets the CPU time per figure.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { encodeAppData, TlsRecordDecoder } from '../../src/protocol/faketls/records.ts';
import { createFrameCodec } from '../../src/protocol/framing/codec.ts';
import { createCbcDecryptor, createCbcEncryptor } from '../../src/protocol/middle/crypto.ts';
import { FullDecoder, FullEncoder } from '../../src/protocol/middle/full.ts';
import type { TransportTag } from '../../src/protocol/obfuscated2.ts';

export interface MicroRow {
  layer: string;
  direction: 'decode' | 'encode';
  mbPerSecond: number;
}

const READ_SIZE = 64 * 1024;
/** Frame sizes of a mixed stream: small RPCs and bulk (a multiple of 4, as MTProto payloads are). */
const FRAME_SIZES = [24, 128, 600, 1500, 4096, 16384, 60000, 200000];
const STREAM_BYTES = 8 * 1024 * 1024;

function frames(): Buffer[] {
  const out: Buffer[] = [];
  let total = 0;
  for (let i = 0; total < STREAM_BYTES; i++) {
    const b = randomBytes(FRAME_SIZES[i % FRAME_SIZES.length]);
    out.push(b);
    total += b.length;
  }
  return out;
}

function reads(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < stream.length; off += READ_SIZE) out.push(stream.subarray(off, off + READ_SIZE));
  return out;
}

/** CPU time of this thread (user + system) in ms: steadier than the wall clock on a shared machine. */
function cpuMs(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}

/** Repeat `pass` (which handles `bytes` of plaintext) for about `ms` of CPU; MB per CPU-second of plaintext. */
function measure(bytes: number, ms: number, pass: () => void): number {
  pass(); // warm-up
  let n = 0;
  const start = cpuMs();
  let elapsed = 0;
  while (elapsed < ms || n < 2) {
    pass();
    n++;
    elapsed = cpuMs() - start;
  }
  return (bytes * n) / (elapsed / 1000) / 1e6;
}

let sink = 0;
function count(b: Buffer): void {
  sink += b.length;
}

export function runMicro(ms = Number(process.env.MICRO_MS ?? 600)): MicroRow[] {
  const payloads = frames();
  const plainBytes = payloads.reduce((s, b) => s + b.length, 0);
  const plain = Buffer.concat(payloads);
  const rows: MicroRow[] = [];
  const add = (layer: string, direction: MicroRow['direction'], mbPerSecond: number) =>
    rows.push({ layer, direction, mbPerSecond });

  // TLS records
  // TLS records (the decoder rewrites its input in place: each pass first restores the wire bytes, a memcpy
  // counted in the figure)
  const records = encodeAppData(plain);
  const work = Buffer.allocUnsafe(records.length);
  const recordReads = reads(work);
  add(
    'tls records',
    'encode',
    measure(plainBytes, ms, () => count(encodeAppData(plain))),
  );
  add(
    'tls records',
    'decode',
    measure(plainBytes, ms, () => {
      records.copy(work);
      const d = new TlsRecordDecoder();
      for (const r of recordReads) d.decode(r, count);
    }),
  );

  // obfuscated2 (AES-256-CTR): the same operation both ways
  const key = randomBytes(32);
  const iv = randomBytes(16);
  const plainReads = reads(plain);
  const ctrPass = () => {
    const c = createCipheriv('aes-256-ctr', key, iv);
    for (const r of plainReads) count(c.update(r));
  };
  add('obfuscated2 ctr', 'encode', measure(plainBytes, ms, ctrPass));
  add('obfuscated2 ctr', 'decode', measure(plainBytes, ms, ctrPass));

  // client framings
  for (const transport of ['abridged', 'intermediate', 'padded'] as TransportTag[]) {
    const codec = createFrameCodec(transport);
    const wire = Buffer.concat(payloads.map((p) => codec.encode(p)));
    const wireReads = reads(wire);
    add(
      transport,
      'encode',
      measure(plainBytes, ms, () => {
        for (const p of payloads) count(codec.encode(p));
      }),
    );
    add(
      transport,
      'decode',
      measure(plainBytes, ms, () => {
        const d = createFrameCodec(transport, { requireAligned: true });
        for (const r of wireReads) d.decode(r, count);
      }),
    );
  }

  // middle proxy full framing
  const fullWire = (() => {
    const e = new FullEncoder(0);
    return Buffer.concat(payloads.map((p) => e.encode(p)));
  })();
  const fullReads = reads(fullWire);
  add(
    'full',
    'encode',
    measure(plainBytes, ms, () => {
      const e = new FullEncoder(0);
      for (const p of payloads) count(e.encode(p));
    }),
  );
  add(
    'full',
    'decode',
    measure(plainBytes, ms, () => {
      const d = new FullDecoder(0);
      for (const r of fullReads) d.decode(r, count);
    }),
  );

  // AES-256-CBC of the middle link
  const cbcKey = { key: randomBytes(32), iv: randomBytes(16) };
  const cbcPlainReads = reads(fullWire);
  const cbcWire = createCbcEncryptor(cbcKey).update(fullWire);
  const cbcReads = reads(cbcWire);
  add(
    'cbc',
    'encode',
    measure(fullWire.length, ms, () => {
      const c = createCbcEncryptor(cbcKey);
      for (const r of cbcPlainReads) count(c.update(r));
    }),
  );
  add(
    'cbc',
    'decode',
    measure(fullWire.length, ms, () => {
      const d = createCbcDecryptor(cbcKey);
      for (const r of cbcReads) count(d.update(r));
    }),
  );
  if (sink < 0) console.log(sink);
  return rows;
}

export function formatMicro(rows: MicroRow[]): string {
  const lines = ['| Layer | Decode MB/s | Encode MB/s |', '|---|---:|---:|'];
  const layers = [...new Set(rows.map((r) => r.layer))];
  for (const layer of layers) {
    const get = (d: MicroRow['direction']) =>
      rows.find((r) => r.layer === layer && r.direction === d)?.mbPerSecond.toFixed(0) ?? '';
    lines.push(`| ${layer} | ${get('decode')} | ${get('encode')} |`);
  }
  return lines.join('\n');
}

if (import.meta.main) console.log(formatMicro(runMicro()));
