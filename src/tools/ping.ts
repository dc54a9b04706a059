/**
 * `mtproxy ping <link>`: through any MTProto proxy link (plain, dd or ee secret), for each DC: open a TCP
 * connection, do the handshake (the fake-TLS one for ee), send an unencrypted `req_pq_multi` and wait for the
 * `resPQ` carrying the same nonce. It times each step, so an operator can tell a blocked port from a broken
 * secret from an unreachable DC. The protocol work is the shared client in src/client/.
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { fakeTlsHandshake, FakeTlsHandshakeError } from '../client/fake-tls-client.ts';
import {
  connectObfuscated,
  type ObfuscatedConnection,
  type StreamLayer,
} from '../client/obfuscated-client.ts';
import type { HelloShape } from '../client/tls-hello.ts';
import { formatHostPort } from '../config/schema.ts';
import { type ClientSecret, parseClientSecret } from '../config/secrets.ts';
import type { TransportTag } from '../protocol/obfuscated2.ts';

export interface ProxyTarget {
  host: string;
  port: number;
  secret: ClientSecret;
}

export const DEFAULT_PING_DCS = [1, 2, 3, 4, 5];
const CTOR_REQ_PQ_MULTI = 0xbe7e8ef1;
const CTOR_RES_PQ = 0x05162463;
/** Cover domain for an ee secret that carries none (as Telegram's apps do). */
const FALLBACK_TLS_DOMAIN = 'example.com';

/**
 * `tg://proxy?server=…&port=…&secret=…`, `https://t.me/proxy?…` (also `tg://socks`-less variants such as
 * `t.me/proxy?…` without a scheme). Throws an Error with a one-line message.
 */
export function parseProxyLink(link: string): ProxyTarget {
  let text = link.trim();
  if (!/^[a-z]+:\/\//i.test(text)) text = `https://${text}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error('expected a proxy link like tg://proxy?server=HOST&port=PORT&secret=SECRET');
  }
  const isTg =
    url.protocol === 'tg:' && (url.hostname === 'proxy' || url.pathname.replace(/^\/+/, '') === 'proxy');
  const isWeb =
    /^https?:$/.test(url.protocol) &&
    /(^|\.)(t\.me|telegram\.me)$/i.test(url.hostname) &&
    url.pathname === '/proxy';
  if (!isTg && !isWeb) throw new Error('expected a tg://proxy or https://t.me/proxy link');
  const server = url.searchParams.get('server');
  const portText = url.searchParams.get('port');
  const secretText = url.searchParams.get('secret');
  if (!server) throw new Error('the link has no server');
  if (!portText || !/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new Error('the link has no valid port');
  }
  if (!secretText) throw new Error('the link has no secret');
  const secret = parseClientSecret(secretText);
  if (!secret) throw new Error('the link secret is not a plain, dd or ee proxy secret');
  const host = server.startsWith('[') && server.endsWith(']') ? server.slice(1, -1) : server;
  return { host, port: Number(portText), secret };
}

export interface PingOptions {
  /** Signed DC ids; default 1..5. */
  dcs?: number[];
  /** Per step (connect, handshake, round trip). Default 5000. */
  timeoutMs?: number;
  /** Framing; default intermediate for plain secrets, padded for dd and ee. */
  transport?: TransportTag;
  /** ee only: the ClientHello shape. Default modern. */
  helloShape?: HelloShape;
  /** Attempts per DC. Default 1. */
  repeat?: number;
}

export interface PingResult {
  dc: number;
  ok: boolean;
  /** TCP connect, ms. */
  tcpMs: number | null;
  /** ee: ClientHello to the proxy's signed answer, ms (null for plain/dd: their header needs no answer). */
  handshakeMs: number | null;
  /** req_pq_multi to resPQ, ms. */
  rttMs: number | null;
  totalMs: number | null;
  error: string | null;
  /** Where it failed: TCP connect, the handshake, or waiting for resPQ after it (null when it answered). */
  failedAt: 'connect' | 'handshake' | 'request' | null;
  /**
   * The proxy showed it knows the secret (an ee proxy signs its TLS answer with it): a failure after that is
   * the proxy's way to Telegram, not the secret.
   */
  secretAccepted: boolean;
}

function describeError(
  e: unknown,
  stage: 'connect' | 'handshake' | 'request',
  secretAccepted = false,
): string {
  if (e instanceof FakeTlsHandshakeError) {
    switch (e.reason) {
      case 'fronted':
        return 'fronted: a real TLS server answered the hello (wrong secret or domain, or a clock off by minutes)';
      case 'alert':
        return `TLS alert ${e.alert}: the proxy refused the hello (${e.alert === 112 ? 'domain not served' : 'refused'})`;
      case 'invalid':
        return 'not a proxy answer to the fake-TLS hello';
      case 'closed':
        return 'closed during the fake-TLS handshake';
      case 'timeout':
        return 'no answer to the fake-TLS hello (timeout)';
    }
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ECONNREFUSED') return 'connection refused (nothing listens on that port)';
  if (err?.code === 'ENOTFOUND' || err?.code === 'EAI_AGAIN')
    return `cannot resolve the server (${err.code})`;
  if (err?.code) return `${stage}: ${err.code}`;
  const message = err?.message ?? String(e);
  if (stage === 'request' && secretAccepted && /connection closed|no frame within/.test(message)) {
    return 'the proxy accepted the secret (its TLS answer is signed with it) but gave no resPQ: it cannot reach this DC';
  }
  if (stage === 'request' && /connection closed/.test(message)) {
    return 'closed by the proxy before resPQ (wrong secret, protocol not allowed, or the DC is unreachable from it)';
  }
  if (/no frame within/.test(message)) return 'no resPQ (timeout): the proxy or the DC does not answer';
  return `${stage}: ${message}`;
}

/** An unencrypted MTProto message carrying req_pq_multi with `nonce`. */
export function reqPqMulti(nonce: Buffer): Buffer {
  const out = Buffer.alloc(20 + 20);
  // auth_key_id = 0; msg_id: Unix time in the high half, divisible by 4 (client message).
  const now = BigInt(Date.now());
  const msgId = ((now / 1000n) << 32n) | (((now % 1000n) << 22n) & 0xfffffffcn);
  out.writeBigUInt64LE(msgId, 8);
  out.writeUInt32LE(20, 16);
  out.writeUInt32LE(CTOR_REQ_PQ_MULTI, 20);
  nonce.copy(out, 24);
  return out;
}

/** True when `payload` is an unencrypted resPQ answering `nonce`. */
export function isResPq(payload: Buffer, nonce: Buffer): boolean {
  return (
    payload.length >= 40 &&
    payload.readBigUInt64LE(0) === 0n &&
    payload.readUInt32LE(20) === CTOR_RES_PQ &&
    payload.subarray(24, 40).equals(nonce)
  );
}

const passthrough: StreamLayer = {
  wrap: (data) => data,
  unwrap: (chunk, onData) => onData(chunk),
};

async function pingOnce(target: ProxyTarget, dc: number, opts: PingOptions): Promise<PingResult> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const result: PingResult = {
    dc,
    ok: false,
    tcpMs: null,
    handshakeMs: null,
    rttMs: null,
    totalMs: null,
    error: null,
    failedAt: null,
    secretAccepted: false,
  };
  const started = performance.now();
  let stage: 'connect' | 'handshake' | 'request' = 'connect';
  let connection: ObfuscatedConnection | null = null;
  try {
    const { secret } = target;
    connection = await connectObfuscated({
      host: target.host,
      port: target.port,
      secret: secret.secret,
      transport: opts.transport ?? (secret.kind === 'plain' ? 'intermediate' : 'padded'),
      dcId: dc,
      connectTimeoutMs: timeoutMs,
      layer: async (socket: net.Socket) => {
        result.tcpMs = performance.now() - started;
        if (secret.kind !== 'ee') return passthrough;
        stage = 'handshake';
        const handshakeStart = performance.now();
        const { framing } = await fakeTlsHandshake(socket, {
          secret: secret.secret,
          domain: secret.domain ?? FALLBACK_TLS_DOMAIN,
          shape: opts.helloShape ?? 'modern',
          timeoutMs,
        });
        result.handshakeMs = performance.now() - handshakeStart;
        result.secretAccepted = true;
        return framing;
      },
    });
    stage = 'request';
    const nonce = randomBytes(16);
    const sent = performance.now();
    connection.sendFrame(reqPqMulti(nonce));
    const deadline = sent + timeoutMs;
    for (;;) {
      const frame = await connection.nextFrame(Math.max(1, deadline - performance.now()));
      if (!frame.quickAck && isResPq(frame.payload, nonce)) break;
    }
    result.rttMs = performance.now() - sent;
    result.totalMs = performance.now() - started;
    result.ok = true;
  } catch (e) {
    result.failedAt = stage;
    result.error = describeError(e, stage, result.secretAccepted);
  } finally {
    connection?.close();
  }
  return result;
}

/** Ping one DC `repeat` times; the result is the fastest success, else the last failure. */
async function pingDc(target: ProxyTarget, dc: number, opts: PingOptions = {}): Promise<PingResult> {
  let best: PingResult | null = null;
  let last: PingResult | null = null;
  for (let i = 0; i < Math.max(1, opts.repeat ?? 1); i++) {
    last = await pingOnce(target, dc, opts);
    if (last.ok && (!best || (last.totalMs ?? 0) < (best.totalMs ?? 0))) best = last;
  }
  return best ?? (last as PingResult);
}

/** Every DC in turn (sequential, so the timings do not disturb each other). */
export async function pingLink(
  target: ProxyTarget,
  opts: PingOptions = {},
  onResult: (r: PingResult) => void = () => {},
): Promise<PingResult[]> {
  const results: PingResult[] = [];
  for (const dc of opts.dcs ?? DEFAULT_PING_DCS) {
    const r = await pingDc(target, dc, opts);
    results.push(r);
    onResult(r);
  }
  return results;
}

function ms(value: number | null): string {
  return value === null ? '-' : `${value.toFixed(1)} ms`;
}

export function formatPingResult(r: PingResult): string {
  const dc = `DC ${r.dc}`.padEnd(6);
  if (!r.ok) {
    const done = r.tcpMs === null ? '' : `tcp ${ms(r.tcpMs)}  `;
    return `${dc} FAIL  ${done}${r.error}`;
  }
  const handshake = r.handshakeMs === null ? '' : `  tls ${ms(r.handshakeMs).padStart(9)}`;
  return `${dc} ok    tcp ${ms(r.tcpMs).padStart(9)}${handshake}  req_pq ${ms(r.rttMs).padStart(9)}  total ${ms(r.totalMs).padStart(9)}`;
}

/**
 * What the failures say together: a DC that fails after the proxy took the secret (another DC answered, or the
 * ee answer was signed with it) is one the proxy cannot reach; when none answered and none got past the
 * proxy's checks, a plain or dd link cannot tell a wrong secret from a proxy that reaches no DC.
 */
export function diagnosePing(results: PingResult[]): string | null {
  const failed = results.filter((r) => !r.ok && r.failedAt === 'request');
  if (failed.length === 0) return null;
  const ids = (list: PingResult[]) => list.map((r) => r.dc).join(', ');
  const answered = results.filter((r) => r.ok);
  if (answered.length > 0 || failed.every((r) => r.secretAccepted)) {
    const proof = answered.length > 0 ? `DC ${ids(answered)} answered` : 'its TLS answer is signed with it';
    return `The secret is right (${proof}): the proxy cannot reach DC ${ids(failed)} (its log says why, at info level).`;
  }
  if (results.some((r) => r.ok || r.failedAt !== 'request')) return null;
  return (
    'No DC answered after the handshake: the secret is wrong (or its protocol is not allowed on that port), ' +
    'or the proxy reaches no DC; its log tells (an unreachable DC is logged at info level), and so does an ee link of the same proxy.'
  );
}

export function formatPingSummary(target: ProxyTarget, results: PingResult[]): string {
  const ok = results.filter((r) => r.ok);
  let head = `${ok.length}/${results.length} DCs answered through ${formatHostPort(target)} (${target.secret.kind} secret)`;
  if (ok.length > 0) {
    const average = ok.reduce((sum, r) => sum + (r.rttMs ?? 0), 0) / ok.length;
    head = `${head}; average req_pq round trip ${average.toFixed(1)} ms`;
  }
  const diagnosis = diagnosePing(results);
  return diagnosis === null ? head : `${head}\n${diagnosis}`;
}
