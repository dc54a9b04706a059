/**
 * The user-space CPU of one new session's handshake steps, in this process, on the code the session runs:
 * the fake-TLS hello check and server flight (whole, and its parts), the X25519 key of the key share, the
 * client's obfuscated2 header and the one made for the DC. Figures are µs of this thread's CPU per call,
 * steadier on a shared machine than the session-rate figure (which adds the sockets and the kernel).
 * `node bench/micro/handshake.ts` prints a table; MICRO_MS sets the CPU time per figure.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { buildClientHello } from '../../src/client/tls-hello.ts';
import { parseConfig } from '../../src/config/load.ts';
import { parseClientHello, selectKeyShare } from '../../src/protocol/faketls/client-hello.ts';
import { ja4 } from '../../src/protocol/faketls/ja4.ts';
import { serverKeyShare } from '../../src/protocol/faketls/key-share.ts';
import { createInitiatorHeader, tryClientHeader } from '../../src/protocol/obfuscated2.ts';
import { tryFakeTlsHandshake } from '../../src/session/fake-tls-handshake.ts';

export interface HandshakeRow {
  step: string;
  usPerCall: number;
}

/** CPU time of this thread (user + system) in µs. */
function cpuUs(): number {
  const u = process.threadCpuUsage();
  return u.user + u.system;
}

/** Repeat `step` for about `ms` of CPU (after a warm-up); µs of CPU per call. */
function measure(ms: number, step: () => void): number {
  for (let i = 0; i < 200; i++) step();
  let n = 0;
  const start = cpuUs();
  let elapsed = 0;
  while (elapsed < ms * 1000 || n < 10) {
    for (let i = 0; i < 10; i++) step();
    n += 10;
    elapsed = cpuUs() - start;
  }
  return elapsed / n;
}

export function runHandshakeMicro(ms = Number(process.env.MICRO_MS ?? 400)): HandshakeRow[] {
  const secret = randomBytes(16);
  const domain = 'bench.example.com';
  const config = parseConfig(
    ['[[listeners]]', 'port = 0', `secret = "${secret.toString('hex')}"`, `tls_domain = "${domain}"`].join(
      '\n',
    ),
  );
  const listener = config.listeners[0]!;
  const now = Date.now();
  // The shape today's apps send: an X25519MLKEM768 share beside the X25519 one.
  const hellos = Array.from({ length: 16 }, () =>
    buildClientHello({ shape: 'modern', secret, domain, unixTime: Math.floor(now / 1000) }),
  );
  const headers = Array.from({ length: 16 }, () => createInitiatorHeader('padded', 2, secret).header);
  let k = 0;
  let sink = 0;
  const rows: HandshakeRow[] = [];
  const add = (step: string, run: () => void) => rows.push({ step, usPerCall: measure(ms, run) });

  add('fake-TLS hello → server flight (whole)', () => {
    const r = tryFakeTlsHandshake(hellos[k++ & 15]!, listener, now);
    if (r.kind !== 'ok') throw new Error(`fake-TLS handshake failed: ${r.kind}`);
    sink += r.serverHello.length;
  });
  add('  ClientHello parse', () => {
    sink += parseClientHello(hellos[k++ & 15]!).cipherSuites.length;
  });
  const parsed = parseClientHello(hellos[0]!);
  add('  JA4', () => {
    sink += ja4(parsed).length;
  });
  const share = selectKeyShare(parsed.keyShares!, true)!;
  add('  server key share (X25519MLKEM768)', () => {
    sink += serverKeyShare(share.group, share.key)!.length;
  });
  add('  X25519 key pair', () => {
    sink += generateKeyPairSync('x25519').publicKey.export({ format: 'raw-public' }).length;
  });
  add('obfuscated2 header (client)', () => {
    const hs = tryClientHeader(headers[k++ & 15]!, secret);
    if (hs === null) throw new Error('obfuscated2 header refused');
    sink += hs.dcId;
  });
  add('obfuscated2 header (to the DC)', () => {
    sink += createInitiatorHeader('padded', 2, null).header.length;
  });
  if (sink < 0) console.log(sink);
  return rows;
}

export function formatHandshakeMicro(rows: HandshakeRow[]): string {
  const lines = ['| Step | µs CPU per call |', '|---|---:|'];
  for (const r of rows) lines.push(`| ${r.step} | ${r.usPerCall.toFixed(1)} |`);
  return lines.join('\n');
}

if (import.meta.main) console.log(formatHandshakeMicro(runHandshakeMicro()));
